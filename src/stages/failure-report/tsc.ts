import { loc } from './helpers.js';
import type { FailingItem, RunnerResult } from './types.js';

// tsc

/** Reads tsc output into failing items and its summary line. */
export function parseTsc(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  for (const line of lines) {
    const plain = /^(.+?)\((\d+),(\d+)\): error (TS\d+): (.*)$/.exec(line);
    const pretty = plain ? null : /^(.+?):(\d+):(\d+) - error (TS\d+): (.*)$/.exec(line);
    const m = plain ?? pretty;
    if (m) {
      failures.push({
        runner: 'tsc',
        name: m[4] ?? '',
        message: (m[5] ?? '').trim(),
        location: loc((m[1] ?? '').trim(), m[2], m[3]),
      });
      continue;
    }
    const global = /^error (TS\d+): (.*)$/.exec(line);
    if (global) failures.push({ runner: 'tsc', name: global[1] ?? '', message: (global[2] ?? '').trim() });
  }
  let summary: string | undefined;
  for (const l of lines) {
    const m = /^Found (\d+ errors?)/.exec(l);
    if (m) summary = m[1];
  }
  return { failures, summary };
}
