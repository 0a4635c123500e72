/**
 * The deterministic first pass over validation output: what parsers can read from the
 * common runners (failing test names, messages, file:line locations, the runner's own
 * summary), so the coder never gets a raw log. Whatever this misses is left to the
 * fast-tier sub-agent; the raw log stays in the trace.
 */

export type Runner =
  | 'node-test'
  | 'vitest'
  | 'jest'
  | 'pytest'
  | 'go-test'
  | 'cargo-test'
  | 'tsc'
  | 'eslint'
  | 'unknown';

export interface FailureLocation {
  file: string;
  line?: number;
  column?: number;
}

export interface FailingItem {
  runner: Runner;
  /** The failing test (with its suite path where printed) or the diagnostic's code or rule. */
  name: string;
  /** The first line(s) of the error message. */
  message: string;
  location?: FailureLocation;
}

export interface ParsedFailure {
  /** The runner the output is mostly from; `unknown` when none was recognised. */
  runner: Runner;
  failures: FailingItem[];
  /** The runner's own count line, e.g. "2 failed, 5 passed", when it prints one. */
  summary?: string;
}

// ---------------------------------------------------------------------------------------
// Helpers

// CSI sequences (colours, cursor moves), OSC sequences (hyperlinks) and stray escapes.
// eslint-disable-next-line no-control-regex
const ANSI =
  /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]|\u009b[0-?]*[ -/]*[@-~]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

const MAX_MESSAGE_LINES = 3;
const MAX_MESSAGE_CHARS = 400;

/** The first few non-empty lines, trimmed and capped: enough to name the error. */
function messageOf(lines: readonly string[], maxLines = MAX_MESSAGE_LINES): string {
  const kept = lines
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(0, maxLines);
  const text = kept.join('\n');
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
}

/** The lines up to the first blank line after some text. */
function firstParagraph(lines: readonly string[]): string[] {
  const start = lines.findIndex((l) => l.trim() !== '');
  if (start < 0) return [];
  const end = lines.findIndex((l, k) => k > start && l.trim() === '');
  return lines.slice(start, end < 0 ? undefined : end);
}

function int(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : undefined;
}

function loc(file: string, line?: string, column?: string): FailureLocation {
  const l: FailureLocation = { file };
  const ln = int(line);
  const col = int(column);
  if (ln !== undefined) l.line = ln;
  if (col !== undefined) l.column = col;
  return l;
}

/** Code that is not the project's: the runtime, the runners, installed packages. */
function isForeignPath(file: string): boolean {
  return (
    file.startsWith('node:') ||
    file.includes('node_modules/') ||
    file.startsWith('internal/') ||
    /^<.*>$/.test(file) ||
    file.startsWith('/rustc/') ||
    /\/(src\/)?(runtime|testing|reflect|sync)\/[^/]+\.go$/.test(file) ||
    /\/go(-[\d.]+)?\/src\//.test(file) ||
    /\/(lib\/)?python\d[\d.]*\//.test(file)
  );
}

