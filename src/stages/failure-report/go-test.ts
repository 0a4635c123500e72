import { isForeignPath, loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// go test

/** Reads go-test output into failing items and its summary line. */
export function parseGoTest(lines: readonly string[]): RunnerResult {
  type Go = { name: string; messages: string[]; location?: FailureLocation };
  const byName = new Map<string, Go>();
  const order: string[] = [];
  const get = (name: string): Go => {
    let g = byName.get(name);
    if (!g) {
      g = { name, messages: [] };
      byName.set(name, g);
    }
    return g;
  };
  const failed = new Set<string>();
  // `-v` prints a test's messages after `=== RUN`/`=== CONT` and before its `--- FAIL`;
  // without `-v` they come indented under `--- FAIL`.
  let running: string | undefined;
  let underFail: { name: string; indent: number } | undefined;
  let panicking: string | undefined;
  const diagnostics: FailingItem[] = [];
  for (const line of lines) {
    const run = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)/.exec(line);
    if (run) {
      running = run[1];
      underFail = undefined;
      continue;
    }
    const fail = /^(\s*)--- FAIL: (\S+) \(/.exec(line);
    if (fail) {
      const name = fail[2] ?? '';
      if (!failed.has(name)) order.push(name);
      failed.add(name);
      get(name);
      underFail = { name, indent: (fail[1] ?? '').length };
      panicking = name;
      continue;
    }
    if (/^\s*--- (PASS|SKIP): /.test(line)) {
      underFail = undefined;
      continue;
    }
    const msg = /^(\s+)([\w.-]+\.go):(\d+): (.*)$/.exec(line);
    if (msg) {
      const indent = (msg[1] ?? '').length;
      const target = underFail && indent > underFail.indent ? underFail.name : running;
      if (target) {
        const g = get(target);
        g.messages.push(msg[4] ?? '');
        g.location ??= loc(msg[2] ?? '', msg[3]);
      }
      continue;
    }
    if (/^panic: /.test(line)) {
      const target = panicking ?? running;
      if (target) get(target).messages.unshift(line.replace(/\s*\[recovered\]\s*$/, ''));
      continue;
    }
    const frame = /^\t(\S+\.go):(\d+)(?: \+0x[0-9a-f]+)?$/.exec(line);
    if (frame && panicking) {
      const g = get(panicking);
      const file = frame[1] ?? '';
      if (!isForeignPath(file) && g.location === undefined) g.location = loc(file, frame[2]);
      continue;
    }
    // Build failures: `./calc.go:3:37: undefined: x` (vet and compile alike).
    const build = /^(\.{0,2}\/?[\w./-]+\.go):(\d+):(\d+): (.*)$/.exec(line);
    if (build) {
      diagnostics.push({
        runner: 'go-test',
        name: 'build failed',
        message: build[4] ?? '',
        location: loc(build[1] ?? '', build[2], build[3]),
      });
    }
  }
  // A parent whose only failure is a failing subtest is reported through the subtest.
  const failures: FailingItem[] = [...diagnostics];
  for (const name of order) {
    const g = byName.get(name);
    if (!g) continue;
    const hasFailingChild = order.some((o) => o.startsWith(`${name}/`));
    if (hasFailingChild && !g.messages.length) continue;
    failures.push({
      runner: 'go-test',
      name,
      message: messageOf(g.messages) || 'failed',
      ...(g.location ? { location: g.location } : {}),
    });
  }
  const packages = lines
    .map((l) => /^FAIL\s+(\S+)(?:\s+(\[[^\]]+\]|[\d.]+s))?\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null);
  const summary = packages.length
    ? packages.map((m) => `FAIL ${m[1] ?? ''}${m[2]?.startsWith('[') ? ` ${m[2]}` : ''}`).join('; ')
    : undefined;
  return { failures, summary };
}
