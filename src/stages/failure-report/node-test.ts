import { firstOwnJsFrame, loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// node's built-in test runner: TAP and spec reporters

/** Reads node-test output into failing items and its summary line. */
export function parseNodeTest(lines: readonly string[]): RunnerResult {
  const tap = parseNodeTap(lines);
  const spec = tap.failures.length ? { failures: [] } : parseNodeSpec(lines);
  const failures = [...tap.failures, ...spec.failures];
  const count = (key: string): string | undefined => {
    const re = new RegExp(`^\\s*(?:#|ℹ) ${key} (\\d+)\\s*$`);
    for (const l of lines) {
      const m = re.exec(l);
      if (m) return m[1];
    }
    return undefined;
  };
  const fail = count('fail');
  const pass = count('pass');
  const summary = fail !== undefined || pass !== undefined ? `${fail ?? 0} failed, ${pass ?? 0} passed` : undefined;
  return { failures, summary };
}

/** TAP: `not ok N - name` followed by a YAML block with error, location and stack. */
function parseNodeTap(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  // The suite path: `# Subtest: name` lines, by indentation.
  const subtests: { indent: number; name: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const sub = /^(\s*)# Subtest: (.*)$/.exec(line);
    if (sub) {
      const indent = (sub[1] ?? '').length;
      while (subtests.length && (subtests[subtests.length - 1]?.indent ?? 0) >= indent) subtests.pop();
      subtests.push({ indent, name: sub[2] ?? '' });
      continue;
    }
    const m = /^(\s*)not ok \d+(?: - (.*?))?(\s+#\s*(TODO|SKIP)\b.*)?$/i.exec(line);
    if (!m) continue;
    if (m[3]) continue; // a TODO failure is not a failure
    const indent = (m[1] ?? '').length;
    const own = (m[2] ?? '').replace(/\\#/g, '#');
    while (subtests.length && (subtests[subtests.length - 1]?.indent ?? 0) > indent) subtests.pop();
    const parents = subtests.filter((s) => s.indent < indent).map((s) => s.name);

    const notOkLine = i;
    // The YAML block: from `---` to `...`, two more spaces in.
    const yaml: string[] = [];
    if ((lines[i + 1] ?? '').trim() === '---') {
      let j = i + 2;
      for (; j < lines.length; j++) {
        const l = lines[j] ?? '';
        if (l.trim() === '...' && l.length - l.trimStart().length <= indent + 2) break;
        yaml.push(l);
      }
      i = j;
    }
    const fields = parseYamlish(yaml);
    if (fields.failureType === 'subtestsFailed' || fields.type === 'suite') continue; // the children are reported
    const errName = fields.name && fields.name !== 'Error' ? fields.name : undefined;
    const errText = messageOf((fields.error ?? '').split('\n'));
    let message =
      errName && errText && !errText.startsWith(errName) ? `${errName}: ${errText}` : errText || errName || 'failed';
    let location = firstOwnJsFrame((fields.stack ?? '').split('\n'));
    if (fields.error === 'test failed') {
      // A test file that failed outside any test (it threw while loading): what it printed
      // to stderr comes just before, as `# ` comments.
      const printed = precedingComments(lines, notOkLine);
      const errorLine = printed.find((l) => /^\s*(?:[A-Z]\w*(?:Error|Exception)|Error)\b.*?:/.test(l));
      if (errorLine) message = errorLine.trim();
      location = firstOwnJsFrame(printed) ?? location;
    }
    if (!location && fields.location) {
      const lm = /^(.*?):(\d+)(?::(\d+))?$/.exec(fields.location);
      if (lm) location = loc(lm[1] ?? '', lm[2], lm[3]);
    }
    failures.push({
      runner: 'node-test',
      name: [...parents, own].join(' > '),
      message,
      ...(location ? { location } : {}),
    });
  }
  return { failures };
}

/** The `# ` comment lines (a child's stdout/stderr in node's TAP) just above a `not ok` line. */
function precedingComments(lines: readonly string[], notOk: number): string[] {
  const out: string[] = [];
  let k = notOk - 1;
  if (/^\s*# Subtest: /.test(lines[k] ?? '')) k--;
  for (; k >= 0 && out.length < 200; k--) {
    const m = /^\s*#(?: (.*))?$/.exec(lines[k] ?? '');
    if (!m || /^\s*# Subtest: /.test(lines[k] ?? '')) break;
    out.unshift(m[1] ?? '');
  }
  return out;
}

/** Enough YAML for node's TAP diagnostics: `key: 'value'`, `key: value` and `key: |-` blocks. */
function parseYamlish(lines: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (!lines.length) return out;
  const baseIndent = Math.min(...lines.filter((l) => l.trim() !== '').map((l) => l.length - l.trimStart().length));
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (line.length - line.trimStart().length !== baseIndent) continue;
    const m = /^\s*([\w-]+):\s?(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1] ?? '';
    const value = m[2] ?? '';
    if (/^[|>][-+]?$/.test(value)) {
      const block: string[] = [];
      for (let j = i + 1; j < lines.length; j++) {
        const l = lines[j] ?? '';
        if (l.trim() !== '' && l.length - l.trimStart().length <= baseIndent) break;
        block.push(l.trim());
        i = j;
      }
      out[key] = block.join('\n').trim();
    } else if (/^'.*'$/.test(value)) {
      out[key] = value.slice(1, -1).replace(/''/g, "'");
    } else if (/^".*"$/.test(value)) {
      try {
        out[key] = JSON.parse(value) as string;
      } catch {
        out[key] = value.slice(1, -1);
      }
    } else {
      out[key] = value;
    }
  }
  return out;
}

/**
 * The spec reporter: `✖ name (1.2ms)` followed by the indented error and stack. When
 * the closing `✖ failing tests:` section is there, only it is read (it repeats each
 * failure with `test at file:line:col`).
 */
function parseNodeSpec(lines: readonly string[]): RunnerResult {
  const start = lines.findIndex((l) => /^\s*✖ failing tests:\s*$/.test(l));
  const from = start >= 0 ? start + 1 : 0;
  const failures: FailingItem[] = [];
  let testAt: FailureLocation | undefined;
  for (let i = from; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const at = /^\s*test at (.*?):(\d+):(\d+)\s*$/.exec(line);
    if (at) {
      testAt = loc(at[1] ?? '', at[2], at[3]);
      continue;
    }
    const m = /^(\s*)✖ (.*?)(?: \([\d.]+m?s\))?(?: # (?:TODO|SKIP).*)?$/.exec(line);
    if (!m) continue;
    const indent = (m[1] ?? '').length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (l.trim() !== '' && l.length - l.trimStart().length <= indent) break;
      if (/^\s*test at /.test(l)) break;
      body.push(l);
    }
    i = j - 1;
    if (!body.some((l) => l.trim() !== '')) {
      testAt = undefined;
      continue; // a suite whose children failed
    }
    const stackStart = body.findIndex((l) => /^\s*at\s/.test(l));
    const message = messageOf(stackStart >= 0 ? body.slice(0, stackStart) : body);
    const location = firstOwnJsFrame(body) ?? testAt;
    failures.push({
      runner: 'node-test',
      name: m[2] ?? '',
      message: message || 'failed',
      ...(location ? { location } : {}),
    });
    testAt = undefined;
  }
  return { failures };
}
