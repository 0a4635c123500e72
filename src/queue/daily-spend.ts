import type { Redis } from 'ioredis';
import type { DailySpend } from '../worker/pipeline.js';

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

  async add(repo: string, usd: number): Promise<void> {
    if (usd <= 0) return;
    const key = this.key(repo);
    await this.redis.multi().incrbyfloat(key, usd).expire(key, 3 * 24 * 3600).exec();
  }
}
