import { DelayedError, QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Probot } from 'probot';
import type { AppConfig } from '../config/env.js';
import { botIdentity, type BotIdentity } from '../github/app-identity.js';
import { GitHubRepo } from '../github/facade.js';
import { openJob, QUEUE_NAME, type JobData } from '../queue/jobs.js';
import type { RecordSeal } from '../queue/record-seal.js';
import type { AgentQueue } from '../queue/queue.js';
import { bullConnection } from '../queue/redis.js';
import type { StageStore } from '../queue/stage-store.js';
import { statusComment } from '../report/status.js';
import type { InstallNetworkPolicy } from '../sandbox/egress/policy.js';
import type { Runner } from '../sandbox/runner.js';
import type { DailySpend } from '../queue/daily-spend.js';
import type { PlanStore } from '../queue/plan-store.js';
import type { Outcome } from '../queue/outcome.js';
import { Interrupted, LABEL_STUCK, LABEL_WORKING, runPipeline } from './pipeline.js';

export interface WorkerDeps {
  config: AppConfig;
  probot: Probot;
  runner: Runner;
  /** Opens the seals of job data (see RecordSeal); the same key as the queue's. */
  seal: RecordSeal;
  /** What the operator allows the install step: the registries, and whether the host's network may be asked for. */
  installNetwork: InstallNetworkPolicy;
  redisUrl: string;
  /** The queue's Redis-side state: status comments, stop requests, review feedback. */
  queue: AgentQueue;
  stages?: StageStore;
  /** How often a running job looks for a stop request (default 1 s). */
  stopPollMs?: number;
  /** Least time between status comment edits (default 10 s). */
  statusIntervalMs?: number;
  dailySpend?: DailySpend;
  planStore?: PlanStore;
  prefix?: string;
  log: Logger;
  /** Told how each job ends (metrics). */
  onJobEnd?: (kind: JobData['kind'], outcome: Outcome['kind'] | 'failed', seconds?: number) => void;
}

export interface AgentWorker {
  worker: Worker<JobData, Outcome>;
  /**
   * Stops taking jobs; a running job stops at its next step (a running command is killed),
   * keeps its finished stages and goes back to the queue for any worker to resume.
   */
  drain(): Promise<void>;
  /** Whether this worker takes jobs, for readiness. */
  state(): 'consuming' | 'paused' | 'closing' | 'starting';
}

