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

  /** Takes the checkpoint: it is used once, by the attempt a writer started. */
  async take(issue: string): Promise<PlanCheckpoint | undefined> {
    const raw = await this.redis.getdel(this.key(issue));
    if (!raw) return undefined;
    const parsed = CheckpointSchema.safeParse(JSON.parse(raw));
    return parsed.success ? parsed.data : undefined;
  }
}
