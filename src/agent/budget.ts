import { costOf, type Usage } from './pricing.js';
import type { Stuck } from './stuck.js';

/** Spend so far for a job: tokens and dollars, added up over every model call. */
export class Spend {
  /** Told the dollars of each call as it is paid (the repository's daily spend adds them up at once). */
  constructor(private readonly onPaid?: (usd: number) => void) {}

  inputTokens = 0;
  outputTokens = 0;
  cacheWriteTokens = 0;
  cacheReadTokens = 0;
  costUsd = 0;
  calls = 0;

  add(model: string, u: Usage): number {
    const cost = costOf(model, u);
    this.inputTokens += u.input_tokens;
    this.outputTokens += u.output_tokens;
    this.cacheWriteTokens += u.cache_creation_input_tokens ?? 0;
    this.cacheReadTokens += u.cache_read_input_tokens ?? 0;
    this.costUsd += cost;
    this.calls += 1;
    this.onPaid?.(cost);
    return cost;
  }

  get totalInput(): number {
    return this.inputTokens + this.cacheWriteTokens + this.cacheReadTokens;
  }

  describe(): string {
    return `${this.calls} model calls, ${this.totalInput.toLocaleString('en-US')} input tokens (${this.cacheReadTokens.toLocaleString('en-US')} cached), ${this.outputTokens.toLocaleString('en-US')} output tokens, $${this.costUsd.toFixed(4)}`;
  }
}

/** Limits per job (and per repository per day), from `.github/agent.yml` over the defaults. */
export interface Budgets {
  maxModelCalls: number;
  maxInputTokens: number;
  maxOutputTokens: number;
  maxCostUsd: number;
  maxMinutes: number;
  dailyCostUsd: number;
}

/**
 * Sane for a real repository: a fix of a few files takes 20–60 model calls; a job that
 * needs more than this is stuck more often than it is close.
 */
export const DEFAULT_BUDGETS: Budgets = {
  maxModelCalls: 120,
  maxInputTokens: 6_000_000,
  maxOutputTokens: 200_000,
  maxCostUsd: 10,
  maxMinutes: 45,
  dailyCostUsd: 50,
};

/** The first budget a job has used up, as a stuck reason with the numbers; checked before each model call. */
export function budgetStop(spend: Spend, b: Budgets, startedAt: number, now = Date.now()): Stuck | undefined {
  const minutes = (now - startedAt) / 60_000;
  if (spend.calls >= b.maxModelCalls)
    return { reason: 'budget-turns', evidence: `${spend.calls} model calls used of a budget of ${b.maxModelCalls}` };
  if (spend.totalInput >= b.maxInputTokens)
    return {
      reason: 'budget-tokens',
      evidence: `${spend.totalInput} input tokens used of a budget of ${b.maxInputTokens}`,
    };
  if (spend.outputTokens >= b.maxOutputTokens)
    return {
      reason: 'budget-tokens',
      evidence: `${spend.outputTokens} output tokens used of a budget of ${b.maxOutputTokens}`,
    };
  if (spend.costUsd >= b.maxCostUsd)
    return { reason: 'budget-cost', evidence: `$${spend.costUsd.toFixed(4)} spent of a budget of $${b.maxCostUsd}` };
  if (minutes >= b.maxMinutes)
    return { reason: 'timeout', evidence: `${minutes.toFixed(1)} minutes elapsed of a limit of ${b.maxMinutes}` };
  return undefined;
}

/** What the operator allows any repository's config to ask for (SANDBOX-independent money caps). */
export interface CostCaps {
  /** MAX_JOB_COST_USD: the most one job may spend. */
  jobUsd: number;
  /** MAX_DAILY_COST_USD: the most one repository may spend in a day. */
  dailyUsd: number;
}

/** The budgets a repository asked for, bounded by the operator's caps; `capped` names what was lowered. */
export function capBudgets(b: Budgets, caps: CostCaps | undefined): { budgets: Budgets; capped: string[] } {
  if (!caps) return { budgets: b, capped: [] };
  const capped: string[] = [];
  if (b.maxCostUsd > caps.jobUsd) capped.push(`max_cost_usd $${b.maxCostUsd} → $${caps.jobUsd} (MAX_JOB_COST_USD)`);
  if (b.dailyCostUsd > caps.dailyUsd)
    capped.push(`daily_cost_usd $${b.dailyCostUsd} → $${caps.dailyUsd} (MAX_DAILY_COST_USD)`);
  return {
    budgets: {
      ...b,
      maxCostUsd: Math.min(b.maxCostUsd, caps.jobUsd),
      dailyCostUsd: Math.min(b.dailyCostUsd, caps.dailyUsd),
    },
    capped,
  };
}
