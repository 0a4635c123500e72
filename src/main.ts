import path from 'node:path';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { Probot, Server, run } from 'probot';
import { Trace } from './agent/trace.js';
import { ConfigError, loadConfig, parseEnv, registryAccess, type Role } from './config/env.js';
import { Environments } from './sandbox/environment/environments.js';
import { createLogger } from './telemetry/logger.js';
import { connectedWorkers, Metrics } from './telemetry/metrics.js';
import { AgentQueue } from './queue/queue.js';
import { RecordSeal } from './queue/record-seal.js';
import {
  bullConnection,
  checkRedisSettings,
  noAuthProblem,
  redisAcceptsWithoutAuth,
  redisVersionProblem,
  resolveRedis,
  withPassword,
} from './queue/redis.js';
import { AppOctokit } from './github/octokit-options.js';
import { RedisDailySpend } from './queue/daily-spend.js';
import { RedisPlanStore } from './queue/plan-store.js';
import { RedisStageStore } from './queue/stage-store.js';
import { registerSecret, sanitise } from './util/sanitise.js';
import { limitRequests } from './web/http-limits.js';
import { type InstallNetworkPolicy, operatorInstallPolicy } from './sandbox/egress/policy.js';
import type { Runner } from './sandbox/runner.js';
import { createRunner } from './sandbox/create-runner.js';
import { ActingLabels, agentApp } from './web/app.js';
import { WebEventSchema, type WebEvent } from './web/inbox-item.js';
import { startDrainThread } from './web/drain-thread.js';
import { Inbox } from './queue/inbox.js';
import { healthHandler, startOpsServer, timeWebhooks, type HealthDeps } from './web/health.js';
import { startWorker, type AgentWorker } from './worker/worker.js';

function rolesFrom(arg: string | undefined): Role[] {
  if (arg === undefined || arg === 'all') return ['web', 'worker'];
  if (arg === 'web' || arg === 'worker') return [arg];
  throw new ConfigError([`role: expected "web", "worker" or nothing (both), got "${arg}"`]);
}

type Config = ReturnType<typeof loadConfig>;
type Log = ReturnType<typeof createLogger>;
type RedisHandle = Awaited<ReturnType<typeof resolveRedis>>;
type Stop = () => Promise<unknown>;

/** What the web and the worker share in one process. */
interface Started {
  config: Config;
  log: Log;
  redisHandle: RedisHandle;
  redis: Redis;
  seal: RecordSeal;
  queue: AgentQueue;
  metrics: Metrics;
  health: HealthDeps;
}

