import { isForeignPath, loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// Anything else: lines that look like errors, with a path:line on or near them.

const GENERIC_ERROR = /^\s*(?:\w*(?:Error|Exception)\b[:\s]|error(?:\[\w+\])?:|ERROR\b|FAIL(?:ED)?\b|fatal:)/;
const GENERIC_LOCATION = /((?:\.{0,2}\/)?[\w@.+-]+(?:\/[\w@.+-]+)*\.[A-Za-z]{1,5}):(\d+)(?::(\d+))?/;

/** Reads unknown output into failing items and its summary line. */
export function parseUnknown(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  for (let i = 0; i < lines.length && failures.length < 20; i++) {
    const line = lines[i] ?? '';
    if (!GENERIC_ERROR.test(line)) continue;
    let location: FailureLocation | undefined;
    for (let k = i; k < Math.min(lines.length, i + 4); k++) {
      const m = GENERIC_LOCATION.exec(lines[k] ?? '');
      if (m && !isForeignPath(m[1] ?? '')) {
        location = loc(m[1] ?? '', m[2], m[3]);
        break;
      }
    }
    failures.push({
      runner: 'unknown',
      name: line.trim().slice(0, 120),
      message: messageOf([line]),
      ...(location ? { location } : {}),
    });
  }
  return { failures };
}
