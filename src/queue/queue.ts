import { Queue, type ConnectionOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { StatusRefs } from './status-ref.js';
import { z } from 'zod';
import { JobDataSchema, QUEUE_NAME, issueKey, jobId, type JobData } from './jobs.js';

export type EnqueueResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  | { kind: 'already-active'; jobId: string; attempt: number };

export type ReviseResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  /** A revise job is queued or running: the feedback joins it (queued) or the next one. */
  | { kind: 'batched'; jobId: string };

export type StopResult =
  | { kind: 'removed'; jobId: string }
  | { kind: 'stopping'; jobId: string }
  | { kind: 'nothing-running' };

/** Review feedback waiting for a revise job: one submitted review, or a writer's `/agent retry` text. */
export const FeedbackSchema = z.strictObject({
  reviewId: z.number().int().positive().optional(),
  text: z.string().max(4_000).optional(),
  sender: z.string().min(1).max(100),
});
export type Feedback = z.infer<typeof FeedbackSchema>;

const ACTIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);
const QUEUED_STATES = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children']);
const DELIVERY_TTL_S = 7 * 24 * 3600;
const MARKER_TTL_S = 24 * 3600;
// Moves the waiting feedback to the job's own list the first time; later calls read that.
const TAKE = `if redis.call('exists', KEYS[2]) == 0 and redis.call('exists', KEYS[1]) == 1 then redis.call('rename', KEYS[1], KEYS[2]) redis.call('expire', KEYS[2], ARGV[1]) end return redis.call('lrange', KEYS[2], 0, -1)`;

type IssueTrigger = Omit<JobData, 'attempt' | 'kind' | 'prNumber'> & { kind?: 'issue' };
type ReviseTrigger = Omit<JobData, 'attempt' | 'kind' | 'prNumber' | 'instructions'> & { feedback: Feedback };

/**
 * The agent-run queue with the rules that keep one result per trigger: a delivery id is
 * handled once, and an issue or pull request has at most one unfinished job. A trigger
 * after the last attempt finished starts the next attempt.
 */
export class AgentQueue {
  readonly queue: Queue<JobData>;
  readonly statusRefs: StatusRefs;

  constructor(
    connection: ConnectionOptions,
    private readonly redis: Redis,
    private readonly prefix = 'issue-agent',
  ) {
    this.statusRefs = new StatusRefs(redis, prefix);
    this.queue = new Queue<JobData>(QUEUE_NAME, {
      connection,
      prefix: prefix,
      defaultJobOptions: {
        // Infrastructure failures (a worker crash, a Redis blip) retry; the agent's own
        // failures end in an escalation inside the job, so they never reach this.
        attempts: 3,
        backoff: { type: 'exponential', delay: 5_000 },
        removeOnComplete: { age: 30 * 24 * 3600, count: 5_000 },
        removeOnFail: { age: 30 * 24 * 3600, count: 5_000 },
      },
    });
  }

  private keyOf(kind: JobData['kind'], d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, what: string): string {
    return `${this.prefix}:${kind === 'revise' ? 'revise-' : ''}${what}:${issueKey(d)}`;
  }

  /**
   * Runs `fn` once per delivery id: a redelivered webhook answers `duplicate-delivery`.
   * When `fn` throws nothing was enqueued, so the delivery id is released for a retry.
   */
  private async once<T>(deliveryId: string, key: string, fn: () => Promise<T>): Promise<T | { kind: 'duplicate-delivery'; deliveryId: string }> {
    const deliveryKey = `${this.prefix}:delivery:${deliveryId}`;
    const fresh = await this.redis.set(deliveryKey, key, 'EX', DELIVERY_TTL_S, 'NX');
    if (fresh !== 'OK') return { kind: 'duplicate-delivery', deliveryId };
    try {
      return await fn();
    } catch (err) {
      await this.redis.del(deliveryKey).catch(() => {});
      throw err;
    }
  }

