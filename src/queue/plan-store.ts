import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { PlanSchema } from '../agent/tools/submit-plan.js';
import type { RecordSeal } from './record-seal.js';

const CheckpointSchema = z.object({ plan: PlanSchema, acceptanceCriteria: z.array(z.string()), baseSha: z.string() });
/** A plan that waits for a writer's go, with what it was made for and on. */
export type PlanCheckpoint = z.infer<typeof CheckpointSchema>;

export interface PlanStore {
  save(issue: string, c: PlanCheckpoint): Promise<void>;
  load(issue: string): Promise<PlanCheckpoint | undefined>;
  /** Drops the checkpoint once a job that used it has ended (PR or escalation). */
  clear(issue: string): Promise<void>;
}
const TTL_S = 30 * 24 * 3600;

/** Plans that wait for a writer's go, per issue, so the next attempt resumes from them. */
export class RedisPlanStore implements PlanStore {
  constructor(
    private readonly redis: Redis,
    /** Seals each plan for its issue: a plan someone else wrote into Redis is never resumed. */
    private readonly seal: RecordSeal,
    private readonly prefix = 'issue-agent',
    private readonly log?: Pick<Logger, 'error'>,
  ) {}

  private key(issue: string): string {
    return `${this.prefix}:checkpoint:${issue}`;
  }

  async save(issue: string, c: PlanCheckpoint): Promise<void> {
    await this.redis.set(this.key(issue), this.seal.seal('plan', issue, JSON.stringify(c)), 'EX', TTL_S);
  }

  /** The checkpoint; it stays until clear(), so a retried job still resumes from it. */
  async load(issue: string): Promise<PlanCheckpoint | undefined> {
    const stored = await this.redis.get(this.key(issue));
    if (!stored) return undefined;
    const raw = this.seal.open('plan', issue, stored);
    if (raw === undefined) {
      this.log?.error(
        { issue, key: this.key(issue) },
        'saved plan refused: its seal does not hold (written into Redis by something other than this app?); planning runs again',
      );
      return undefined;
    }
    try {
      const parsed = CheckpointSchema.safeParse(JSON.parse(raw));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }

  async clear(issue: string): Promise<void> {
    await this.redis.del(this.key(issue));
  }
}
