import { describe, expect, it } from 'vitest';
import { costOf, priceOf } from './pricing.js';

describe('prices', () => {
  it('knows each default tier and the cache prices', () => {
    expect(priceOf('claude-opus-5-5')).toEqual({ input: 4, output: 20, cacheWrite: 5, cacheRead: 0.2 });
    expect(priceOf('claude-sonnet-4-5-20250929')).toMatchObject({ input: 3, output: 15 });
    expect(priceOf('claude-haiku-5-5')).toMatchObject({ input: 0.1, output: 0.5 });
    expect(priceOf('gpt-4')).toBeUndefined();
  });

  it('charges input, output, cache writes and cache reads at their own prices', () => {
    const usd = costOf('claude-sonnet-5-5', { input_tokens: 1_000_000, output_tokens: 100_000, cache_creation_input_tokens: 200_000, cache_read_input_tokens: 2_000_000 });
    // 2 + 1 + 0.5 + 0.2
    expect(usd).toBeCloseTo(3.7, 10);
    expect(costOf('unknown-model', { input_tokens: 10, output_tokens: 10 })).toBe(0);
  });
});
