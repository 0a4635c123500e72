import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { startAnthropicStandIn, type AnthropicStandIn, type ScriptedBlock } from '../stand-ins/anthropic/server.js';
import { Spend } from '../../src/agent/budget.js';
import { ModelClient } from '../../src/agent/model.js';
import { Trace } from '../../src/agent/trace.js';
import { createRunner } from '../../src/sandbox/create-runner.js';
import { codeStage } from '../../src/stages/code.js';
import type { StageResult } from '../../src/stages/types.js';

const use = (name: string, input: unknown): ScriptedBlock => ({ type: 'tool_use', name, input });

/** The 61-step script: reads of many files, noisy commands, and three edits. */
export function longStageStep(n: number): ScriptedBlock[] {
  if (n === 60)
    return [
      { type: 'text', text: 'Before finishing, let me recall what I changed and what failed.' },
      use('finish_change', { summary: 'Renamed three values.' }),
    ];
  if (n % 20 === 5) {
    const f = (n / 20) | 0;
    return [
      use('edit_file', {
        path: `module${f}.js`,
        old_text: `export const value${f}_3 = 3;`,
        new_text: `export const value${f}_3 = 3000; // changed at step ${n}`,
      }),
    ];
  }
  if (n % 3 === 0)
    return [
      use('run_command', {
        command: `for i in $(seq 1 4000); do echo "noise line $i from step ${n}: compiling module $((i % 40))"; done`,
        timeout_seconds: 30,
      }),
    ];
  return [use('read_file', { path: `module${n % 40}.js`, start_line: 1, end_line: 150 })];
}

export interface LongStageRun {
  result: StageResult<{ summary: string }>;
  /** Input tokens (uncached + cache read + cache write) of each model call, in order. */
  inputPerStep: number[];
  cacheReadShare: number;
  lastRequest: string;
  violations: string[];
  touched: string[];
}

/** Runs a 61-step coding stage (real sandbox, real tools) against the Messages API stand-in. */
export async function runLongStage(opts: { compaction: boolean; api?: AnthropicStandIn }): Promise<LongStageRun> {
  const api = opts.api ?? (await startAnthropicStandIn());
  const root = mkdtempSync(path.join(tmpdir(), 'ia-long-'));
  const log = pino({ level: 'silent' });
  try {
    for (let f = 0; f < 40; f++) {
      writeFileSync(
        path.join(root, `module${f}.js`),
        `${Array.from({ length: 150 }, (_, i) => `export const value${f}_${i} = ${i}; // line ${i + 1} of module ${f}`).join('\n')}\n`,
      );
    }
    execFileSync('git', ['init', '-q', root]);
    const spend = new Spend();
    const trace = new Trace(root, 'long-stage');
    const model = new ModelClient({
      apiKey: 'sk-ant-test',
      baseURL: api.url,
      models: { frontier: 'claude-opus-5-5', mid: 'claude-sonnet-5-5', fast: 'claude-haiku-5-5' },
      log,
      spend,
      trace,
      maxRetries: 0,
    });
    api.setModel((_req, { callIndex }) => ({ content: longStageStep(callIndex) }));
    const touched = new Set<string>();
    const plan = {
      summary: 'Rename the values the issue names.',
      files_to_change: ['module0.js', 'module1.js', 'module2.js'],
      files_to_read: [],
      steps: ['edit each value'],
      verification: 'npm test',
      estimated_changed_lines: 3,
      confidence: 0.9,
    };
    const result = await codeStage(
      { model, runner: createRunner('bwrap', log), workTree: root, sandboxReadOnlyPaths: [], trace, log },
      {
        issue: {
          number: 7,
          title: 'Rename the values',
          body: 'value0_3, value1_3 and value2_3 must be 3000 (KEEP-MARKER-ISSUE).',
          author: 'maintainer',
        },
        plan,
        repoRules: '',
        failure: '$ npm test\nexit code 1\nnot ok 1 - values are 3000 (KEEP-MARKER-FAILURE)',
        touched,
        editable: new Set(plan.files_to_change),
        scopeRequests: [],
        maxTurns: 70,
        ...(opts.compaction ? {} : { compaction: { thresholdTokens: Number.POSITIVE_INFINITY } }),
      },
    );
    const usage = readFileSync(trace.file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; usage?: Record<string, number> })
      .filter((e) => e.type === 'model')
      .map((e) => e.usage!);
    const input = (u: Record<string, number>) =>
      u.input_tokens! + u.cache_read_input_tokens! + u.cache_creation_input_tokens!;
    const total = usage.reduce((a, u) => a + input(u), 0);
    return {
      result,
      inputPerStep: usage.map(input),
      cacheReadShare: usage.reduce((a, u) => a + u.cache_read_input_tokens!, 0) / total,
      lastRequest: JSON.stringify(api.requests.at(-1)),
      violations: api.violations.slice(),
      touched: [...touched].sort(),
    };
  } finally {
    if (!opts.api) await api.close();
    rmSync(root, { recursive: true, force: true });
  }
}
