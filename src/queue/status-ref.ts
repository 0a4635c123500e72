import type { Redis } from 'ioredis';

const TTL_S = 30 * 24 * 3600;
const PENDING = 'pending';

/**
 * Where a job's one status comment is. The web marks it pending when it enqueues and
 * fills in the id once the comment exists, after answering the webhook; the worker waits
 * for it briefly, and creates the comment itself only when the web never did.
 */
export class StatusRefs {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'issue-agent',
  ) {}

  private key(jobId: string): string {
    return `${this.prefix}:status:${jobId}`;
  }

  async markPending(jobId: string): Promise<void> {
    await this.redis.set(this.key(jobId), PENDING, 'EX', TTL_S, 'NX');
  }

  async set(jobId: string, commentId: number): Promise<void> {
    await this.redis.set(this.key(jobId), String(commentId), 'EX', TTL_S);
  }

  /** The comment id; while the web's comment is pending, waits up to `timeoutMs` for it. */
  async get(jobId: string, timeoutMs = 15_000): Promise<number | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.redis.get(this.key(jobId));
      if (v !== null && v !== PENDING) return Number(v);
      if (v === null || Date.now() > deadline) return undefined;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
