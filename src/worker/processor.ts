import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Probot } from 'probot';
import type { AppConfig } from '../config/env.js';
import type { DailySpend } from '../queue/daily-spend.js';
import type { PlanStore } from '../queue/plan-store.js';
import type { AgentQueue } from '../queue/queue.js';
import type { RecordSeal } from '../queue/record-seal.js';
import type { StageStore } from '../queue/stage-store.js';
import type { InstallNetworkPolicy } from '../sandbox/egress/policy.js';
import type { Environments } from '../sandbox/environment/environments.js';
import type { Runner } from '../sandbox/runner.js';
import { AppIdentity } from '../github/app-identity.js';
import { GitHubRepo, LABEL_STUCK } from '../github/facade.js';
import { Interrupted } from '../job/endings.js';
import { runJob } from '../job/lifecycle.js';
import { Thread } from '../job/thread.js';
import { type JobData, openJob, statusKeyOf } from '../queue/jobs.js';
import type { CiRecord } from '../queue/queue.js';
import type { Outcome } from '../queue/outcome.js';
import { statusComment } from '../report/status.js';

export interface WorkerDeps {
  config: AppConfig;
  probot: Probot;
  runner: Runner;
  /** Images and set-up environments, for repositories that name an image. */
  environments?: Environments;
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

/**
 * Runs one BullMQ job of the agent-run queue: opens its seal, gives it its GitHub access,
 * its stop signal and its status comment, runs the job's lifecycle, and decides what a
 * failure means (back to the queue on shutdown, a retry, or the last word on the thread).
 */
export class JobProcessor {
  /** Who the app is, read once per process (a failed read is tried again by the next job). */
  private readonly identity: AppIdentity;

  constructor(
    private readonly deps: WorkerDeps,
    /** Aborted when this worker shuts down. */
    private readonly drain: AbortSignal,
  ) {
    const { env } = deps.config;
    this.identity = new AppIdentity(deps.probot, { gheHost: env.GHE_HOST, committerName: env.GIT_COMMITTER_NAME });
  }

  async process(job: Job<JobData, Outcome>, token?: string): Promise<Outcome> {
    const { deps } = this;
    const id = job.id!;
    const data = this.open(id, job.data);
    const log = deps.log.child({
      job: id,
      repo: `${data.owner}/${data.repo}`,
      issue: data.issueNumber,
      attempt: data.attempt,
    });
    const { octokit, gh } = await this.installationRepo(data);
    const stop = pollStop(deps, id, log);
    const statusKey = statusKeyOf(data);
    const pullRef = { owner: data.owner, repo: data.repo, issueNumber: data.issueNumber };
    let ended = false;
    const started = Date.now();
    try {
      const outcome = await runJob(data, {
        statusRef: {
          get: (waitMs?: number) => deps.queue.statusRefs.get(statusKey, waitMs),
          set: (commentId: number) => deps.queue.statusRefs.set(statusKey, commentId),
        },
        dailySpend: deps.dailySpend,
        costCaps: { jobUsd: deps.config.env.MAX_JOB_COST_USD, dailyUsd: deps.config.env.MAX_DAILY_COST_USD },
        planStore: deps.planStore,
        stages: deps.stages,
        config: { ...deps.config, anthropicBaseUrl: deps.config.env.ANTHROPIC_BASE_URL },
        runner: deps.runner,
        ...(deps.environments ? { environments: deps.environments } : {}),
        installNetwork: deps.installNetwork,
        gh,
        bot: await this.identity.committer(octokit),
        log,
        signal: stop.signal,
        drain: this.drain,
        feedback: data.kind === 'revise' ? () => deps.queue.takeFeedback(data, id) : undefined,
        ...(data.kind === 'ci-fix'
          ? {
              ci: gh,
              ciRecord: {
                state: () => deps.queue.ciState(pullRef),
                record: (r: CiRecord) => deps.queue.recordCi(pullRef, r),
              },
              appLogin: (await this.identity.names()).login,
            }
          : {}),
        statusIntervalMs: deps.statusIntervalMs,
        onEnding: () => deps.queue.markEnding(id),
      });
      ended = true;
      // A revision's push starts CI on a new head: a red head that waited for it is stale.
      if (data.kind === 'revise' && outcome.kind === 'revised' && outcome.sha)
        await deps.queue
          .recordCi(pullRef, { kind: 'pushed', on: outcome.sha })
          .catch((err: unknown) => log.warn({ err }, 'could not update the CI record'));
      deps.onJobEnd?.(data.kind, outcome.kind, (Date.now() - started) / 1000);
      log.info({ outcome }, 'job finished');
      return outcome;
    } catch (err) {
      ended = await this.failed(job, data, err, { token, log, started });
      throw err instanceof Interrupted && token ? new DelayedError() : err;
    } finally {
      stop.dispose();
      if (ended) await this.finish(id, data, log);
    }
  }