  /** Makes check → increment → add atomic across web and worker processes for one issue or PR. */
  private async locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const lockKey = `${this.prefix}:lock:${key}`;
    const token = `${process.pid}-${Date.now()}-${Math.random()}`;
    let locked = false;
    for (let i = 0; i < 300 && !locked; i++) {
      locked = (await this.redis.set(lockKey, token, 'PX', 30_000, 'NX')) === 'OK';
      if (!locked) await new Promise((r) => setTimeout(r, 100));
    }
    if (!locked) throw new Error(`could not lock ${lockKey} within 30s; is another process stuck?`);
    try {
      return await fn();
    } finally {
      // Release only our own lock.
      await this.redis.eval('if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end', 1, lockKey, token);
    }
  }

  /** `webComments`: the web writes the status comment once it has answered the webhook. */
  private async add(data: JobData, webComments = true): Promise<string> {
    const full = JobDataSchema.parse(data);
    const id = jobId(full);
    // Marked before the job exists, so a worker that starts at once waits for the web's
    // status comment instead of adding one.
    if (webComments) await this.statusRefs.markPending(id);
    await this.queue.add(full.kind, full, { jobId: id });
    return id;
  }

  private async nextAttempt(kind: JobData['kind'], d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>): Promise<number> {
    return Number((await this.redis.get(this.keyOf(kind, d, 'attempt'))) ?? 0) + 1;
  }

  /**
   * Enqueues the next attempt for an issue unless this delivery was seen or the issue has
   * an unfinished job.
   */
  async enqueue(data: IssueTrigger): Promise<EnqueueResult> {
    const key = issueKey(data);
    return this.once(data.deliveryId, key, () =>
      this.locked(key, async (): Promise<EnqueueResult> => {
        const current = (await this.nextAttempt('issue', data)) - 1;
        if (current > 0) {
          const id = jobId({ ...data, attempt: current });
          const state = await this.queue.getJobState(id);
          // A job that has posted its last word is over for people, though BullMQ may not
          // have recorded it as completed yet.
          const ending = (await this.redis.exists(`${this.prefix}:ending:${id}`)) === 1;
          if (ACTIVE_STATES.has(state) && !ending) return { kind: 'already-active', jobId: id, attempt: current };
        }
        const attempt = current + 1;
        const id = await this.add({ ...data, kind: 'issue', attempt });
        await this.redis.set(this.keyOf('issue', data, 'attempt'), String(attempt));
        return { kind: 'enqueued', jobId: id, attempt };
      }),
    );
  }

  /**
   * Adds review feedback for a pull request of the app's. One revise job runs per PR at a
   * time; feedback that arrives while one is queued joins it, while one runs waits for the
   * next, which the running job enqueues when it ends (`finishRevise`).
   */
  async enqueueRevise(data: ReviseTrigger): Promise<ReviseResult> {
    const key = issueKey(data);
    const { feedback, ...trigger } = data;
    return this.once(data.deliveryId, `${key}:revise`, () =>
      this.locked(key, async (): Promise<ReviseResult> => {
        await this.redis.rpush(this.keyOf('revise', data, 'feedback'), JSON.stringify(FeedbackSchema.parse(feedback)));
        const running = await this.redis.get(this.keyOf('revise', data, 'active'));
        if (running && ACTIVE_STATES.has(await this.queue.getJobState(running))) return { kind: 'batched', jobId: running };
        return this.startRevise(trigger);
      }),
    );
  }

  private async startRevise(trigger: Omit<ReviseTrigger, 'feedback'>, webComments = true): Promise<{ kind: 'enqueued'; jobId: string; attempt: number }> {
    const attempt = await this.nextAttempt('revise', trigger);
    const id = await this.add({ ...trigger, kind: 'revise', prNumber: trigger.issueNumber, attempt }, webComments);
    await this.redis.set(this.keyOf('revise', trigger, 'attempt'), String(attempt));
    await this.redis.set(this.keyOf('revise', trigger, 'active'), id, 'EX', MARKER_TTL_S);
    return { kind: 'enqueued', jobId: id, attempt };
  }

  /**
   * The feedback a revise job addresses: everything waiting for the PR, taken at once and
   * kept under the job's id, so a retry of the same job (after a crash) addresses the same.
   */
  async takeFeedback(d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, forJob: string): Promise<Feedback[]> {
    const listKey = this.keyOf('revise', d, 'feedback');
    const takenKey = `${this.prefix}:revise-taken:${forJob}`;
    const items = (await this.redis.eval(TAKE, 2, listKey, takenKey, String(MARKER_TTL_S * 7))) as string[];
    // A review redelivered by GitHub was pushed twice: it is addressed once.
    const seen = new Set<number>();
    return items.flatMap((raw) => {
      const parsed = FeedbackSchema.safeParse(JSON.parse(raw));
      if (!parsed.success) return [];
      const { reviewId } = parsed.data;
      if (reviewId !== undefined) {
        if (seen.has(reviewId)) return [];
        seen.add(reviewId);
      }
      return [parsed.data];
    });
  }

  /**
   * Called when a revise job ends, however it ends: feedback that arrived while it ran
   * starts the next job; otherwise the PR has no revise job any more.
   */
  async finishRevise(job: JobData): Promise<{ next?: string }> {
    const key = issueKey(job);
    return this.locked(key, async () => {
      const activeKey = this.keyOf('revise', job, 'active');
      if ((await this.redis.get(activeKey)) !== jobId(job)) return {};
      if ((await this.redis.llen(this.keyOf('revise', job, 'feedback'))) > 0) {
        const next = await this.startRevise({ installationId: job.installationId, owner: job.owner, repo: job.repo, issueNumber: job.issueNumber, deliveryId: `after-${jobId(job)}`, sender: job.sender }, false);
        return { next: next.jobId };
      }
      await this.redis.del(activeKey);
      return {};
    });
  }

  /**
   * `/agent stop`: a queued job is removed; a running one is asked to stop at its next step.
   * `kind` says whether the thread is an issue or one of the app's pull requests.
   */
  async requestStop(kind: JobData['kind'], d: Pick<JobData, 'owner' | 'repo' | 'issueNumber'>, by: string): Promise<StopResult> {
    return this.locked(issueKey(d), async (): Promise<StopResult> => {
      const id =
        kind === 'revise'
          ? await this.redis.get(this.keyOf('revise', d, 'active'))
          : await (async () => {
              const attempt = (await this.nextAttempt('issue', d)) - 1;
              return attempt > 0 ? jobId({ ...d, attempt }) : null;
            })();
      if (!id) return { kind: 'nothing-running' };
      const state = await this.queue.getJobState(id);
      // A job that a worker took between the two reads is locked: remove() answers 0, and
      // the job is asked to stop instead.
      if (QUEUED_STATES.has(state) && (await this.queue.remove(id).catch(() => 0)) === 1) {
        if (kind === 'revise') await this.redis.del(this.keyOf('revise', d, 'active'), this.keyOf('revise', d, 'feedback'));
        return { kind: 'removed', jobId: id };
      }
      if (!QUEUED_STATES.has(state) && state !== 'active') {
        return { kind: 'nothing-running' };
      }
      await this.redis.set(`${this.prefix}:stop:${id}`, by, 'EX', MARKER_TTL_S);
      return { kind: 'stopping', jobId: id };
    });
  }

  /** The job has nothing left but its final status: a new trigger may start the next attempt. */
  async markEnding(id: string): Promise<void> {
    await this.redis.set(`${this.prefix}:ending:${id}`, '1', 'EX', MARKER_TTL_S);
  }

  /** True for the one process that reports a job's end when no worker code ran it (a stall). */
  async claimFinalisation(id: string): Promise<boolean> {
    return (await this.redis.set(`${this.prefix}:finalised:${id}`, '1', 'EX', MARKER_TTL_S, 'NX')) === 'OK';
  }

  /** Who asked the job to stop, if anyone. */
  async stopRequestedBy(id: string): Promise<string | undefined> {
    return (await this.redis.get(`${this.prefix}:stop:${id}`)) ?? undefined;
  }

  async clearStop(id: string): Promise<void> {
    await this.redis.del(`${this.prefix}:stop:${id}`);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
