import { loc } from './helpers.js';
import type { FailingItem, RunnerResult } from './types.js';

// eslint

/** Reads eslint output into failing items and its summary line. */
export function parseEslint(lines: readonly string[]): RunnerResult {
  const problems: (FailingItem & { severity: 'error' | 'warning' })[] = [];
  let file: string | undefined;
  for (const line of lines) {
    // unix: `/path/a.js:1:7: message [Error/rule-id]`
    const unix = /^(.+?):(\d+):(\d+): (.*?) \[(Error|Warning)(?:\/(\S+))?\]\s*$/.exec(line);
    if (unix) {
      problems.push({
        runner: 'eslint',
        severity: unix[5] === 'Error' ? 'error' : 'warning',
        name: unix[6] ?? 'eslint',
        message: unix[4] ?? '',
        location: loc(unix[1] ?? '', unix[2], unix[3]),
      });
      continue;
    }
    // compact: `/path/a.js: line 1, col 7, Error - message (rule-id)`
    const compact = /^(.+?): line (\d+), col (\d+), (Error|Warning) - (.*?)(?: \(([\w@/-]+)\))?\s*$/.exec(line);
    if (compact) {
      problems.push({
        runner: 'eslint',
        severity: compact[4] === 'Error' ? 'error' : 'warning',
        name: compact[6] ?? 'eslint',
        message: compact[5] ?? '',
        location: loc(compact[1] ?? '', compact[2], compact[3]),
      });
      continue;
    }
    // stylish: a file line, then `  1:7  error  message  rule-id`.
    const row = /^\s+(\d+):(\d+)\s+(error|warning)\s+(.*?)(?:\s{2,}([@\w][\w@/-]*))?\s*$/.exec(line);
    if (row && file) {
      problems.push({
        runner: 'eslint',
        severity: row[3] === 'error' ? 'error' : 'warning',
        name: row[5] ?? 'eslint',
        message: (row[4] ?? '').trim(),
        location: loc(file, row[1], row[2]),
      });
      continue;
    }
    if (/^\S/.test(line) && !/^[✖✔]/.test(line) && !/^\d+ problems?/.test(line)) file = line.trim();
    else if (line.trim() === '') continue;
  }
  const errors = problems.filter((p) => p.severity === 'error');
  // Warnings only fail a run under --max-warnings; then they are what there is.
  const chosen = errors.length ? errors : problems;
  const failures = chosen.map(({ severity: _severity, ...item }) => item);
  let summary: string | undefined;
  for (const l of lines) {
    const m = /^\s*✖?\s*(\d+ problems? .*|\d+ problems?)\s*$/.exec(l);
    if (m) summary = m[1];
  }
  return { failures, summary };
}
