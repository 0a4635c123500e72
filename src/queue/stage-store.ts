import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { PlanSchema } from '../agent/tools/submit-plan.js';
import type { RecordSeal } from './record-seal.js';

const TTL_S = 7 * 24 * 3600;
/** A change bigger than this is not saved: a retry then codes it again. */
const MAX_PATCH_BYTES = 4 * 1024 * 1024;

const CheckResultSchema = z.object({
  name: z.enum(['setup', 'install', 'lint', 'typecheck', 'test', 'ci']),
  command: z.string(),
  ok: z.boolean(),
  exitCode: z.number().nullable(),
  timedOut: z.boolean(),
  durationMs: z.number(),
  tail: z.string(),
  output: z.string(),
});

const ReportSchema = z.object({
  ok: z.boolean(),
  results: z.array(CheckResultSchema),
  failed: CheckResultSchema.optional(),
});

/**
 * What each finished stage of one job produced. Saved as each stage finishes, so a job
 * that BullMQ retries after a crash resumes from the last one instead of paying again.
 */
export const SavedStagesSchema = z.object({
  scope: z.object({ acceptanceCriteria: z.array(z.string()) }).optional(),
  /** The branch and PR title, fixed at the first try: an issue retitled meanwhile must not make a second branch and PR. */
  naming: z.object({ branch: z.string(), title: z.string() }).optional(),
  plan: PlanSchema.optional(),
  /** The work tree's change as a binary patch on `baseSha`: coded in `round`, and whether the checks passed on it. */
  change: z
    .object({
      round: z.number().int().positive(),
      validated: z.boolean(),
      patch: z.string(),
      baseSha: z.string(),
      summary: z.string(),
      threads: z
        .array(z.object({ comment_id: z.number(), outcome: z.enum(['addressed', 'not_addressed']), reply: z.string() }))
        .optional(),
      touched: z.array(z.string()),
      scopeRequests: z.array(z.object({ path: z.string(), reason: z.string() })),
      tried: z.array(z.string()),
      report: ReportSchema.optional(),
      /** When the checks passed: the commit's date, so committing again after a crash makes the same commit. */
      at: z.string().optional(),
    })
    .optional(),
  /** The commit is on the remote branch. */
  pushed: z.object({ sha: z.string(), branch: z.string(), stat: z.string() }).optional(),
  /** Review threads already answered. */
  replied: z.array(z.number()).optional(),
});
export type SavedStages = z.infer<typeof SavedStagesSchema>;

export interface StageStore {
  load(jobId: string): Promise<SavedStages>;
  /** False when the value was too big to keep: a retry then does that stage again. */
  save<K extends keyof SavedStages>(jobId: string, stage: K, value: NonNullable<SavedStages[K]>): Promise<boolean>;
}

/**
 * Saved stage outputs in one Redis hash per job, a field per stage, each sealed (RecordSeal)
 * for its job and stage: a field that fails the seal is dropped with an error naming it,
 * and that stage runs again.
 */
export class RedisStageStore implements StageStore {
  constructor(
    private readonly redis: Redis,
    private readonly seal: RecordSeal,
    private readonly prefix = 'issue-agent',
    private readonly log?: Pick<Logger, 'error'>,
  ) {}

  private key(jobId: string): string {
    return `${this.prefix}:stages:${jobId}`;
  }

  async load(jobId: string): Promise<SavedStages> {
    const raw = await this.redis.hgetall(this.key(jobId));
    const out: Record<string, unknown> = {};
    for (const [field, value] of Object.entries(raw)) {
      const text = this.seal.open(`stage:${field}`, jobId, value);
      if (text === undefined) {
        this.log?.error(
          { job: jobId, stage: field, key: this.key(jobId) },
          'stage checkpoint refused: its seal does not hold (written into Redis by something other than this app?); the stage runs again',
        );
        continue;
      }
      try {
        out[field] = JSON.parse(text);
      } catch {
        // A damaged field only costs that stage again.
      }
    }
    // Fields that no longer fit the schema are dropped one by one, not all together.
    const checked: SavedStages = {};
    for (const [field, value] of Object.entries(out)) {
      const one = SavedStagesSchema.safeParse({ [field]: value });
      if (one.success) Object.assign(checked, one.data);
    }
    return checked;
  }

  async save<K extends keyof SavedStages>(
    jobId: string,
    stage: K,
    value: NonNullable<SavedStages[K]>,
  ): Promise<boolean> {
    const text = JSON.stringify(value);
    if (Buffer.byteLength(text) > MAX_PATCH_BYTES) return false;
    await this.redis
      .multi()
      .hset(this.key(jobId), stage, this.seal.seal(`stage:${stage}`, jobId, text))
      .expire(this.key(jobId), TTL_S)
      .exec();
    return true;
  }
}
