/**
 * The web's second thread: it drains the inbox (for each webhook's event: who sent it and
 * the repository's config, the queue work, then the reactions and status comments), so the
 * thread that answers webhooks does nothing after recording an item. Each has an event loop
 * of its own: at a burst of triggers the answers do not wait behind GitHub reads, BullMQ
 * calls and GitHub writes.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { Probot } from 'probot';
import type { Logger } from 'pino';
import { AppIdentity } from '../github/app-identity.js';
import { AppOctokit } from '../github/octokit-options.js';
import { createLogger } from '../telemetry/logger.js';
import { Inbox } from '../queue/inbox.js';
import { AgentQueue } from '../queue/queue.js';
import { bullConnection } from '../queue/redis.js';
import { registerSecret } from '../util/sanitise.js';
import { RecordSeal } from '../queue/record-seal.js';
import { eventHandler } from './actions.js';
import { InboxItemSchema, threadOf, type InboxItem } from './inbox-item.js';
import { PendingWork } from './pending.js';

export interface DrainSettings {
  redisUrl: string;
  appId: string | number;
  privateKey: string;
  githubApiUrl: string;
  logLevel: string;
  heartbeatMs: number;
  /** SANDBOX_ALLOW_HOST_NETWORK, so a config asking for the host's network is explained here as the worker would. */
  allowHostNetwork: boolean;
  /** What the sanitiser redacts in this thread too (its module state is the thread's own). */
  secrets: string[];
}

type ToMain =
  | { type: 'ready' }
  | { type: 'handled'; outcome: 'done' | 'dead'; seconds: number }
  | { type: 'label'; repoKey: string; label: string }
  | { type: 'ci-green'; outcome: 'fixed' | 'rerun_green'; rounds: number }
  | { type: 'stopped' };
type ToThread = { type: 'stop' };

/**
 * On Linux a thread has a nice value of its own: this one yields the CPU to the thread that
 * answers webhooks when both want it. Elsewhere it stays as it is.
 */
function lowerPriority(log: Logger): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) setPriority(tid, 10);
  } catch (err) {
    log.debug({ err }, 'the inbox thread keeps the process priority');
  }
}

/** The thread's side: drains until the main thread says stop, then settles and exits. */
async function runThread(settings: DrainSettings, port: NonNullable<typeof parentPort>): Promise<void> {
  for (const secret of settings.secrets) registerSecret(secret);
  const log = createLogger(settings.logLevel).child({ thread: 'inbox' });
  lowerPriority(log);
  const redis = new Redis(settings.redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  const queue = new AgentQueue(
    bullConnection(settings.redisUrl),
    redis,
    RecordSeal.fromPrivateKey(settings.privateKey),
  );
  const probot = new Probot({
    appId: settings.appId,
    privateKey: settings.privateKey,
    baseUrl: settings.githubApiUrl,
    log,
    Octokit: AppOctokit,
  });
  const pending = new PendingWork();
  const send = (m: ToMain) => port.postMessage(m);
  const inbox = new Inbox<InboxItem>(redis, InboxItemSchema, {
    log,
    heartbeatMs: settings.heartbeatMs,
    onHandled: (outcome, seconds) => send({ type: 'handled', outcome, seconds }),
  });
  const drainer = await inbox.drain(
    eventHandler({
      queue,
      probot,
      identity: new AppIdentity(probot),
      log,
      pending,
      allowHostNetwork: settings.allowHostNetwork,
      onLabelRead: (repoKey, label) => send({ type: 'label', repoKey, label }),
      onCiGreen: (outcome, rounds) => send({ type: 'ci-green', outcome, rounds }),
    }),
    threadOf,
  );
  port.on('message', (m: ToThread) => {
    if (m.type !== 'stop') return;
    void (async () => {
      await drainer.stop();
      await pending.settled();
      await queue.close();
      redis.disconnect();
      log.flush();
      send({ type: 'stopped' });
      port.close();
    })();
  });
  send({ type: 'ready' });
}

if (!isMainThread && parentPort && (workerData as { role?: string } | undefined)?.role === 'inbox-drain') {
  const port = parentPort;
  runThread((workerData as { settings: DrainSettings }).settings, port).catch((err: unknown) => {
    console.error('inbox thread failed to start:', err);
    process.exit(1);
  });
}

/**
 * Starts the drain thread and resolves once it drains (it rejects if the thread ends before
 * that). If it ends on its own later (a crash), it is started again, a second apart until
 * one starts: what it held goes back to the inbox when its heartbeat runs out.
 */
export async function startDrainThread(
  settings: DrainSettings,
  opts: {
    log: Logger;
    onHandled?: (outcome: 'done' | 'dead', seconds: number) => void;
    onLabelRead?: (repoKey: string, label: string) => void;
    /** A pull request whose CI the app answered went green: how, and in how many CI-fix rounds. */
    onCiGreen?: (outcome: 'fixed' | 'rerun_green', rounds: number) => void;
  },
): Promise<{ stop(): Promise<void> }> {
  // The same module, as the thread's entry: compiled (.js), or the source under tsx (the
  // tests), whose loader a thread does not inherit: it registers it first.
  const entry: URL | string = import.meta.url.endsWith('.ts')
    ? `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); });`
    : new URL(import.meta.url);
  const { log } = opts;
  let stopping = false;
  /** The thread that is draining, while it runs. */
  let current: Worker | undefined;
  let starting: Promise<Worker> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;

  const spawn = (): Promise<Worker> => {
    starting = new Promise<Worker>((resolve, reject) => {
      const worker = new Worker(entry, {
        eval: typeof entry === 'string',
        workerData: { role: 'inbox-drain', settings },
      });
      let ready = false;
      worker.on('message', (m: ToMain) => {
        if (m.type === 'ready') {
          ready = true;
          current = worker;
          resolve(worker);
        } else if (m.type === 'handled') opts.onHandled?.(m.outcome, m.seconds);
        else if (m.type === 'label') opts.onLabelRead?.(m.repoKey, m.label);
        else if (m.type === 'ci-green') opts.onCiGreen?.(m.outcome, m.rounds);
      });
      worker.once('error', (err) => log.error({ err }, 'inbox thread failed'));
      worker.once('exit', (code) => {
        if (current === worker) current = undefined;
        if (!ready) return reject(new Error(`the inbox thread ended (exit code ${code}) before it drained`));
        if (!stopping) {
          log.error({ code }, 'inbox thread ended; starting it again');
          restart();
        }
      });
    });
    return starting;
  };
  const restart = () => {
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopping) return;
      spawn().catch((err: unknown) => {
        log.error({ err }, 'inbox thread did not start; trying again');
        restart();
      });
    }, 1_000);
    restartTimer.unref();
  };

  await spawn();
  return {
    stop: async () => {
      stopping = true;
      clearTimeout(restartTimer);
      await starting?.catch(() => undefined);
      const w = current;
      if (!w) return;
      await new Promise<void>((resolve) => {
        w.on('message', (m: ToMain) => m.type === 'stopped' && resolve());
        w.once('exit', () => resolve());
        w.postMessage({ type: 'stop' } satisfies ToThread);
      });
      await w.terminate();
    },
  };
}
