import type { Redis } from 'ioredis';
import { z } from 'zod';
import { PlanSchema } from '../agent/tools/submit-plan.js';
import type { PlanCheckpoint, PlanStore } from '../worker/pipeline.js';

const CheckpointSchema = z.object({ plan: PlanSchema, acceptanceCriteria: z.array(z.string()), baseSha: z.string() });
const TTL_S = 30 * 24 * 3600;

/** Plans that wait for a writer's go, per issue, so the next attempt resumes from them. */
export class RedisPlanStore implements PlanStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'issue-agent',
  ) {}

  private key(issue: string): string {
    return `${this.prefix}:checkpoint:${issue}`;
  }

  async save(issue: string, c: PlanCheckpoint): Promise<void> {
    await this.redis.set(this.key(issue), JSON.stringify(c), 'EX', TTL_S);
  }

  /** The checkpoint; it stays until clear(), so a retried job still resumes from it. */
  async load(issue: string): Promise<PlanCheckpoint | undefined> {
    const raw = await this.redis.get(this.key(issue));
    if (!raw) return undefined;
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
