import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  formatFailureReport,
  parseFailureOutput,
  stripAnsi,
  type FailingItem,
  type ParsedFailure,
} from './failure-report.js';

// Real output from real runners: run live on tiny projects where this machine has the
// runner, else read from test/fixtures/runner-output, saved once from a real run, whose
// first line records the command and versions that produced it.

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = (name: string) => join(repoRoot, 'node_modules', '.bin', name);
const fixturesDir = join(repoRoot, 'test', 'fixtures', 'runner-output');

const tmpRoot = mkdtempSync(join(tmpdir(), 'failure-report-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));

let dirCount = 0;
function project(files: Record<string, string>): string {
  const dir = join(tmpRoot, `p${++dirCount}`);
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

/** The environment without this vitest run's own markers, so a nested runner behaves as in CI. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^(VITEST|TEST$|NODE_OPTIONS$)/.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function run(
  command: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): { output: string; status: number | null } {
  const r = spawnSync(command, args, {
    cwd,
    env: cleanEnv(env),
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  if (r.error) throw r.error;
  return { output: `${r.stdout}${r.stderr}`, status: r.status };
}

function has(command: string, ...args: string[]): boolean {
  const r = spawnSync(command, args.length ? args : ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return !r.error && r.status === 0;
}

function fixture(name: string): string {
  const text = readFileSync(join(fixturesDir, name), 'utf8');
  const [first = '', ...rest] = text.split('\n');
  expect(first).toMatch(/^# produced by: .+ \(.+\)/);
  return rest.join('\n');
}

function byName(parsed: ParsedFailure, name: string | RegExp): FailingItem {
  const item = parsed.failures.find((f) => (typeof name === 'string' ? f.name === name : name.test(f.name)));
  if (!item) throw new Error(`no failure named ${String(name)} in ${JSON.stringify(parsed, null, 2)}`);
  return item;
}

function expectAt(item: FailingItem, file: string | RegExp, line: number, column?: number) {
  expect(item.location, JSON.stringify(item)).toBeDefined();
  if (typeof file === 'string') expect(item.location?.file).toBe(file);
  else expect(item.location?.file).toMatch(file);
  expect(item.location?.line).toBe(line);
  if (column !== undefined) expect(item.location?.column).toBe(column);
}

// ---------------------------------------------------------------------------------------

const NODE_TEST = `const test = require('node:test');
const assert = require('node:assert');
test('adds', () => { assert.strictEqual(1 + 1, 2); });
test('subtracts wrongly', () => {
  assert.strictEqual(5 - 3, 3);
});
test.describe('suite', () => { test.it('inner fails', () => { throw new Error('boom inner'); }); });
`;

// Runners may run files (and cargo, tests) in parallel: failure order is compared sorted.
describe("node's test runner (live)", () => {
  const dir = project({ 'a.test.js': NODE_TEST });

  it('reads the TAP reporter: names, messages, the failing line', () => {
    const { output, status } = run(process.execPath, ['--test', '--test-reporter=tap'], dir);
    expect(status).not.toBe(0);
    const parsed = parseFailureOutput(output, 'node --test');
    expect(parsed.runner).toBe('node-test');
    expect(parsed.failures.map((f) => f.name).sort()).toEqual(['subtracts wrongly', 'suite > inner fails'].sort());
    const sub = byName(parsed, 'subtracts wrongly');
    expect(sub.message).toMatch(/AssertionError: Expected values to be strictly equal/);
    expectAt(sub, /a\.test\.js$/, 5, 10);
    expect(byName(parsed, 'suite > inner fails').message).toContain('boom inner');
    expectAt(byName(parsed, 'suite > inner fails'), /a\.test\.js$/, 7);
    expect(parsed.summary).toBe('2 failed, 1 passed');
  });

  it('reads the spec reporter', () => {
    const { output } = run(process.execPath, ['--test', '--test-reporter=spec'], dir, { FORCE_COLOR: '1' });
    const parsed = parseFailureOutput(output);
    expect(parsed.runner).toBe('node-test');
    expect(parsed.failures.map((f) => f.name).sort()).toEqual(['subtracts wrongly', 'inner fails'].sort());
    expectAt(byName(parsed, 'subtracts wrongly'), /a\.test\.js$/, 5, 10);
    expect(byName(parsed, 'inner fails').message).toContain('Error: boom inner');
  });
});

describe("node's test runner, a file that throws while loading (live)", () => {
  it('names the file and the error it printed', () => {
    const dir = project({ 'broken.test.js': "require('./nope');\n" });
    const { output } = run(process.execPath, ['--test', '--test-reporter=tap'], dir);
    const parsed = parseFailureOutput(output);
    expect(parsed.failures).toHaveLength(1);
    expect(parsed.failures[0]?.name).toMatch(/broken\.test\.js$/);
    expect(parsed.failures[0]?.message).toBe("Error: Cannot find module './nope'");
    expectAt(parsed.failures[0]!, /broken\.test\.js$/, 1);
  });
});

describe('vitest (live)', () => {
  it('reads FAIL blocks, the assertion and the ❯ location, in colour', () => {
    const dir = project({
      'vitest.config.mjs': `export default { test: { include: ['**/*.test.js'] } };\n`,
      'math.test.js': `import { describe, it, expect } from 'vitest';
describe('math', () => {
  it('adds', () => { expect(1 + 1).toBe(2); });
  it('multiplies wrongly', () => {
    expect(2 * 3).toBe(7);
  });
});
it('top-level throws', () => { throw new Error('kaboom'); });
`,
    });
    const { output, status } = run(
      bin('vitest'),
      ['run', '--root', dir, '--config', join(dir, 'vitest.config.mjs')],
      dir,
      { FORCE_COLOR: '1' },
    );
    expect(status).not.toBe(0);
    const parsed = parseFailureOutput(output, 'npx vitest run');
    expect(parsed.runner).toBe('vitest');
    expect(parsed.failures.map((f) => f.name).sort()).toEqual(['math > multiplies wrongly', 'top-level throws'].sort());
    const mult = byName(parsed, 'math > multiplies wrongly');
    expect(mult.message).toContain('AssertionError: expected 6 to be 7');
    expectAt(mult, 'math.test.js', 5, 19);
    expectAt(byName(parsed, 'top-level throws'), 'math.test.js', 8);
    expect(parsed.summary).toBe('2 failed, 1 passed');
  });

  it('reads a test file that fails to load', () => {
    const dir = project({
      'vitest.config.mjs': `export default { test: { include: ['**/*.test.js'] } };\n`,
      'broken.test.js': "import { it } from 'vitest';\nimport './missing.js';\nit('x', () => {});\n",
    });
    const { output } = run(bin('vitest'), ['run', '--root', dir, '--config', join(dir, 'vitest.config.mjs')], dir, {
      NO_COLOR: '1',
    });
    const parsed = parseFailureOutput(output);
    expect(parsed.failures.map((f) => f.name)).toEqual(['broken.test.js']);
    expect(parsed.failures[0]?.message).toMatch(/^Error: Cannot find module '\.\/missing\.js'/);
    expectAt(parsed.failures[0]!, 'broken.test.js', 2, 1);
  });
});