/** Wiring only: config → web and/or worker, and a clean shutdown. */
async function main(): Promise<void> {
  if (existsSync('.env')) process.loadEnvFile('.env');
  const roles = rolesFrom(process.argv[2]);
  // Without an App id there is nothing to run yet: serve Probot's setup page, which
  // registers the app from app.yml and writes .env.
  if (roles.includes('web') && parseEnv(process.env).APP_ID === undefined) {
    await run(() => {});
    return;
  }
  const config = loadConfig(process.env, roles);
  const { env } = config;
  registerSecret(config.webhookSecret);
  registerSecret(config.anthropicApiKey);
  registerSecret(env.REDIS_PASSWORD);
  const log = createLogger(env.LOG_LEVEL);
  // The sandbox is checked before anything starts: a worker without bubblewrap must not
  // come up half-way (unless SANDBOX=none says so).
  const runner = roles.includes('worker')
    ? createRunner(env.SANDBOX, log, {
        allowRootMapped: env.SANDBOX_ALLOW_ROOT_MAPPED,
        secretFiles: [
          ...(env.PRIVATE_KEY_PATH ? [env.PRIVATE_KEY_PATH] : []),
          path.resolve('.env'),
          ...(env.REGISTRY_AUTH_FILE ? [env.REGISTRY_AUTH_FILE] : []),
        ],
      })
    : undefined;
  // Asking this host's package managers for their registries takes a second or so: it runs
  // while Redis is found and checked, and the worker waits for it below.
  const installNetwork = runner ? operatorInstallPolicy(env, log) : undefined;
  installNetwork?.catch(() => {});
  const { redisHandle, redis } = await connectRedis(config, log);
  const stops: Stop[] = [];
  // What the app writes to Redis and acts on later is sealed with a key Redis never sees.
  const seal = RecordSeal.fromPrivateKey(config.privateKey);
  const queue = new AgentQueue(bullConnection(redisHandle.url), redis, seal);
  // One registry per process: its worker's jobs, stages, model and tool calls (from the
  // traces), its webhooks; the queue's gauges where the web runs, so they are read once.
  const metrics = new Metrics();
  Trace.listen((event, trace) => metrics.observeTrace(event, trace));
  let agentWorker: AgentWorker | undefined;
  const health: HealthDeps = {
    redisPing: async () => (await redis.ping()) === 'PONG',
    workerState: runner ? () => agentWorker?.state() ?? 'starting' : undefined,
    workers: () => connectedWorkers(queue.queue),
    metrics,
  };
  const started: Started = { config, log, redisHandle, redis, seal, queue, metrics, health };

  // No new webhooks, then the inbox work in hand and its acknowledgements.
  if (roles.includes('web')) stops.push(...(await startWeb(started)));
  if (runner) {
    const worker = startAgentWorker(started, runner, await installNetwork!);
    agentWorker = worker;
    stops.unshift(() => worker.drain());
  }
  if (env.METRICS_PORT !== undefined) {
    const ops = await startOpsServer({ port: env.METRICS_PORT, host: env.HOST, handler: healthHandler(health) });
    stops.push(() => new Promise((resolve) => ops.close(resolve)));
    log.info({ port: env.METRICS_PORT }, 'serving /metrics, /healthz and /readyz');
  }
  stops.push(() => queue.close());
  log.info(
    { roles, redis: sanitise(redisHandle.url), github: config.githubApiUrl, dataDir: config.dataDir },
    'issue-agent started',
  );
  stopOnSignals(started, stops);
}

/** Finds Redis (or starts one) and checks it is fit to hold the app's jobs. */
async function connectRedis(config: Config, log: Log): Promise<{ redisHandle: RedisHandle; redis: Redis }> {
  const { env } = config;
  const redisHandle = await resolveRedis({
    url: env.REDIS_URL && withPassword(env.REDIS_URL, env.REDIS_PASSWORD),
    password: env.REDIS_PASSWORD,
    dataDir: config.dataDir,
    log,
  });
  // Redis is not a trust root: one that anybody may write to is refused unless the operator says so.
  if (await redisAcceptsWithoutAuth(redisHandle.url)) {
    if (!env.REDIS_ALLOW_NO_AUTH) {
      await redisHandle.stop();
      throw new ConfigError([noAuthProblem(redisHandle.url)]);
    }
    log.warn(
      'REDIS_ALLOW_NO_AUTH=1: the app runs on a Redis without a password; anything that reaches it can forge jobs',
    );
  }
  const redis = new Redis(redisHandle.url, { maxRetriesPerRequest: null });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  // Jobs must survive a Redis restart and never be evicted: warn (do not stop) when they could be.
  await checkRedisSettings(redis, log);
  const tooOld = redisVersionProblem(await redis.info('server'));
  if (tooOld) throw new ConfigError([tooOld]);
  return { redisHandle, redis };
}

/**
 * The web: Probot's server, which records webhooks in the inbox, and the thread that
 * drains it. Answers its stops, in the order they run.
 */
