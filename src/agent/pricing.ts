/** Dollars per million tokens. Cache writes (5-minute) cost 1.25× input, reads 0.1×. */
export interface Price {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

const table: Array<[RegExp, Price]> = [
  [/opus-4-[5-9]|opus-[5-9]/, { input: 5, output: 25, cacheWrite: 6.25, cacheRead: 0.5 }],
  [/opus/, { input: 15, output: 75, cacheWrite: 18.75, cacheRead: 1.5 }],
  [/sonnet/, { input: 3, output: 15, cacheWrite: 3.75, cacheRead: 0.3 }],
  [/haiku-4|haiku-[5-9]/, { input: 1, output: 5, cacheWrite: 1.25, cacheRead: 0.1 }],
  [/haiku/, { input: 0.8, output: 4, cacheWrite: 1, cacheRead: 0.08 }],
];

export function priceOf(model: string): Price | undefined {
  return table.find(([re]) => re.test(model))?.[1];
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
}

/** Dollars for one call; 0 for a model the table does not know (logged by the caller). */
export function costOf(model: string, u: Usage): number {
  const p = priceOf(model);
  if (!p) return 0;
  return (
    (u.input_tokens * p.input + u.output_tokens * p.output + (u.cache_creation_input_tokens ?? 0) * p.cacheWrite + (u.cache_read_input_tokens ?? 0) * p.cacheRead) /
    1_000_000
  );
}