// A JS stack frame: `at fn (path:line:col)`, `at path:line:col`, or node's TAP `fn (path:line:col)`.
const JS_FRAME = /^\s*(?:at\s+)?(?:(?:async\s+)?[^\s(][^(]*?\s+)?\(?((?:file:\/\/)?[^\s()]+?):(\d+):(\d+)\)?\s*$/;

/** The first stack frame in the project's own code. */
function firstOwnJsFrame(lines: readonly string[]): FailureLocation | undefined {
  for (const line of lines) {
    const m = JS_FRAME.exec(line);
    if (!m) continue;
    const file = (m[1] ?? '').replace(/^file:\/\//, '');
    if (file === '' || isForeignPath(file) || file === 'native') continue;
    return loc(file, m[2], m[3]);
  }
  return undefined;
}

function dedupe(items: FailingItem[]): FailingItem[] {
  const seen = new Set<string>();
  const out: FailingItem[] = [];
  for (const item of items) {
    const key = `${item.runner}\0${item.name}\0${item.location?.file ?? ''}\0${item.location?.line ?? ''}\0${item.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(item);
  }
  return out;
}

interface RunnerResult {
  failures: FailingItem[];
  summary?: string;
}

// ---------------------------------------------------------------------------------------
// node's built-in test runner

function parseNodeTest(lines: readonly string[]): RunnerResult {
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

// ---------------------------------------------------------------------------------------
// vitest

const VITEST_FAIL = /^\s*FAIL\s+(\S.*?)\s*$/;
const VITEST_SEPARATOR = /^\s*⎯{3,}/;

function parseVitest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const header = VITEST_FAIL.exec(lines[i] ?? '');
    if (!header || !/ > |\[.*\]/.test(header[1] ?? '')) continue;
    // Several headers can share one error.
    const heads: string[] = [header[1] ?? ''];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const h = VITEST_FAIL.exec(lines[j] ?? '');
      if (!h) break;
      heads.push(h[1] ?? '');
    }
    const body: string[] = [];
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (VITEST_SEPARATOR.test(l) || VITEST_FAIL.test(l) || /^\s*(Test Files|Tests)\s+\d/.test(l)) break;
      body.push(l);
    }
    i = j - 1;
    const frames = body.filter((l) => /^\s*❯ /.test(l));
    const firstFrame = body.findIndex((l) => /^\s*❯ /.test(l));
    const textLines = (firstFrame >= 0 ? body.slice(0, firstFrame) : body).filter(
      (l) => !/^\s*[-+] (Expected|Received)\s*$/.test(l),
    );
    const message = messageOf(firstParagraph(textLines));
    let location: FailureLocation | undefined;
    for (const f of frames) {
      const fm = /❯ (?:.*\s)?(\S+?):(\d+):(\d+)\s*$/.exec(f);
      if (fm && !isForeignPath(fm[1] ?? '')) {
        location = loc(fm[1] ?? '', fm[2], fm[3]);
        break;
      }
    }
    for (const head of heads) {
      const fileLevel = /^(.*?)\s*\[\s*(.*?)\s*\]\s*$/.exec(head);
      const parts = head.split(' > ');
      const file = fileLevel ? (fileLevel[1] ?? '') : (parts[0] ?? '').trim();
      const name = fileLevel ? file : parts.slice(1).join(' > ').trim() || file;
      failures.push({ runner: 'vitest', name, message: message || 'failed', location: location ?? { file } });
    }
  }
  let summary: string | undefined;
  for (const l of lines) {
    const m = /^\s*Tests\s+(\d+ (?:failed|passed).*?)\s*$/.exec(l);
    if (m) summary = (m[1] ?? '').replace(/\s*\(\d+\)$/, '').replace(/ \| /g, ', ');
  }
  return { failures, summary };
}

// ---------------------------------------------------------------------------------------
// jest

function parseJest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  let currentFile: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const fileHeader = /^\s*(?:FAIL|PASS)\s+(\S+)/.exec(line);
    if (fileHeader) {
      currentFile = fileHeader[1];
      continue;
    }
    const m = /^(\s*)● (.+?)\s*$/.exec(line);
    if (!m || /^Console\b/.test(m[2] ?? '')) continue;
    const indent = (m[1] ?? '').length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (
        /^\s*● /.test(l) ||
        /^\s*(FAIL|PASS)\s+\S/.test(l) ||
        /^(Test Suites|Tests|Summary of all failing tests):?/.test(l)
      )
        break;
      if (l.trim() !== '' && l.length - l.trimStart().length <= indent) break;
      body.push(l);
    }
    i = j - 1;
    const frameStart = body.findIndex((l) => /^\s*(>?\s*\d+ \||at\s)/.test(l));
    const text = frameStart >= 0 ? body.slice(0, frameStart) : body;
    // The message is the first paragraph; the matcher's Expected/Received come after it.
    const paragraphs = text
      .join('\n')
      .trim()
      .split(/\n\s*\n/);
    // "Test suite failed to run" explains itself at length; the error line says what broke.
    const errorLine = /failed to run/.test(m[2] ?? '')
      ? text.find((l) => /^\s*[A-Z]\w*Error\b.*?:/.test(l))
      : undefined;
    const message = errorLine
      ? errorLine.trim()
      : messageOf(
          (paragraphs[0] ?? '')
            .split('\n')
            .concat((paragraphs[1] ?? '').split('\n'))
            .slice(0, MAX_MESSAGE_LINES),
        );
    let location = firstOwnJsFrame(body.filter((l) => /^\s*at\s/.test(l)));
    // Frames are relative to jest's rootDir; the FAIL line is relative to the cwd.
    if (location && currentFile && currentFile !== location.file && currentFile.endsWith(`/${location.file}`))
      location = { ...location, file: currentFile };
    location ??= currentFile ? { file: currentFile } : undefined;
    failures.push({
      runner: 'jest',
      name: m[2] ?? '',
      message: message || 'failed',
      ...(location ? { location } : {}),
    });
  }
  let summary: string | undefined;
  for (const l of lines) {
    const s = /^Tests:\s+(.*?)\s*$/.exec(l);
    if (s) summary = (s[1] ?? '').replace(/(?:,\s*)?\d+ total$/, '') || undefined;
  }
  return { failures, summary };
}

// ---------------------------------------------------------------------------------------
// pytest

const PYTEST_LOCATION = /^(\S+?\.py):(\d+): (.*)$/;

function parsePytest(lines: readonly string[]): RunnerResult {
  // Sections `___ title ___` under FAILURES / ERRORS.
  const sections = new Map<string, { locations: FailureLocation[]; errors: string[] }>();
  let current: { locations: FailureLocation[]; errors: string[] } | undefined;
  let inReport = false;
  const loose: { location: FailureLocation; text: string }[] = []; // --tb=line
  for (const line of lines) {
    const banner = /^={3,} (.*?) ={3,}$/.exec(line);
    if (banner) {
      inReport = /^(FAILURES|ERRORS)$/.test(banner[1] ?? '');
      current = undefined;
      continue;
    }
    if (!inReport) continue;
    const title = /^_{3,} (.*?) _{3,}$/.exec(line);
    if (title) {
      current = { locations: [], errors: [] };
      sections.set(title[1] ?? '', current);
      continue;
    }
    const lm = PYTEST_LOCATION.exec(line);
    if (lm) {
      const l = loc(lm[1] ?? '', lm[2]);
      if (current) current.locations.push(l);
      else loose.push({ location: l, text: lm[3] ?? '' });
      continue;
    }
    const e = /^E\s+(.*)$/.exec(line);
    if (e && current) current.errors.push(e[1] ?? '');
  }

  const failures: FailingItem[] = [];
  for (const line of lines) {
    const m = /^(FAILED|ERROR) (\S+?(?:\[.*?\])?)(?: - (.*))?\s*$/.exec(line);
    if (!m) continue;
    const nodeid = m[2] ?? '';
    const [file = nodeid, ...rest] = nodeid.split('::');
    const dotted = rest.join('.');
    const section =
      sections.get(dotted) ??
      sections.get(`ERROR at setup of ${dotted}`) ??
      sections.get(`ERROR at teardown of ${dotted}`) ??
      [...sections.entries()].find(([t]) => dotted !== '' && t.endsWith(dotted))?.[1] ??
      (rest.length === 0 ? sections.get(`ERROR collecting ${file}`) : undefined);
    const own = section?.locations.filter(
      (l) => l.file === file || l.file.endsWith(`/${file}`) || file.endsWith(`/${l.file}`),
    );
    const location = own?.[own.length - 1] ??
      section?.locations[section.locations.length - 1] ??
      loose.find((l) => l.location.file.endsWith(file))?.location ?? { file };
    const message = m[3] ?? messageOf(section?.errors ?? []) ?? '';
    failures.push({
      runner: 'pytest',
      name: nodeid,
      message: message || (m[1] === 'ERROR' ? 'error' : 'failed'),
      location,
    });
  }
  if (!failures.length) {
    // No short summary (e.g. `-rN`): the sections themselves.
    for (const [title, s] of sections) {
      const location = s.locations[s.locations.length - 1];
      failures.push({
        runner: 'pytest',
        name: title,
        message: messageOf(s.errors) || 'failed',
        ...(location ? { location } : {}),
      });
    }
    for (const l of loose)
      failures.push({ runner: 'pytest', name: l.location.file, message: l.text, location: l.location });
  }
  let summary: string | undefined;
  for (const l of lines) {
    const s =
      /^=*\s*((?:\d+ (?:failed|passed|errors?|skipped|xfailed|xpassed|warnings?|deselected)(?:, )?)+)(?: in [\d.]+s.*?)?\s*=*$/.exec(
        l,
      );
    if (s) summary = (s[1] ?? '').trim();
  }
  return { failures, summary };
}

// ---------------------------------------------------------------------------------------
// go test

function parseGoTest(lines: readonly string[]): RunnerResult {
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

// ---------------------------------------------------------------------------------------
// cargo test

function parseCargoTest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  const named = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    // Compile errors: `error[E0308]: mismatched types` then ` --> src/lib.rs:2:21`.
    const ce = /^error(?:\[(E\d+)\])?: (.*)$/.exec(line);
    if (ce) {
      const arrow = /^\s*--> (.*?):(\d+):(\d+)\s*$/.exec(lines[i + 1] ?? '');
      if (arrow)
        failures.push({
          runner: 'cargo-test',
          name: ce[1] ?? 'error',
          message: ce[2] ?? '',
          location: loc(arrow[1] ?? '', arrow[2], arrow[3]),
        });
      continue;
    }
    const head = /^---- (.+?) stdout ----\s*$/.exec(line);
    if (!head) continue;
    const name = head[1] ?? '';
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (/^---- .+ stdout ----\s*$/.test(l) || /^(failures|successes):\s*$/.test(l) || /^test result: /.test(l)) break;
      body.push(l);
    }
    i = j - 1;
    let message = '';
    let location: FailureLocation | undefined;
    for (let k = 0; k < body.length; k++) {
      const b = body[k] ?? '';
      // Rust ≥ 1.73: `thread 'x' (123) panicked at src/lib.rs:16:9:` then the message.
      const now = /^thread '.*?'(?: \(\d+\))? panicked at (.*?):(\d+):(\d+):\s*$/.exec(b);
      if (now) {
        location = loc(now[1] ?? '', now[2], now[3]);
        const rest: string[] = [];
        for (let r = k + 1; r < body.length; r++) {
          const t = body[r] ?? '';
          if (/^(stack backtrace:|note: )/.test(t) || t.trim() === '') break;
          rest.push(t);
        }
        message = messageOf(rest);
        break;
      }
      // Older: `thread 'x' panicked at 'message', src/lib.rs:16:9`.
      const old = /^thread '.*?' panicked at '(.*)', (.*?):(\d+):(\d+)\s*$/.exec(b);
      if (old) {
        message = old[1] ?? '';
        location = loc(old[2] ?? '', old[3], old[4]);
        break;
      }
      // `Error: …` from a test returning Result.
      const err = /^Error: (.*)$/.exec(b);
      if (err && !message) message = err[1] ?? '';
    }
    if (!message) message = messageOf(body) || 'failed';
    named.add(name);
    failures.push({ runner: 'cargo-test', name, message, ...(location ? { location } : {}) });
  }
  // The `failures:` list names tests whose output block was missing (e.g. captured elsewhere).
  for (let i = 0; i < lines.length; i++) {
    if (!/^failures:\s*$/.test(lines[i] ?? '')) continue;
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (l.trim() === '' && j === i + 1) continue;
      const m = /^ {4}(\S+)\s*$/.exec(l);
      if (!m) break;
      const name = m[1] ?? '';
      if (!named.has(name)) {
        named.add(name);
        failures.push({ runner: 'cargo-test', name, message: 'failed' });
      }
    }
  }
  const results = lines
    .map((l) => /^test result: FAILED\. (.*?)(?:; finished in .*)?$/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined);
  return { failures, summary: results.length ? results.join(' / ') : undefined };
}

// ---------------------------------------------------------------------------------------
// tsc

function parseTsc(lines: readonly string[]): RunnerResult {
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

// ---------------------------------------------------------------------------------------
// eslint

function parseEslint(lines: readonly string[]): RunnerResult {
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

// ---------------------------------------------------------------------------------------
// Anything else: lines that look like errors, with a path:line on or near them.

const GENERIC_ERROR = /^\s*(?:\w*(?:Error|Exception)\b[:\s]|error(?:\[\w+\])?:|ERROR\b|FAIL(?:ED)?\b|fatal:)/;
const GENERIC_LOCATION = /((?:\.{0,2}\/)?[\w@.+-]+(?:\/[\w@.+-]+)*\.[A-Za-z]{1,5}):(\d+)(?::(\d+))?/;

function parseUnknown(lines: readonly string[]): RunnerResult {
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

// ---------------------------------------------------------------------------------------
// Detection

const PARSERS: Record<Runner, (lines: readonly string[]) => RunnerResult> = {
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
const SIGNATURES: [Runner, RegExp][] = [
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

function commandHint(command: string | undefined): Runner | undefined {
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
  const candidates: Runner[] = hint && !found.includes(hint) ? [hint, ...found] : found;

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