  /**
   * Says on the issue or PR that an infrastructure failure ended the job, instead of
   * leaving a status comment that claims to be working.
   */
  async reportFailure(data: JobData, reason: string, log: Logger): Promise<void> {
    const { gh } = await this.installationRepo(data);
    const body = statusComment({ phase: 'stuck', kind: data.kind, reason });
    const commentId = await this.deps.queue.statusRefs.get(statusKeyOf(data), 0).catch(() => undefined);
    await new Thread(gh, data.issueNumber, log).endFromOutside(LABEL_STUCK, body, commentId);
  }

  /** After a job's end: its stop flag cleared, and reviews that arrived while a revision ran handed on. */
  async finish(id: string, data: JobData, log: Logger): Promise<void> {
    const { queue } = this.deps;
    await queue.clearStop(id).catch(() => {});
    // Reviews that arrived while this revision ran start the next one.
    if (data.kind === 'revise') {
      const { next } = await queue.finishRevise(data).catch((err: unknown) => {
        log.error({ err }, 'could not hand on the waiting review feedback');
        return { next: undefined };
      });
      if (next) log.info({ next }, 'review feedback arrived meanwhile: next revision queued');
    }
    // A red head that came while this job held the PR's branch is answered now.
    if (data.kind !== 'issue') {
      const { next } = await queue.finishCiFix(data).catch((err: unknown) => {
        log.error({ err }, 'could not hand on the waiting CI result');
        return { next: undefined };
      });
      if (next) log.info({ next }, 'failing CI arrived meanwhile: CI fix queued');
    }
  }

  /** The job's data, when its seal holds; a forged job is refused before anything is read or written on GitHub. */
  private open(id: string, raw: unknown): JobData {
    const opened = openJob(this.deps.seal, id, raw);
    if (opened.ok) return opened.data;
    this.deps.log.error(
      { job: id, why: opened.why },
      'job refused: its data failed the authentication check (written into Redis by something other than this app?); not run',
    );
    throw new UnrecoverableError(`job data failed the authentication check: ${opened.why}`);
  }

  /**
   * What a thrown job means. A shutdown: back to the queue without using up a try. Otherwise
   * BullMQ retries; on the last try the failure is said on the thread. Answers whether the job ended.
   */
  private async failed(
    job: Job<JobData, Outcome>,
    data: JobData,
    err: unknown,
    { token, log, started }: { token: string | undefined; log: Logger; started: number },
  ): Promise<boolean> {
    if (err instanceof Interrupted && token) {
      // Finished stages are saved: the job resumes from its last one.
      log.info('interrupted by shutdown: the job goes back to the queue and resumes from its last finished stage');
      await job.moveToDelayed(Date.now() + 1_000, token);
      return false;
    }
    const last = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    log.error({ err, last }, 'job failed');
    if (!last) return false;
    this.deps.onJobEnd?.(data.kind, 'failed', (Date.now() - started) / 1000);
    await this.reportFailure(
      data,
      `an internal error stopped the job after ${job.attemptsMade + 1} tries: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`,
      log,
    );
    return true;
  }

  private async installationRepo(data: JobData) {
    const octokit = await this.deps.probot.auth(data.installationId);
    return { octokit, gh: new GitHubRepo(octokit, { owner: data.owner, repo: data.repo }) };
  }
}

/** `/agent stop` sets a flag in Redis; the job sees it at its next step. */
function pollStop(deps: WorkerDeps, id: string, log: Logger): { signal: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const poll = setInterval(() => {
    void deps.queue.stopRequestedBy(id).then(
      (by) => {
        if (by && !stop.signal.aborted) {
          log.info({ by }, 'stop requested');
          stop.abort(by);
        }
      },
      (err: unknown) => log.warn({ err }, 'could not read the stop flag'),
    );
  }, deps.stopPollMs ?? 1_000);
  return { signal: stop.signal, dispose: () => clearInterval(poll) };
}