describe('tsc (live)', () => {
  const dir = project({
    'tsconfig.json': JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'ES2022', module: 'NodeNext', types: [] },
      include: ['src'],
    }),
    'src/a.ts': `export const a: number = 1;\n\nconst b: string = a;\nexport function f(x: number) { return x.foo; }\n`,
  });
  for (const pretty of ['false', 'true']) {
    it(`reads diagnostics with --pretty ${pretty}`, () => {
      const { output, status } = run(bin('tsc'), ['--noEmit', '-p', '.', '--pretty', pretty], dir);
      expect(status).not.toBe(0);
      const parsed = parseFailureOutput(output);
      expect(parsed.runner).toBe('tsc');
      expect(parsed.failures).toHaveLength(2);
      const ts2322 = byName(parsed, 'TS2322');
      expect(ts2322.message).toBe("Type 'number' is not assignable to type 'string'.");
      expectAt(ts2322, 'src/a.ts', 3, 7);
      expectAt(byName(parsed, 'TS2339'), 'src/a.ts', 4, 41);
    });
  }
});

// ---------------------------------------------------------------------------------------

const PYTEST_FILES = {
  'tests/test_x.py': `def add(a, b):
    return a + b

def test_ok():
    assert add(1, 1) == 2

def test_add_wrong():
    assert add(2, 2) == 5

class TestThing:
    def test_raises(self):
        raise ValueError("bad value here")
`,
};

