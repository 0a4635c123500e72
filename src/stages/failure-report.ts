/**
 * The deterministic first pass over validation output: what parsers can read from the
 * common runners (failing test names, messages, file:line locations, the runner's own
 * summary), so the coder never gets a raw log. Whatever this misses is left to the
 * fast-tier sub-agent; the raw log stays in the trace.
 */

import { parseCargoTest } from './failure-report/cargo-test.js';
import { parseEslint } from './failure-report/eslint.js';
import { parseGoTest } from './failure-report/go-test.js';
import { dedupe, stripAnsi } from './failure-report/helpers.js';
import { parseJest } from './failure-report/jest.js';
import { parseNodeTest } from './failure-report/node-test.js';
import { parsePytest } from './failure-report/pytest.js';
import { parseTsc } from './failure-report/tsc.js';
import type { ParsedFailure, RunnerResult, TestRunner } from './failure-report/types.js';
import { parseUnknown } from './failure-report/unknown.js';
import { parseVitest } from './failure-report/vitest.js';

export { stripAnsi } from './failure-report/helpers.js';
export type { FailingItem, FailureLocation, ParsedFailure, TestRunner } from './failure-report/types.js';

// ---------------------------------------------------------------------------------------
// Detection: one parser per runner, each in failure-report/, picked by what the output says

const PARSERS: Record<TestRunner, (lines: readonly string[]) => RunnerResult> = {
  'node-test': parseNodeTest,
  vitest: parseVitest,
  jest: parseJest,
  pytest: parsePytest,
  'go-test': parseGoTest,
  'cargo-test': parseCargoTest,
  tsc: parseTsc,
  eslint: parseEslint,
  unknown: parseUnknown,
};

/** What the output itself says about who printed it. */
const SIGNATURES: [TestRunner, RegExp][] = [
  ['vitest', /^\s*RUN\s+v\d+\.\d+|^\s*FAIL\s+\S.* > |^\s*Test Files\s+\d+ (failed|passed)|^\s*⎯+ Failed Tests \d+/m],
  ['jest', /^Test Suites: \d+|^\s*● .+ › |^\s*● Test suite failed to run/m],
  ['node-test', /^TAP version \d+|^\s*# Subtest: |^\s*not ok \d+ - |^\s*ℹ (tests|fail) \d+|^\s*✖ failing tests:/m],
  ['pytest', /^=+ (test session starts|FAILURES|ERRORS|short test summary info) =+$|^(FAILED|ERROR) \S+\.py(::|\s|$)/m],
  ['go-test', /^\s*--- FAIL: \S+ \(|^FAIL\s+\S+\s+(\[build failed\]|[\d.]+s)\s*$|^=== RUN\s+Test/m],
  ['cargo-test', /^---- .+ stdout ----$|^test result: (FAILED|ok)\. |^error(\[E\d+\])?: .*\n\s*--> /m],
  ['tsc', /^.+\(\d+,\d+\): error TS\d+: |^.+:\d+:\d+ - error TS\d+: |^error TS\d+: /m],
  [
    'eslint',
    /^\s+\d+:\d+\s+(error|warning)\s+\S|^.+:\d+:\d+: .* \[(Error|Warning)(\/\S+)?\]$|^.+: line \d+, col \d+, (Error|Warning) - /m,
  ],
];

function commandHint(command: string | undefined): TestRunner | undefined {
  if (!command) return undefined;
  const c = command;
  if (/\bvitest\b/.test(c)) return 'vitest';
  if (/\bjest\b/.test(c)) return 'jest';
  if (/\bpytest\b|\bpy\.test\b/.test(c)) return 'pytest';
  if (/\bgo\s+test\b/.test(c)) return 'go-test';
  if (/\bcargo\s+(test|nextest)\b/.test(c)) return 'cargo-test';
  if (/\b(tsc|vue-tsc)\b/.test(c)) return 'tsc';
  if (/\beslint\b/.test(c)) return 'eslint';
  if (/\bnode\b.*\s--test\b/.test(c)) return 'node-test';
  return undefined;
}

/**
 * Reads validation output into failing tests and diagnostics. The runner is told by the
 * output (the command is a hint); output that mixes runners (`tsc && vitest run`) is read
 * by each, and `runner` is the command's runner when it is among them, else the one with
 * the most failures.
 */
export function parseFailureOutput(output: string, command?: string): ParsedFailure {
  const text = stripAnsi(output).replace(/\r\n?/g, '\n');
  const lines = text.split('\n').map((l) => l.replace(/\s+$/, ''));
  const hint = commandHint(command);
  const found = SIGNATURES.filter(([, re]) => re.test(text)).map(([r]) => r);
  const candidates: TestRunner[] = hint && !found.includes(hint) ? [hint, ...found] : found;

  const results = candidates.map((runner) => ({ runner, ...PARSERS[runner](lines) }));
  const withFailures = results.filter((r) => r.failures.length > 0);
  if (!withFailures.length) {
    const primary = results.find((r) => r.runner === hint) ?? results[0];
    if (primary)
      return { runner: primary.runner, failures: [], ...(primary.summary ? { summary: primary.summary } : {}) };
    const generic = parseUnknown(lines);
    return { runner: 'unknown', failures: generic.failures };
  }
  const primary =
    withFailures.find((r) => r.runner === hint) ??
    [...withFailures].sort((a, b) => b.failures.length - a.failures.length)[0] ??
    withFailures[0];
  const failures = dedupe(withFailures.flatMap((r) => r.failures));
  const summaries = withFailures.map((r) => r.summary).filter((s): s is string => !!s);
  const summary = primary?.summary ?? summaries[0];
  return { runner: primary?.runner ?? 'unknown', failures, ...(summary ? { summary } : {}) };
}

/**
 * The report as the coder reads it: one entry per failing item, `file:line:col`, name and
 * message, capped so a thousand lint errors do not become a thousand lines.
 */
export function formatFailureReport(parsed: ParsedFailure, maxItems = 20): string {
  const head = `${parsed.runner}: ${parsed.failures.length} failing${parsed.summary ? ` (${parsed.summary})` : ''}`;
  const items = parsed.failures.slice(0, maxItems).map((f) => {
    const where = f.location
      ? `${f.location.file}${f.location.line !== undefined ? `:${f.location.line}` : ''}${f.location.column !== undefined ? `:${f.location.column}` : ''}`
      : '';
    const message = f.message
      .split('\n')
      .map((l, i) => (i === 0 ? l : `    ${l}`))
      .join('\n');
    return `- ${f.name}${where ? ` (${where})` : ''}\n    ${message}`;
  });
  const more = parsed.failures.length > maxItems ? [`… and ${parsed.failures.length - maxItems} more`] : [];
  return [head, ...items, ...more].join('\n');
}
