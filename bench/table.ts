/** One line of the benchmark summary: our figure against a baseline measured in the same run. */
export interface Figure {
  figure: string;
  ours: number;
  /** NaN when the figure has no baseline. */
  baseline: number;
  unit: 'ms' | 'bytes' | '%' | 'tokens' | 'x';
  /** What the baseline is, e.g. "bare Node server". */
  baselineName?: string;
  /** The goal in words, and whether it was met (undefined: no goal). */
  goal?: { text: string; met: boolean };
}

export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (xs: number[]): number => percentile(xs, 50);

function show(v: number, unit: Figure['unit']): string {
  if (!Number.isFinite(v)) return '—';
  switch (unit) {
    case 'ms':
      return v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(0)} ms`;
    case 'bytes':
      return v >= 1024 * 1024
        ? `${(v / 1024 / 1024).toFixed(2)} MiB`
        : v >= 1024
          ? `${(v / 1024).toFixed(1)} KiB`
          : `${v} B`;
    case '%':
      return `${v.toFixed(0)}%`;
    case 'tokens':
      return `${v.toFixed(0)} tok`;
    case 'x':
      return `${v.toFixed(2)}×`;
  }
}

/** The summary as a plain-text table: figure, ours, baseline, ratio, goal met? */
export function formatTable(rows: Figure[]): string {
  const cells = rows.map((r) => {
    const x = r.ours / r.baseline;
    const ratio = Number.isFinite(x)
      ? `${x >= 100 ? x.toFixed(0) : x >= 0.01 ? x.toFixed(2) : x.toPrecision(2)}×`
      : '—';
    const baseline = Number.isFinite(r.baseline)
      ? `${show(r.baseline, r.unit)}${r.baselineName ? ` (${r.baselineName})` : ''}`
      : '—';
    const goal = r.goal ? `${r.goal.met ? 'yes' : 'NO'} (${r.goal.text})` : '—';
    return [r.figure, show(r.ours, r.unit), baseline, ratio, goal];
  });
  const head = ['figure', 'ours', 'baseline', 'ratio', 'goal met?'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) =>
    c
      .map((x, i) => (i === 3 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}