async function startWeb({ config, log, redisHandle, redis, queue, metrics, health }: Started): Promise<Stop[]> {
  const { env } = config;
  const server = new Server({
    Probot: Probot.defaults({
      appId: config.appId,
      privateKey: config.privateKey,
      secret: config.webhookSecret,
      baseUrl: config.githubApiUrl,
      log,
      Octokit: AppOctokit,
    }),
    port: env.PORT,
    host: env.HOST,
    webhookProxy: env.WEBHOOK_PROXY_URL,
    log,
  });
  const inbox = new Inbox<WebEvent>(redis, WebEventSchema, { log });
  const actingLabels = new ActingLabels();
  metrics.watchQueue(queue.queue);
  metrics.watchInbox(inbox);
  // What webhooks record in the inbox is carried out by a thread of its own.
  const drain = await startDrainThread(
    {
      redisUrl: redisHandle.url,
      appId: config.appId,
      privateKey: config.privateKey,
      githubApiUrl: config.githubApiUrl,
      logLevel: env.LOG_LEVEL,
      heartbeatMs: env.INBOX_HEARTBEAT_MS,
      allowHostNetwork: env.SANDBOX_ALLOW_HOST_NETWORK,
      secrets: [config.webhookSecret, config.anthropicApiKey].filter((x): x is string => !!x),
    },
    {
      log,
      onHandled: (outcome, seconds) => metrics.inboxHandled(outcome, seconds),
      onLabelRead: (repoKey, label) => actingLabels.set(repoKey, label),
      onCiGreen: (outcome, rounds) => metrics.ciFixEnded(outcome, rounds),
    },
  );
  await server.load(agentApp({ inbox, health, log, actingLabels }));
  const httpServer = await server.start();
  // Before the first request is read: body size and time limits ahead of Probot's own reading.
  limitRequests(httpServer, { log });
  timeWebhooks(httpServer, metrics);
  return [() => server.stop(), () => drain.stop()];
}

/** The worker: takes jobs from the queue and runs them in the sandbox. */
function startAgentWorker(
  { config, log, redisHandle, redis, seal, queue, metrics }: Started,
  runner: Runner,
  installNetwork: InstallNetworkPolicy,
): AgentWorker {
  const { env } = config;
  const probot = new Probot({
    appId: config.appId,
    privateKey: config.privateKey,
    baseUrl: config.githubApiUrl,
    log,
    Octokit: AppOctokit,
  });
  const environments = Environments.open({
    dataDir: config.dataDir,
    access: registryAccess(env),
    log,
    maxBytes: env.ENVIRONMENTS_MAX_GB * 1024 ** 3,
    runner,
  });
  metrics.watchEnvironments(environments);
  const worker = startWorker({
    config,
    probot,
    runner,
    environments,
    installNetwork,
    redisUrl: redisHandle.url,
    queue,
    seal,
    stages: new RedisStageStore(redis, seal, undefined, log),
    dailySpend: new RedisDailySpend(redis),
    planStore: new RedisPlanStore(redis, seal, undefined, log),
    log,
    onJobEnd: (kind, outcome, seconds) => {
      metrics.jobFinished(kind, outcome, seconds);
      if (kind === 'ci-fix' && outcome === 'stuck') metrics.ciFixEnded('escalated');
    },
  });
  log.info(
    {
      sandbox: runner.backend,
      models: config.models,
      concurrency: env.WORKER_CONCURRENCY,
      lockMs: env.WORKER_LOCK_MS,
      stalledIntervalMs: env.WORKER_STALLED_INTERVAL_MS,
      maxStalled: env.WORKER_MAX_STALLED,
    },
    'worker consuming agent-run',
  );
  return worker;
}

/** On SIGTERM or SIGINT: runs the stops in order, bounded by SHUTDOWN_TIMEOUT_MS, and exits. */
function stopOnSignals({ config, log, redis, redisHandle }: Started, stops: Stop[]): void {
  const { env } = config;
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(
      { signal, timeoutMs: env.SHUTDOWN_TIMEOUT_MS },
      'stopping: no new jobs; a running job stops at its next step and goes back to the queue',
    );
    // Bounded: a step that does not end in time is left to another worker's stalled-job check.
    setTimeout(() => {
      log.error(
        { timeoutMs: env.SHUTDOWN_TIMEOUT_MS },
        'shutdown took too long: exiting; the job resumes on another worker',
      );
      process.exit(1);
    }, env.SHUTDOWN_TIMEOUT_MS).unref();
    for (const stop of stops) await stop().catch((err: unknown) => log.warn({ err }, 'error while stopping'));
    redis.disconnect();
    await redisHandle.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(`issue-agent: ${err.message}`);
  } else {
    console.error('issue-agent failed to start:', err);
  }
  process.exit(1);
});
