/** Dollars per million tokens. */
export interface Price {
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

/** Cache multipliers of the published price list: 5-minute writes 1.25× input, reads 0.1× (0.05× on the 5.5 family). */
const price = (input: number, output: number, readFactor = 0.1): Price => ({
  input,
  output,
  cacheWrite: input * 1.25,
  cacheRead: input * readFactor,
});

// From the published price list (November 2026); first match wins, so newer and more
// specific ids come first. Haiku 5.5 is priced for prompts up to 100k tokens.
const table: Array<[RegExp, Price]> = [
  [/(fable|mythos)-5-[1-9]/, price(10, 50, 0.025)],
  [/(fable|mythos)/, price(10, 50)],
  [/opus-5-5/, price(4, 20, 0.05)],
  [/opus-(4-[5-9]|5)/, price(5, 25)],
  [/opus/, price(15, 75)],
  [/sonnet-5-5/, price(2, 10, 0.05)],
  [/sonnet-5/, price(2, 10)],
  [/sonnet/, price(3, 15)],
  [/haiku-5-5/, price(0.1, 0.5)],
  [/haiku-3-5/, price(0.8, 4)],
  [/haiku/, price(1, 5)],
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
    (u.input_tokens * p.input +
      u.output_tokens * p.output +
      (u.cache_creation_input_tokens ?? 0) * p.cacheWrite +
      (u.cache_read_input_tokens ?? 0) * p.cacheRead) /
    1_000_000
  );
}