function checkPytest(parsed: ParsedFailure) {
  expect(parsed.runner).toBe('pytest');
  expect(parsed.failures.map((f) => f.name).sort()).toEqual(
    ['tests/test_x.py::test_add_wrong', 'tests/test_x.py::TestThing::test_raises'].sort(),
  );
  const wrong = byName(parsed, 'tests/test_x.py::test_add_wrong');
  expect(wrong.message).toBe('assert 4 == 5');
  expectAt(wrong, 'tests/test_x.py', 8);
  expect(byName(parsed, /test_raises$/).message).toBe('ValueError: bad value here');
  expectAt(byName(parsed, /test_raises$/), 'tests/test_x.py', 12);
  expect(parsed.summary).toBe('2 failed, 1 passed');
}

describe('pytest', () => {
  it('reads the saved output (default and --tb=short)', () => {
    checkPytest(parseFailureOutput(fixture('pytest.txt')));
    checkPytest(parseFailureOutput(fixture('pytest-short.txt')));
  });
  it('reads a collection error', () => {
    const parsed = parseFailureOutput(fixture('pytest-collection-error.txt'));
    expect(parsed.runner).toBe('pytest');
    expect(parsed.failures.map((f) => f.name)).toEqual(['tests/test_broken.py']);
    expect(parsed.failures[0]?.message).toBe("ModuleNotFoundError: No module named 'nosuchmodule'");
    expectAt(parsed.failures[0]!, 'tests/test_broken.py', 1);
    expect(parsed.summary).toBe('1 error');
  });
  it('reads live output where pytest is installed (the saved output is checked above either way)', () => {
    if (!has('python3', '-m', 'pytest', '--version'))
      return void console.log('pytest is not installed here: live run not possible, fixture only');
    const dir = project(PYTEST_FILES);
    const { output } = run('python3', ['-m', 'pytest', '-p', 'no:cacheprovider'], dir);
    checkPytest(parseFailureOutput(output, 'python3 -m pytest'));
  });
});

const GO_FILES = {
  'go.mod': 'module example.com/calc\n\ngo 1.19\n',
  'calc.go': 'package calc\n\nfunc Add(a, b int) int { return a + b }\n',
  'calc_test.go': `package calc

import "testing"

func TestAdd(t *testing.T) {
	if Add(1, 1) != 2 {
		t.Fatal("1+1")
	}
}

func TestAddWrong(t *testing.T) {
	if got := Add(2, 2); got != 5 {
		t.Errorf("Add(2, 2) = %d, want 5", got)
	}
}

func TestTable(t *testing.T) {
	t.Run("case one", func(t *testing.T) {
		t.Fatalf("subtest failed: %s", "nope")
	})
}

func TestPanics(t *testing.T) {
	var m map[string]int
	m["x"] = 1
}
`,
};

function checkGo(parsed: ParsedFailure) {
  expect(parsed.runner).toBe('go-test');
  // The parent TestTable fails only through its subtest, which is what is reported.
  expect(parsed.failures.map((f) => f.name).sort()).toEqual(
    ['TestAddWrong', 'TestTable/case_one', 'TestPanics'].sort(),
  );
  const wrong = byName(parsed, 'TestAddWrong');
  expect(wrong.message).toBe('Add(2, 2) = 4, want 5');
  expectAt(wrong, 'calc_test.go', 13);
  expectAt(byName(parsed, 'TestTable/case_one'), 'calc_test.go', 19);
  const panics = byName(parsed, 'TestPanics');
  expect(panics.message).toContain('panic: assignment to entry in nil map');
  expectAt(panics, /calc_test\.go$/, 25);
  expect(parsed.summary).toBe('FAIL example.com/calc');
}

describe('go test', () => {
  it('reads the saved output (plain and -v)', () => {
    checkGo(parseFailureOutput(fixture('go-test.txt')));
    checkGo(parseFailureOutput(fixture('go-test-v.txt')));
  });
  it('reads a build failure', () => {
    const parsed = parseFailureOutput(fixture('go-build-error.txt'));
    expect(parsed.runner).toBe('go-test');
    expect(parsed.failures[0]?.message).toBe('undefined: undefinedThing');
    expectAt(parsed.failures[0]!, './calc.go', 3, 37);
  });
  it('reads live output where go is installed (the saved output is checked above either way)', () => {
    if (!has('go', 'version')) return void console.log('go is not installed here: live run not possible, fixture only');
    const dir = project(GO_FILES);
    const env = {
      GOCACHE: join(tmpRoot, 'gocache'),
      GOPATH: join(tmpRoot, 'gopath'),
      GOFLAGS: '-mod=mod',
      GOPROXY: 'off',
      GOTOOLCHAIN: 'local',
    };
    checkGo(parseFailureOutput(run('go', ['test', './...'], dir, env).output, 'go test ./...'));
    checkGo(parseFailureOutput(run('go', ['test', '-v', './...'], dir, env).output, 'go test -v ./...'));
  });
});

