import { describe, expect, it } from 'vitest';
import { capBudgets, DEFAULT_BUDGETS, Spend } from './budget.js';
import { costOf, priceOf } from './pricing.js';

describe('prices', () => {
  it('knows each default tier and the cache prices', () => {
    expect(priceOf('claude-opus-5-5')).toEqual({ input: 4, output: 20, cacheWrite: 5, cacheRead: 0.2 });
    expect(priceOf('claude-sonnet-4-5-20250929')).toMatchObject({ input: 3, output: 15 });
    expect(priceOf('claude-haiku-5-5')).toMatchObject({ input: 0.1, output: 0.5 });
    expect(priceOf('gpt-4')).toBeUndefined();
  });

  it('charges input, output, cache writes and cache reads at their own prices', () => {
    const usd = costOf('claude-sonnet-5-5', {
      input_tokens: 1_000_000,
      output_tokens: 100_000,
      cache_creation_input_tokens: 200_000,
      cache_read_input_tokens: 2_000_000,
    });
    // 2 + 1 + 0.5 + 0.2
    expect(usd).toBeCloseTo(3.7, 10);
    expect(costOf('unknown-model', { input_tokens: 10, output_tokens: 10 })).toBe(0);
  });

  it('tells each paid call to the daily spend as it happens, and lets the operator cap what a repository asks for', () => {
    const paid: number[] = [];
    const spend = new Spend((usd) => paid.push(usd));
    spend.add('claude-sonnet-5-5', { input_tokens: 1_000_000, output_tokens: 0 });
    spend.add('claude-sonnet-5-5', { input_tokens: 0, output_tokens: 100_000 });
    expect(paid).toEqual([
      costOf('claude-sonnet-5-5', { input_tokens: 1_000_000, output_tokens: 0 }),
      costOf('claude-sonnet-5-5', { input_tokens: 0, output_tokens: 100_000 }),
    ]);
    expect(paid.every((p) => p > 0)).toBe(true);
    const asked = { ...DEFAULT_BUDGETS, maxCostUsd: 500, dailyCostUsd: 20 };
    expect(capBudgets(asked, { jobUsd: 25, dailyUsd: 100 })).toEqual({
      budgets: { ...asked, maxCostUsd: 25 },
      capped: ['max_cost_usd $500 → $25 (MAX_JOB_COST_USD)'],
    });
    expect(capBudgets(asked, undefined).budgets).toBe(asked);
  });
});
