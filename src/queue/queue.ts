import { Queue, type ConnectionOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { StatusRefs } from './status-ref.js';
import { JobDataSchema, QUEUE_NAME, issueKey, jobId, type JobData } from './jobs.js';

export type EnqueueResult =
  | { kind: 'enqueued'; jobId: string; attempt: number }
  | { kind: 'duplicate-delivery'; deliveryId: string }
  | { kind: 'already-active'; jobId: string; attempt: number };

const ACTIVE_STATES = new Set(['active', 'waiting', 'delayed', 'prioritized', 'waiting-children']);
const DELIVERY_TTL_S = 7 * 24 * 3600;

/**
 * The agent-run queue with the rules that keep one result per trigger: a delivery id is
 * handled once, and an issue has at most one unfinished job. A trigger after the last
 * attempt finished starts the next attempt.
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

  /**
   * Enqueues the next attempt for an issue unless this delivery was seen or the issue has
   * an unfinished job. The job's status comment is marked pending before the job exists,
   * so a worker that starts at once waits for the web's comment instead of adding one.
   */
  async enqueue(data: Omit<JobData, 'attempt'>): Promise<EnqueueResult> {
    const key = issueKey(data);
    const deliveryKey = `${this.prefix}:delivery:${data.deliveryId}`;
    const fresh = await this.redis.set(deliveryKey, key, 'EX', DELIVERY_TTL_S, 'NX');
    if (fresh !== 'OK') return { kind: 'duplicate-delivery', deliveryId: data.deliveryId };
    try {
      return await this.enqueueLocked(data, key);
    } catch (err) {
      // Nothing was enqueued: GitHub's redelivery of this same event must be able to.
      await this.redis.del(deliveryKey).catch(() => {});
      throw err;
    }
  }

  private async enqueueLocked(data: Omit<JobData, 'attempt'>, key: string): Promise<EnqueueResult> {
    // Two deliveries for one issue (a double label) may race: the lock makes
    // check → increment → add atomic across web processes.
    const lockKey = `${this.prefix}:lock:${key}`;
    const token = `${process.pid}-${Date.now()}-${Math.random()}`;
    let locked = false;
    for (let i = 0; i < 300 && !locked; i++) {
      locked = (await this.redis.set(lockKey, token, 'PX', 30_000, 'NX')) === 'OK';
      if (!locked) await new Promise((r) => setTimeout(r, 100));
    }
    if (!locked) throw new Error(`could not lock ${lockKey} within 30s; is another web process stuck?`);
    try {
      const attemptKey = `${this.prefix}:attempt:${key}`;
      const current = Number((await this.redis.get(attemptKey)) ?? 0);
      if (current > 0) {
        const id = jobId({ ...data, attempt: current });
        const state = await this.queue.getJobState(id);
        if (ACTIVE_STATES.has(state)) return { kind: 'already-active', jobId: id, attempt: current };
      }
      const attempt = current + 1;
      const full = JobDataSchema.parse({ ...data, attempt });
      const id = jobId(full);
      await this.statusRefs.markPending(id);
      await this.queue.add(full.kind, full, { jobId: id });
      await this.redis.set(attemptKey, String(attempt));
      return { kind: 'enqueued', jobId: id, attempt };
    } finally {
      // Release only our own lock.
      await this.redis.eval('if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) end', 1, lockKey, token);
    }
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
