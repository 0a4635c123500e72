import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../../test/helpers/cli.js';
import { tempDir } from '../../test/helpers/git-fixtures.js';

const tmp = tempDir('cli-config');
afterAll(() => tmp.cleanup());

function file(rel: string, text: string): string {
  const p = path.join(tmp.dir, rel);
  mkdirSync(path.dirname(p), { recursive: true });
  writeFileSync(p, text);
  return p;
}

describe('issue-agent config check', () => {
  it('says a valid file is valid and what it sets; reads .github/agent.yml of the working directory by default', async () => {
    file(
      'repo/.github/agent.yml',
      [
        'commands:',
        '  test: npm test',
        'paths:',
        '  deny: [".github/**"]',
        'max_rounds: 2',
        'budgets:',
        '  max_cost_usd: 2.5',
        '',
      ].join('\n'),
    );
    const r = await runCli(['config', 'check'], { cwd: path.join(tmp.dir, 'repo') });
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      '.github/agent.yml: valid',
      '  trigger label: "agent" (default)',
      '  commands: test "npm test" (the rest detected)',
      '  install network: registries (default)',
      '  paths: every file; deny .github/**',
      '  rounds: 2',
      '  checkpoint after planning: confidence below 0.5, more than 10 files or 400 lines (default)',
      '  budgets per job: 120 model calls, $2.5, 45 minutes; per day: $50',
      "  models: the app's (default)",
      '  instructions: none',
      '',
    ]);
    // A checkout's directory means the file in it.
    const dir = await runCli(['config', 'check', path.join(tmp.dir, 'repo')]);
    expect(dir.status).toBe(0);
    expect(dir.stdout).toMatch(/^\/.*\/repo\/\.github\/agent\.yml: valid$/m);
  });

  it('explains each problem with its line and field and exits 1', async () => {
    const p = file(
      'bad.yml',
      ['trigger_label: agent', 'max_rounds: 12', 'budgets:', '  max_cost: 3', 'paths:', '  allow: "src/**"', ''].join(
        '\n',
      ),
    );
    const r = await runCli(['config', 'check', p]);
    expect(r.status).toBe(1);
    expect(r.stdout.split('\n')).toEqual([
      `${p}: invalid, 3 problems`,
      expect.stringMatching(
        /^ {2}line 2, field max_rounds: 12 is above the maximum of 10 — expected: a whole number from 1 to 10 \(code ⇄ validate rounds before escalating \(default 3\)\)$/,
      ),
      expect.stringMatching(
        /^ {2}line 4, field budgets\.max_cost: unknown key "max_cost" in budgets \(did you mean max_cost_usd\?\) — expected: one of the keys max_model_calls, /,
      ),
      expect.stringMatching(
        /^ {2}line 6, field paths\.allow: is text \("src\/\*\*"\), not a list — expected: a list of strings/,
      ),
      '',
    ]);
  });

  it('names the line of a YAML syntax error, and says when there is no file', async () => {
    const p = file('syntax.yml', 'commands:\n  test: "npm test\nmax_rounds: 2\n');
    const r = await runCli(['config', 'check', p]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^ {2}line \d+, field commands(\.test)?: YAML syntax: /m);

    const missing = await runCli(['config', 'check', path.join(tmp.dir, 'nothing.yml')]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain(
      `cannot read ${path.join(tmp.dir, 'nothing.yml')}: no such file. A repository without .github/agent.yml runs with the defaults.`,
    );
  });
});