const CARGO_FILES = {
  'Cargo.toml': '[package]\nname = "rs"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n',
  'src/lib.rs': `pub fn add(a: u64, b: u64) -> u64 {
    a + b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds() {
        assert_eq!(add(2, 2), 4);
    }

    #[test]
    fn adds_wrong() {
        assert_eq!(add(2, 2), 5);
    }

    #[test]
    fn panics_plain() {
        panic!("something went wrong");
    }
}
`,
};

function checkCargo(parsed: ParsedFailure) {
  expect(parsed.runner).toBe('cargo-test');
  // cargo runs tests on parallel threads: the order of failures varies between runs.
  expect(parsed.failures.map((f) => f.name).sort()).toEqual(['tests::adds_wrong', 'tests::panics_plain'].sort());
  const wrong = byName(parsed, 'tests::adds_wrong');
  expect(wrong.message).toMatch(/^assertion `left == right` failed/);
  expectAt(wrong, 'src/lib.rs', 16, 9);
  expect(byName(parsed, 'tests::panics_plain').message).toBe('something went wrong');
  expectAt(byName(parsed, 'tests::panics_plain'), 'src/lib.rs', 21, 9);
  expect(parsed.summary).toMatch(/^1 passed; 2 failed/);
}

describe('cargo test', () => {
  it('reads the saved output', () => checkCargo(parseFailureOutput(fixture('cargo-test.txt'))));
  it('reads a compile error', () => {
    const parsed = parseFailureOutput(fixture('cargo-build-error.txt'));
    expect(parsed.runner).toBe('cargo-test');
    expect(parsed.failures.map((f) => [f.name, f.message, f.location?.file, f.location?.line])).toEqual([
      ['E0308', 'mismatched types', 'src/lib.rs', 2],
      ['E0308', 'mismatched types', 'src/lib.rs', 3],
    ]);
  });
  it('reads live output where cargo is installed (the saved output is checked above either way)', () => {
    if (!has('cargo')) return void console.log('cargo is not installed here: live run not possible, fixture only');
    const dir = project(CARGO_FILES);
    const { output } = run('cargo', ['test', '--offline'], dir, {
      CARGO_TARGET_DIR: join(dir, 'target'),
      CARGO_TERM_COLOR: 'always',
    });
    checkCargo(parseFailureOutput(output, 'cargo test --offline'));
  });
});

// eslint and jest are not this repository's dependencies: the saved fixtures were made from the
// sources below (kept, unused, so a fixture can be made again).

const _ESLINT_FILES = {
  'eslint.config.mjs': `export default [{ files: ['src/**/*.js'], rules: { 'no-unused-vars': 'error', 'no-undef': 'error', eqeqeq: 'warn' } }];\n`,
  'src/a.js': 'const unused = 1;\nexport function f(x) {\n  if (x == 2) return missing;\n  return x;\n}\n',
  'src/b.js': 'export const y = notDefined + 1;\n',
};

function checkEslint(parsed: ParsedFailure) {
  expect(parsed.runner).toBe('eslint');
  // The warning (eqeqeq) does not fail the run; the three errors do.
  expect(parsed.failures.map((f) => f.name)).toEqual(['no-unused-vars', 'no-undef', 'no-undef']);
  expect(parsed.failures[0]?.message).toMatch(/^'unused' is assigned a value but never used\.?$/);
  expectAt(parsed.failures[0]!, /src\/a\.js$/, 1, 7);
  expectAt(parsed.failures[1]!, /src\/a\.js$/, 3, 22);
  expectAt(parsed.failures[2]!, /src\/b\.js$/, 1, 18);
  expect(parsed.summary).toMatch(/^4 problems/);
}

describe('eslint', () => {
  it('reads the saved stylish, unix and compact output', () => {
    checkEslint(parseFailureOutput(fixture('eslint.txt')));
    checkEslint(parseFailureOutput(fixture('eslint-unix.txt')));
    checkEslint(parseFailureOutput(fixture('eslint-compact.txt')));
  });
});

