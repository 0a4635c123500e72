import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Trace } from '../agent/trace.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = (...args: string[]) =>
  spawnSync(
    process.execPath,
    [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'src/cli/main.ts'), ...args],
    { encoding: 'utf8' },
  );

describe('issue-agent trace', () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ia-cli-'));
  const job = 'octo/calc/issues/12/attempt-1';
  const trace = new Trace(dataDir, job);
  trace.write({ type: 'stage', stage: 'plan', phase: 'start' });
  trace.write({
    type: 'model',
    stage: 'plan',
    model: 'claude-opus-5-5',
    tier: 'frontier',
    usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 900, cache_creation_input_tokens: 0 },
    costUsd: 0.0012,
    durationMs: 800,
    stopReason: 'tool_use',
  });
  trace.write({
    type: 'tool',
    stage: 'plan',
    tool: 'read_file',
    ok: false,
    errorCode: 'not_found',
    durationMs: 3,
    input: { path: 'x' },
  });
  trace.write({
    type: 'command',
    stage: 'validate',
    name: 'test',
    command: 'npm test',
    exitCode: 1,
    timedOut: false,
    durationMs: 900,
    output: 'not ok 1',
  });
  trace.write({ type: 'stage', stage: 'plan', phase: 'end', result: 'done' });

  it('prints a timeline with stage, step, tool, outcome, tokens and cost', () => {
    const r = cli('trace', job, '--data-dir', dataDir);
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^\+\s+0\.0s {2}── plan start$/);
    expect(lines[1]).toMatch(
      /plan\s+#1\s+model claude-opus-5-5 \[frontier\] {2}1000 in \(900 cached\) \/ 20 out {2}\$0\.0012 {2}800 ms/,
    );
    expect(lines[2]).toMatch(/read_file\s+error not_found {2}3 ms/);
    expect(lines[3]).toMatch(/\$ npm test {2}→ exit 1 {2}900 ms/);
    expect(lines.at(-1)).toBe('total: 1 model calls, $0.0012');
  });

  it('passes the raw JSONL through with --json, and names a missing job', () => {
    expect(cli('trace', job, '--data-dir', dataDir, '--json').stdout).toBe(`${readFileSync(trace.file, 'utf8')}\n`);
    const missing = cli('trace', 'octo/calc/issues/99/attempt-1', '--data-dir', dataDir);
    expect(missing.status).toBe(1);
    expect(missing.stderr).toMatch(/no trace for job "octo\/calc\/issues\/99\/attempt-1" at .*job ids look like/);
  });

  it('has help', () => {
    expect(
      execFileSync(
        process.execPath,
        [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), path.join(ROOT, 'src/cli/main.ts'), 'trace', '--help'],
        { encoding: 'utf8' },
      ),
    ).toContain('--json');
  });
});