/** A BullMQ worker that runs the pipeline for each job of the agent-run queue. */
export function startWorker(deps: WorkerDeps): AgentWorker {
  const { queue, config } = deps;
  const prefix = deps.prefix ?? 'issue-agent';
  const drainAll = new AbortController();
  let bot: Promise<BotIdentity> | undefined;

  const installationRepo = async (data: JobData) => {
    const octokit = await deps.probot.auth(data.installationId);
    return { octokit, gh: new GitHubRepo(octokit, { owner: data.owner, repo: data.repo }) };
  };

  /**
   * Says on the issue or PR that an infrastructure failure ended the job, instead of
   * leaving a status comment that claims to be working, and hands on waiting reviews.
   */
  const reportFailure = async (id: string, data: JobData, reason: string, log: Logger) => {
    const { gh } = await installationRepo(data);
    const body = statusComment({ phase: 'stuck', kind: data.kind, reason });
    const commentId = await queue.statusRefs.get(id, 0).catch(() => undefined);
    await (commentId ? gh.updateComment(commentId, body) : gh.comment(data.issueNumber, body)).catch((err: unknown) =>
      log.warn({ err }, 'could not post the failure'),
    );
    await gh.addLabels(data.issueNumber, [LABEL_STUCK]).catch(() => {});
    await gh.removeLabel(data.issueNumber, LABEL_WORKING).catch(() => {});
  };

  const finish = async (id: string, data: JobData, log: Logger) => {
    await queue.clearStop(id).catch(() => {});
    // Reviews that arrived while this revision ran start the next one.
    if (data.kind === 'revise') {
      const { next } = await queue.finishRevise(data).catch((err: unknown) => {
        log.error({ err }, 'could not hand on the waiting review feedback');
        return { next: undefined };
      });
      if (next) log.info({ next }, 'review feedback arrived meanwhile: next revision queued');
    }
  };

  const process = async (job: Job<JobData, Outcome>, token?: string): Promise<Outcome> => {
    const id = job.id!;
    const opened = openJob(deps.seal, id, job.data);
    if (!opened.ok) {
      // Not this app's job: nothing is read or written on GitHub for it, not even a comment.
      deps.log.error(
        { job: id, why: opened.why },
        'job refused: its data failed the authentication check (written into Redis by something other than this app?); not run',
      );
      throw new UnrecoverableError(`job data failed the authentication check: ${opened.why}`);
    }
    const data = opened.data;
    const log = deps.log.child({
      job: id,
      repo: `${data.owner}/${data.repo}`,
      issue: data.issueNumber,
      attempt: data.attempt,
    });
    const { octokit, gh } = await installationRepo(data);
    bot ??= deps.probot
      .auth()
      .then((app) =>
        botIdentity(
          { app, installation: octokit },
          { gheHost: config.env.GHE_HOST, name: config.env.GIT_COMMITTER_NAME },
        ),
      )
      .catch((err: unknown) => {
        bot = undefined;
        throw err;
      });
    const statusRef = {
      get: (waitMs?: number) => queue.statusRefs.get(id, waitMs),
      set: (commentId: number) => queue.statusRefs.set(id, commentId),
    };
    // `/agent stop` sets a flag in Redis; the job sees it at its next step.
    const stop = new AbortController();
    const poll = setInterval(() => {
      void queue.stopRequestedBy(id).then(
        (by) => {
          if (by && !stop.signal.aborted) {
            log.info({ by }, 'stop requested');
            stop.abort(by);
          }
        },
        (err: unknown) => log.warn({ err }, 'could not read the stop flag'),
      );
    }, deps.stopPollMs ?? 1_000);
    let ended = false;
    const started = Date.now();
    try {
      const outcome = await runPipeline(data, {
        statusRef,
        dailySpend: deps.dailySpend,
        costCaps: { jobUsd: config.env.MAX_JOB_COST_USD, dailyUsd: config.env.MAX_DAILY_COST_USD },
        planStore: deps.planStore,
        stages: deps.stages,
        config: { ...config, anthropicBaseUrl: config.env.ANTHROPIC_BASE_URL },
        runner: deps.runner,
        installNetwork: deps.installNetwork,
        gh,
        bot: await bot,
        log,
        signal: stop.signal,
        drain: drainAll.signal,
        feedback: data.kind === 'revise' ? () => queue.takeFeedback(data, id) : undefined,
        statusIntervalMs: deps.statusIntervalMs,
        onEnding: () => queue.markEnding(id),
      });
      ended = true;
      deps.onJobEnd?.(data.kind, outcome.kind, (Date.now() - started) / 1000);
      log.info({ outcome }, 'job finished');
      return outcome;
    } catch (err) {
      if (err instanceof Interrupted && token) {
        // Shutting down: back to the queue without using up a try; finished stages are saved.
        log.info('interrupted by shutdown: the job goes back to the queue and resumes from its last finished stage');
        await job.moveToDelayed(Date.now() + 1_000, token);
        throw new DelayedError();
      }
      // Infrastructure failures retry through BullMQ; on the last try, say so on the issue.
      const last = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.error({ err, last }, 'job failed');
      if (last) {
        deps.onJobEnd?.(data.kind, 'failed', (Date.now() - started) / 1000);
        await reportFailure(
          id,
          data,
          `an internal error stopped the job after ${job.attemptsMade + 1} tries: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
          log,
        );
        ended = true;
      }
      throw err;
    } finally {
      clearInterval(poll);
      if (ended) await finish(id, data, log);
    }
  };

  const connection = bullConnection(deps.redisUrl);
  const env = config.env;
  const worker = new Worker<JobData, Outcome>(QUEUE_NAME, process, {
    connection,
    prefix,
    concurrency: env.WORKER_CONCURRENCY,
    // The lock is renewed every half lockDuration while a job runs, whatever it waits on;
    // a crashed process stops renewing, and after stalledInterval another worker takes the
    // job back, which then resumes from its stage checkpoints. A job that keeps killing its
    // worker (out of memory, say) fails after maxStalledCount stalls instead of looping.
    lockDuration: env.WORKER_LOCK_MS,
    stalledInterval: env.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: env.WORKER_MAX_STALLED,
  });
  worker.on('error', (err) => deps.log.error({ err }, 'worker error'));

  // A job that stalled too often fails inside Redis, with no worker code running: the
  // queue's events tell one worker (the first to claim it) to say so on the issue.
  const events = new QueueEvents(QUEUE_NAME, { connection: bullConnection(deps.redisUrl), prefix });
  events.on('failed', ({ jobId, failedReason }) => {
    if (!/stalled/i.test(failedReason)) return;
    void (async () => {
      if (!(await queue.claimFinalisation(jobId))) return;
      const job = await queue.queue.getJob(jobId);
      const parsed = openJob(deps.seal, jobId, job?.data);
      if (!parsed.ok) return;
      const log = deps.log.child({ job: jobId });
      log.error({ failedReason }, 'job stalled too often');
      deps.onJobEnd?.(parsed.data.kind, 'failed');
      await reportFailure(
        jobId,
        parsed.data,
        `the worker running it stopped ${env.WORKER_MAX_STALLED + 1} times (crashed, killed or out of memory); re-add the label to try again`,
        log,
      );
      await finish(jobId, parsed.data, log);
    })().catch((err: unknown) => deps.log.error({ err, job: jobId }, 'could not finalise a stalled job'));
  });

  return {
    worker,
    async drain() {
      drainAll.abort('shutdown');
      await worker.close();
      await events.close();
    },
    state() {
      if (drainAll.signal.aborted || worker.closing) return 'closing';
      if (worker.isPaused()) return 'paused';
      return worker.isRunning() ? 'consuming' : 'starting';
    },
  };
}
