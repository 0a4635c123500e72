import { costOf, type Usage } from './pricing.js';

/** Spend so far for a job: tokens and dollars, added up over every model call. */
export class Spend {
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
    return cost;
  }

  get totalInput(): number {
    return this.inputTokens + this.cacheWriteTokens + this.cacheReadTokens;
  }

  describe(): string {
    return `${this.calls} model calls, ${this.totalInput.toLocaleString('en-US')} input tokens (${this.cacheReadTokens.toLocaleString('en-US')} cached), ${this.outputTokens.toLocaleString('en-US')} output tokens, $${this.costUsd.toFixed(4)}`;
  }
}
