import { issueBlock, quote, systemPrompt, type IssueText } from '../agent/context.js';
import { DEFAULT_COMPACTION } from '../agent/compaction.js';
import { runLoop } from '../agent/loop.js';
import { listFiles } from '../agent/tools/list-files.js';
import { readFile } from '../agent/tools/read-file.js';
import { search } from '../agent/tools/search.js';
import { PlanSchema, submitPlan, type Plan } from '../agent/tools/submit-plan.js';
import type { Tool } from '../agent/tools/tool.js';
import type { StageDeps, StageResult } from './types.js';

export const PLAN_TOOLS: readonly Tool[] = [listFiles, readFile, search, submitPlan] as unknown as Tool[];

const RULES = `Stage: PLAN. Explore the repository with read-only tools and find the cause of the issue.
Then call submit_plan with the files to change, the files to read, small steps, how to verify, and your confidence.
Name only files that exist, except files the change must create.`;

export interface PlanInput {
  issue: IssueText;
  /** From the scope stage: what the change must achieve, each checkable. */
  acceptanceCriteria?: string[];
  repoRules: string;
  /** The checks the pipeline will run, so the plan can name them for verification. */
  checks: string[];
  maxTurns?: number;
}

/** Plans the change with read-only tools (frontier tier). */
export async function planStage(deps: StageDeps, input: PlanInput): Promise<StageResult<Plan>> {
  const task = [
    issueBlock(input.issue),
    ...(input.acceptanceCriteria?.length
      ? [quote('acceptance-criteria', input.acceptanceCriteria.map((c) => `- ${c}`).join('\n'))]
      : []),
    quote('checks', input.checks.length ? input.checks.join('\n') : '(no checks were detected)'),
    'Plan the change that resolves this issue.',
  ].join('\n\n');
  const result = await runLoop({
    stage: 'plan',
    tier: 'frontier',
    model: deps.model,
    system: systemPrompt(RULES, input.repoRules),
    task,
    tools: PLAN_TOOLS,
    ctx: {
      workTree: deps.workTree,
      runner: deps.runner,
      sandboxReadOnlyPaths: deps.sandboxReadOnlyPaths,
      log: deps.log,
      touched: new Set(),
      signal: deps.signal,
    },
    maxTurns: input.maxTurns ?? 30,
    trace: deps.trace,
    log: deps.log,
    onToolCall: deps.onToolCall,
    guard: deps.guard,
    stuckLimits: deps.stuckLimits,
    compaction: DEFAULT_COMPACTION,
  });
  if (result.kind === 'stuck') return result;
  return { kind: 'done', value: PlanSchema.parse(result.input) };
}
