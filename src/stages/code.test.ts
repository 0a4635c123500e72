import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, type AnthropicStandIn, type ScriptedBlock } from '../../test/stand-ins/anthropic/server.js';
import { Spend } from '../agent/budget.js';
import { ModelClient } from '../agent/model.js';
import { Trace } from '../agent/trace.js';
import { createRunner } from '../sandbox/runner.js';
import { codeStage } from './code.js';

const log = pino({ level: 'silent' });
let api: AnthropicStandIn;
let root: string;

beforeAll(async () => {
  api = await startAnthropicStandIn();
  root = mkdtempSync(path.join(tmpdir(), 'ia-long-'));
  for (let f = 0; f < 40; f++) {
    writeFileSync(path.join(root, `module${f}.js`), Array.from({ length: 150 }, (_, i) => `export const value${f}_${i} = ${i}; // line ${i + 1} of module ${f}`).join('\n') + '\n');
  }
  execFileSync('git', ['init', '-q', root]);
});
afterAll(async () => {
  await api.close();
  rmSync(root, { recursive: true, force: true });
});

const use = (name: string, input: unknown): ScriptedBlock => ({ type: 'tool_use', name, input });

/** The 61-step script: reads of many files, noisy commands, and three edits. */
function step(n: number): ScriptedBlock[] {
  if (n === 60) return [{ type: 'text', text: 'Before finishing, let me recall what I changed and what failed.' }, use('finish_change', { summary: 'Renamed three values.' })];
  if (n % 20 === 5) {
    const f = n / 20 | 0;
    return [use('edit_file', { path: `module${f}.js`, old_text: `export const value${f}_3 = 3;`, new_text: `export const value${f}_3 = 3000; // changed at step ${n}` })];
  }
  if (n % 3 === 0) return [use('run_command', { command: `for i in $(seq 1 4000); do echo "noise line $i from step ${n}: compiling module $((i % 40))"; done`, timeout_seconds: 30 })];
  return [use('read_file', { path: `module${n % 40}.js`, start_line: 1, end_line: 150 })];
}

describe('a long coding stage', () => {
  it('keeps the input of step 60 within 1.5× of step 10, and never drops the keep-set', async () => {
    const spend = new Spend();
    const trace = new Trace(root, 'long-stage');
    const model = new ModelClient({ apiKey: 'sk-ant-test', baseURL: api.url, models: { frontier: 'claude-opus-5-5', mid: 'claude-sonnet-5-5', fast: 'claude-haiku-5-5' }, log, spend, trace, maxRetries: 0 });
    api.setModel((_req, { callIndex }) => ({ content: step(callIndex) }));
    const touched = new Set<string>();
    const plan = { summary: 'Rename the values the issue names.', files_to_change: ['module0.js', 'module1.js', 'module2.js'], files_to_read: [], steps: ['edit each value'], verification: 'npm test', estimated_changed_lines: 3, confidence: 0.9 };
    const result = await codeStage(
      { model, runner: createRunner('bwrap', log), workTree: root, sandboxReadOnlyPaths: [], trace, log },
      {
        issue: { number: 7, title: 'Rename the values', body: 'value0_3, value1_3 and value2_3 must be 3000 (KEEP-MARKER-ISSUE).', author: 'maintainer' },
        plan,
        repoRules: '',
        failure: '$ npm test\nexit code 1\nnot ok 1 - values are 3000 (KEEP-MARKER-FAILURE)',
        touched,
        editable: new Set(plan.files_to_change),
        scopeRequests: [],
        maxTurns: 70,
      },
    );
    expect(result).toEqual({ kind: 'done', value: { summary: 'Renamed three values.' } });
    expect(api.violations).toEqual([]);

    const usage = readFileSync(trace.file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; usage?: Record<string, number> }).filter((e) => e.type === 'model').map((e) => e.usage!);
    const input = (u: Record<string, number>) => u.input_tokens! + u.cache_read_input_tokens! + u.cache_creation_input_tokens!;
    expect(usage).toHaveLength(61);
    const [at10, at30, at60] = [input(usage[9]!), input(usage[29]!), input(usage[59]!)];
    console.log(`input tokens at step 10: ${at10}, step 30: ${at30}, step 60: ${at60} (${(at60 / at10).toFixed(2)}× step 10)`);
    expect(at60).toBeLessThanOrEqual(1.5 * at10);
    // Compaction is rare enough that most input is still read from the cache.
    const total = usage.reduce((a, u) => a + input(u), 0);
    const cached = usage.reduce((a, u) => a + u.cache_read_input_tokens!, 0);
    console.log(`cache reads: ${((100 * cached) / total).toFixed(0)}% of ${total} input tokens`);

    // The final request still holds the task, the plan, the last failure and the latest
    // content of every changed file, whatever was compacted before it.
    const last = JSON.stringify(api.requests.at(-1));
    for (const kept of ['KEEP-MARKER-ISSUE', 'Rename the values the issue names.', 'KEEP-MARKER-FAILURE', 'value0_3 = 3000; // changed at step 5', 'value1_3 = 3000; // changed at step 25', 'value2_3 = 3000; // changed at step 45']) {
      expect(last).toContain(kept);
    }
    expect(last).toContain('[output compacted');
    expect([...touched].sort()).toEqual(['module0.js', 'module1.js', 'module2.js']);
  }, 120_000);
});