const _JEST_FILES = {
  'package.json': '{ "name": "tiny", "private": true, "jest": { "testEnvironment": "node" } }\n',
  'sum.test.js': `const sum = (a, b) => a + b;
describe('sum', () => {
  test('adds', () => {
    expect(sum(1, 2)).toBe(3);
  });
  test('adds wrongly', () => {
    expect(sum(2, 2)).toBe(5);
  });
});
test('throws', () => {
  throw new Error('jest kaboom');
});
`,
};

function checkJest(parsed: ParsedFailure) {
  expect(parsed.runner).toBe('jest');
  expect(parsed.failures.map((f) => f.name)).toEqual(['sum › adds wrongly', 'throws']);
  const wrong = byName(parsed, 'sum › adds wrongly');
  expect(wrong.message).toMatch(/^expect\(received\)\.toBe\(expected\)/);
  expect(wrong.message).toContain('Expected: 5');
  expectAt(wrong, /sum\.test\.js$/, 7, 23);
  expect(byName(parsed, 'throws').message).toBe('jest kaboom');
  expectAt(byName(parsed, 'throws'), /sum\.test\.js$/, 11, 9);
  expect(parsed.summary).toBe('2 failed, 1 passed');
}

describe('jest', () => {
  it('reads the saved output', () => checkJest(parseFailureOutput(fixture('jest.txt'))));
  it('reads a test file that fails to run', () => {
    const parsed = parseFailureOutput(fixture('jest-suite-error.txt'));
    expect(parsed.runner).toBe('jest');
    expect(parsed.failures.map((f) => f.name)).toEqual(['Test suite failed to run']);
    expect(parsed.failures[0]?.message).toMatch(/^SyntaxError: .*broken\.test\.js: Unexpected token/);
    expect(parsed.failures[0]?.location?.file).toBe('jb/broken.test.js');
  });
});

// ---------------------------------------------------------------------------------------

describe('noise', () => {
  it('finds the one failing test in a 10,000-line log, in a report far smaller than the log', () => {
    const lines = ["const test = require('node:test');", "const assert = require('node:assert');"];
    for (let i = 0; i < 2500; i++) {
      lines.push(
        i === 1250
          ? "test('the one that fails', () => { assert.deepStrictEqual({ a: 1 }, { a: 2 }); });"
          : `test('passes number ${i}', () => { assert.ok(true); });`,
      );
    }
    const dir = project({ 'big.test.js': `${lines.join('\n')}\n` });
    const { output } = run(process.execPath, ['--test', '--test-reporter=tap'], dir);
    expect(output.split('\n').length).toBeGreaterThanOrEqual(10_000);

    const parsed = parseFailureOutput(output, 'npm test');
    expect(parsed.runner).toBe('node-test');
    expect(parsed.failures.map((f) => f.name)).toEqual(['the one that fails']);
    expectAt(parsed.failures[0]!, /big\.test\.js$/, 1253);
    expect(parsed.summary).toBe('1 failed, 2499 passed');

    const report = formatFailureReport(parsed);
    expect(report).toContain('the one that fails');
    expect(report.length * 100).toBeLessThan(output.length);
  });

  it('reads output that mixes runners, and takes the command as the hint', () => {
    const mixed = [
      fixture('eslint.txt'),
      "src/a.ts(3,7): error TS2322: Type 'number' is not assignable to type 'string'.",
      fixture('jest.txt'),
    ].join('\n');
    const parsed = parseFailureOutput(mixed, 'npm run lint && tsc --noEmit && jest');
    expect(new Set(parsed.failures.map((f) => f.runner))).toEqual(new Set(['eslint', 'tsc', 'jest']));
    expect(parseFailureOutput(mixed, 'tsc --noEmit').runner).toBe('tsc');
  });

  it('strips colour codes', () => {
    expect(stripAnsi('\u001b[96msrc/a.ts\u001b[0m:\u001b[93m3\u001b[0m')).toBe('src/a.ts:3');
  });

  it('says unknown, with what looks like errors, for output it does not know', () => {
    const parsed = parseFailureOutput('building…\nfatal: something broke at lib/x.rb:12\ndone\n', 'make test');
    expect(parsed.runner).toBe('unknown');
    expect(parsed.failures[0]?.location).toEqual({ file: 'lib/x.rb', line: 12 });
    expect(parseFailureOutput('all good\n').failures).toEqual([]);
  });
});
