import { QueueEvents, Worker } from 'bullmq';
import { type JobData, openJob, QUEUE_NAME } from '../queue/jobs.js';
import type { Outcome } from '../queue/outcome.js';
import { bullConnection } from '../queue/redis.js';
import { JobProcessor, type WorkerDeps } from './processor.js';

export type { WorkerDeps };

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

/** A BullMQ worker that runs each job of the agent-run queue through its lifecycle (job/lifecycle.ts). */
export function startWorker(deps: WorkerDeps): AgentWorker {
  const prefix = deps.prefix ?? 'issue-agent';
  const drainAll = new AbortController();
  const jobs = new JobProcessor(deps, drainAll.signal);
  const env = deps.config.env;
  const worker = new Worker<JobData, Outcome>(QUEUE_NAME, (job, token) => jobs.process(job, token), {
    connection: bullConnection(deps.redisUrl),
    prefix,
    concurrency: env.WORKER_CONCURRENCY,
    // The lock is renewed every half lockDuration while a job runs, whatever it waits on;
    // a crashed process stops renewing, and after stalledInterval another worker takes the
    // job back, which then resumes from its saved stages. A job that keeps killing its
    // worker (out of memory, say) fails after maxStalledCount stalls instead of looping.
    lockDuration: env.WORKER_LOCK_MS,
    stalledInterval: env.WORKER_STALLED_INTERVAL_MS,
    maxStalledCount: env.WORKER_MAX_STALLED,
  });
  worker.on('error', (err) => deps.log.error({ err }, 'worker error'));
  const events = watchStalledJobs(deps, jobs, prefix);

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

/**
 * A job that stalled too often fails inside Redis, with no worker code running: the
 * queue's events tell one worker (the first to claim it) to say so on the issue.
 */
function watchStalledJobs(deps: WorkerDeps, jobs: JobProcessor, prefix: string): QueueEvents {
  const { queue } = deps;
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
      await jobs.reportFailure(
        parsed.data,
        `the worker running it stopped ${deps.config.env.WORKER_MAX_STALLED + 1} times (crashed, killed or out of memory); re-add the label to try again`,
        log,
      );
      await jobs.finish(jobId, parsed.data, log);
    })().catch((err: unknown) => deps.log.error({ err, job: jobId }, 'could not finalise a stalled job'));
  });
  return events;
}
