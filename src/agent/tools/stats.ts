/** Per-tool outcomes: the tool layer's success rate is a metric, not a feeling. */
export interface ToolTally {
  calls: number;
  /** Succeeded without a failed call of the same tool just before. */
  firstTry: number;
  /** Runs of failed calls that a later call of the same tool got right. */
  recovered: number;
  /** Runs of failed calls that no later call of the same tool got right. */
  failed: number;
  errors: number;
}

/** Tallies a stage's or job's tool calls in order, per tool. */
export function tallyToolCalls(calls: ReadonlyArray<{ tool: string; ok: boolean }>): Record<string, ToolTally> {
  const tallies: Record<string, ToolTally> = {};
  const failing = new Map<string, boolean>();
  for (const { tool, ok } of calls) {
    tallies[tool] ??= { calls: 0, firstTry: 0, recovered: 0, failed: 0, errors: 0 };
    const t = tallies[tool];
    t.calls += 1;
    if (ok) {
      if (failing.get(tool)) t.recovered += 1;
      else t.firstTry += 1;
      failing.set(tool, false);
    } else {
      t.errors += 1;
      failing.set(tool, true);
    }
  }
  for (const [tool, stillFailing] of failing) if (stillFailing) tallies[tool]!.failed += 1;
  return tallies;
}

/** One line per tool: `edit_file 5 calls: 3 first try, 1 recovered, 0 failed`. */
export function describeTallies(tallies: Record<string, ToolTally>): string[] {
  return Object.entries(tallies)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(
      ([tool, t]) =>
        `${tool}: ${t.calls} call${t.calls === 1 ? '' : 's'}, ${t.firstTry} right first try, ${t.recovered} recovered, ${t.failed} failed`,
    );
}
