import { z } from 'zod';
import { parseDocument } from 'yaml';
import { DEFAULT_BUDGETS, type Budgets } from '../agent/budget.js';
import { DEFAULT_STUCK_LIMITS, type StuckLimits } from '../agent/stuck.js';

export const REPO_CONFIG_PATH = '.github/agent.yml';

const command = z.string().trim().min(1).max(1000);

/** `.github/agent.yml`: every field optional; read from the default branch only. */
export const RepoConfigSchema = z
  .object({
    commands: z
      .object({
        install: command.optional().describe('installs dependencies; the only step that may reach package registries'),
        test: command.optional(),
        lint: command.optional(),
        typecheck: command.optional(),
      })
      .strict()
      .optional(),
    max_rounds: z.number().int().min(1).max(10).optional().describe('code ⇄ validate rounds before escalating (default 3)'),
    checkpoint: z
      .strictObject({
        min_confidence: z.number().min(0).max(1).optional().describe('below this plan confidence, stop after planning and ask to go ahead (default 0.5)'),
        max_files: z.number().int().min(1).optional().describe('above this many files to change, ask first (default 10)'),
        max_lines: z.number().int().min(1).optional().describe('above this many estimated changed lines, ask first (default 400)'),
      })
      .optional(),
    models: z
      .strictObject({
        frontier: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,100}$/).optional().describe('model id for planning'),
        mid: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,100}$/).optional().describe('model id for coding'),
        fast: z.string().regex(/^[a-z0-9][a-z0-9._-]{2,100}$/).optional().describe('model id for scoping and log summaries'),
      })
      .optional(),
    stuck: z
      .strictObject({
        tool_failures_in_a_row: z.number().int().min(2).max(50).optional().describe('one tool failing this many times in a row (default 5)'),
        same_failing_call: z.number().int().min(2).max(50).optional().describe('the same failing call this many times (default 3)'),
        turns_without_action: z.number().int().min(1).max(20).optional().describe('model turns in a row without a tool call (default 3)'),
        cycle_repeats: z.number().int().min(2).max(20).optional().describe('repetitions of a call cycle with no edit (default 3)'),
      })
      .optional(),
    budgets: z
      .strictObject({
        max_model_calls: z.number().int().min(1).max(2000).optional().describe('model calls per job (default 120)'),
        max_input_tokens: z.number().int().min(1000).optional().describe('input tokens per job, cached included (default 6,000,000)'),
        max_output_tokens: z.number().int().min(100).optional().describe('output tokens per job (default 200,000)'),
        max_cost_usd: z.number().positive().max(1000).optional().describe('dollars per job (default 10)'),
        max_minutes: z.number().positive().max(24 * 60).optional().describe('wall-clock minutes per job (default 45)'),
        daily_cost_usd: z.number().positive().max(100_000).optional().describe('dollars per repository per day (default 50)'),
      })
      .optional(),
    instructions: z.string().max(10_000).optional().describe('free text for the agent, read as repository rules'),
  })
  .strict();
export type RepoConfig = z.infer<typeof RepoConfigSchema>;

/** The job's budgets: the repository's settings over the defaults. */
export function budgetsOf(config: RepoConfig): Budgets {
  const b = config.budgets ?? {};
  return {
    maxModelCalls: b.max_model_calls ?? DEFAULT_BUDGETS.maxModelCalls,
    maxInputTokens: b.max_input_tokens ?? DEFAULT_BUDGETS.maxInputTokens,
    maxOutputTokens: b.max_output_tokens ?? DEFAULT_BUDGETS.maxOutputTokens,
    maxCostUsd: b.max_cost_usd ?? DEFAULT_BUDGETS.maxCostUsd,
    maxMinutes: b.max_minutes ?? DEFAULT_BUDGETS.maxMinutes,
    dailyCostUsd: b.daily_cost_usd ?? DEFAULT_BUDGETS.dailyCostUsd,
  };
}

export function stuckLimitsOf(config: RepoConfig): StuckLimits {
  const c = config.stuck ?? {};
  return {
    toolFailuresInARow: c.tool_failures_in_a_row ?? DEFAULT_STUCK_LIMITS.toolFailuresInARow,
    sameFailingCall: c.same_failing_call ?? DEFAULT_STUCK_LIMITS.sameFailingCall,
    turnsWithoutAction: c.turns_without_action ?? DEFAULT_STUCK_LIMITS.turnsWithoutAction,
    cycleRepeats: c.cycle_repeats ?? DEFAULT_STUCK_LIMITS.cycleRepeats,
  };
}

export interface CheckpointRule {
  minConfidence: number;
  maxFiles: number;
  maxLines: number;
}

export function checkpointOf(config: RepoConfig): CheckpointRule {
  const c = config.checkpoint ?? {};
  return { minConfidence: c.min_confidence ?? 0.5, maxFiles: c.max_files ?? 10, maxLines: c.max_lines ?? 400 };
}

export class RepoConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`${REPO_CONFIG_PATH} is invalid:\n${problems.map((p) => `- ${p}`).join('\n')}`);
    this.name = 'RepoConfigError';
  }
}

/** Parses the file's text; a YAML or schema error names the line and the field. */
export function parseRepoConfig(text: string | undefined): RepoConfig {
  if (text === undefined || text.trim() === '') return {};
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new RepoConfigError(doc.errors.map((e) => `line ${e.linePos?.[0]?.line ?? '?'}: ${e.message.split('\n')[0]}`));
  }
  const parsed = RepoConfigSchema.safeParse(doc.toJS() ?? {});
  if (!parsed.success) {
    throw new RepoConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(top level)'}: ${i.message}`));
  }
  return parsed.data;
}
