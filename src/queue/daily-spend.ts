import type { Redis } from 'ioredis';

/** Dollars spent per repository per day, across jobs and workers. */
export interface DailySpend {
  spentToday(repo: string): Promise<number>;
  /** Adds one paid call; answers the repository's total for the day, every worker's included. */
  add(repo: string, usd: number): Promise<number>;
}

/** Dollars per repository per UTC day, in Redis so every worker adds to the same sum. */
export class RedisDailySpend implements DailySpend {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'issue-agent',
  ) {}

  private key(repo: string, now = new Date()): string {
    return `${this.prefix}:spend:${repo}:${now.toISOString().slice(0, 10)}`;
  }

  async spentToday(repo: string): Promise<number> {
    return Number((await this.redis.get(this.key(repo))) ?? 0);
  }

  /** Adds one paid call atomically (workers share the key); answers the day's total across them. */
  async add(repo: string, usd: number): Promise<number> {
    const key = this.key(repo);
    if (usd <= 0) return this.spentToday(repo);
    const replies = await this.redis
      .multi()
      .incrbyfloat(key, usd)
      .expire(key, 3 * 24 * 3600)
      .exec();
    const [err, total] = replies?.[0] ?? [new Error('no reply from Redis')];
    if (err) throw err;
    return Number(total);
  }
}
