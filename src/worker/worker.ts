import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Probot } from 'probot';
import type { AppConfig } from '../config/env.js';
import { botIdentity, type BotIdentity } from '../github/app-identity.js';
import { GitHubRepo } from '../github/facade.js';
import { JobDataSchema, QUEUE_NAME, type JobData } from '../queue/jobs.js';
import { bullConnection } from '../queue/redis.js';
import type { StatusRefs } from '../queue/status-ref.js';
import { statusComment } from '../report/status.js';
import type { Runner } from '../sandbox/runner.js';
import { LABEL_STUCK, LABEL_WORKING, runPipeline, type DailySpend, type Outcome, type PlanStore } from './pipeline.js';

export interface WorkerDeps {
  config: AppConfig;
  probot: Probot;
  runner: Runner;
  redisUrl: string;
  statusRefs: StatusRefs;
  dailySpend?: DailySpend;
  planStore?: PlanStore;
  prefix?: string;
  log: Logger;
}

/** A BullMQ worker that runs the pipeline for each job of the agent-run queue. */
export function startWorker(deps: WorkerDeps): Worker<JobData, Outcome> {
  let bot: Promise<BotIdentity> | undefined;
  const process = async (job: Job<JobData, Outcome>): Promise<Outcome> => {
    const data = JobDataSchema.parse(job.data);
    const log = deps.log.child({ job: job.id, repo: `${data.owner}/${data.repo}`, issue: data.issueNumber, attempt: data.attempt });
    const octokit = await deps.probot.auth(data.installationId);
    const gh = new GitHubRepo(octokit, { owner: data.owner, repo: data.repo });
    bot ??= deps.probot
      .auth()
      .then((app) => botIdentity({ app, installation: octokit }, { gheHost: deps.config.env.GHE_HOST, name: deps.config.env.GIT_COMMITTER_NAME }))
      .catch((err: unknown) => {
      bot = undefined;
      throw err;
    });
    const id = job.id!;
    const statusRef = { get: (waitMs?: number) => deps.statusRefs.get(id, waitMs), set: (commentId: number) => deps.statusRefs.set(id, commentId) };
    try {
      const outcome = await runPipeline(data, {
        statusRef,
        dailySpend: deps.dailySpend,
        planStore: deps.planStore,
        config: { ...deps.config, anthropicBaseUrl: deps.config.env.ANTHROPIC_BASE_URL },
        runner: deps.runner,
        gh,
        bot: await bot,
        log,
      });
      log.info({ outcome }, 'job finished');
      return outcome;
    } catch (err) {
      // Infrastructure failures retry through BullMQ; on the last try, say so on the issue
      // rather than leave a status comment that claims to be working.
      const last = err instanceof UnrecoverableError || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      log.error({ err, last }, 'job failed');
      if (last) {
        const reason = `an internal error stopped the job after ${job.attemptsMade + 1} tries: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`;
        const body = statusComment({ phase: 'stuck', reason });
        const commentId = await statusRef.get(0).catch(() => undefined);
        await (commentId ? gh.updateComment(commentId, body) : gh.comment(data.issueNumber, body)).catch(() => {});
        await gh.addLabels(data.issueNumber, [LABEL_STUCK]).catch(() => {});
        await gh.removeLabel(data.issueNumber, LABEL_WORKING).catch(() => {});
      }
      throw err;
    }
  };
  const worker = new Worker<JobData, Outcome>(QUEUE_NAME, process, {
    connection: bullConnection(deps.redisUrl),
    prefix: deps.prefix ?? 'issue-agent',
    concurrency: deps.config.env.WORKER_CONCURRENCY,
    // A job holds its lock while a long model call or test run is in flight; stalled-job
    // detection hands it to another worker only when this process is really gone.
    lockDuration: 60_000,
    stalledInterval: 30_000,
    maxStalledCount: 2,
  });
  worker.on('error', (err) => deps.log.error({ err }, 'worker error'));
  return worker;
}
