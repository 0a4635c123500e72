import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, toolResultsOf, type AnthropicStandIn } from '../../test/stand-ins/anthropic/server.js';
import type { Runner } from '../sandbox/runner.js';
import { Spend } from './budget.js';
import { runLoop } from './loop.js';
import { ModelClient } from './model.js';
import { PLAN_TOOLS } from '../stages/plan.js';
import type { ToolContext } from './tools/tool.js';

const log = pino({ level: 'silent' });
const runner: Runner = {
  backend: 'unsandboxed',
  run: async () => {
    throw new Error('not used');
  },
};
let api: AnthropicStandIn;
let ctx: ToolContext;
let spend: Spend;

beforeAll(async () => {
  api = await startAnthropicStandIn();
});
afterAll(() => api.close());
beforeEach(() => {
  api.requests.length = 0;
  api.violations.length = 0;
  const root = mkdtempSync(path.join(tmpdir(), 'ia-loop-'));
  writeFileSync(path.join(root, 'add.js'), 'module.exports = (a, b) => a - b;\n');
  ctx = { workTree: root, runner, sandboxReadOnlyPaths: [], log, touched: new Set() };
  spend = new Spend();
});

function model(): ModelClient {
  return new ModelClient({
    apiKey: 'sk-ant-test',
    baseURL: api.url,
    models: { frontier: 'claude-opus-5-5', mid: 'claude-sonnet-5-5', fast: 'claude-haiku-5-5' },
    log,
    spend,
    maxRetries: 0,
  });
}

const plan = {
  summary: 'add subtracts',
  files_to_change: ['add.js'],
  files_to_read: [],
  steps: ['use +'],
  verification: 'npm test',
  estimated_changed_lines: 1,
  confidence: 0.9,
};

describe('the agent loop', () => {
  it('runs tools until the terminal tool, sending a valid conversation with cached prefix', async () => {
    api.setModel((req, { callIndex }) => {
      if (callIndex === 0)
        return {
          content: [
            { type: 'text', text: 'Looking.' },
            { type: 'tool_use', name: 'read_file', input: { path: 'add.js', start_line: 1, end_line: 5 } },
          ],
        };
      if (callIndex === 1) {
        expect(toolResultsOf(req)[0]?.content).toContain('1│module.exports');
        return { content: [{ type: 'tool_use', name: 'submit_plan', input: { ...plan, confidence: 7 } }] };
      }
      expect(JSON.stringify(toolResultsOf(req))).toContain('confidence');
      return { content: [{ type: 'tool_use', name: 'submit_plan', input: plan }] };
    });
    const r = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 10,
      log,
    });
    expect(r).toEqual({ kind: 'done', tool: 'submit_plan', input: plan });
    expect(api.violations).toEqual([]);
    expect(api.requests).toHaveLength(3);
    expect(api.requests[2]!.model).toBe('claude-opus-5-5');
    // Prefix caching: the later calls read what the first wrote.
    expect(spend.cacheReadTokens).toBeGreaterThan(0);
    expect(spend.calls).toBe(3);
    expect(spend.costUsd).toBeGreaterThan(0);
  });

  it('stops a model that repeats the same failing call', async () => {
    api.setModel(() => ({
      content: [{ type: 'tool_use', name: 'read_file', input: { path: 'missing.js', start_line: 1, end_line: 5 } }],
    }));
    const r = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 10,
      log,
    });
    expect(r).toMatchObject({
      kind: 'stuck',
      reason: 'repeated-action',
      evidence: expect.stringContaining('not_found'),
    });
    expect(api.requests).toHaveLength(3);
    expect(api.violations).toEqual([]);
  });

  it('stops a model that talks without acting, and one that runs out of turns', async () => {
    api.setModel(() => ({ content: [{ type: 'text', text: 'Let me think about it some more.' }] }));
    const talk = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 10,
      log,
    });
    expect(talk).toMatchObject({ kind: 'stuck', reason: 'monologue' });
    expect(api.violations).toEqual([]);
    api.setModel((_req, { callIndex }) => ({
      content: [
        { type: 'tool_use', name: 'read_file', input: { path: 'add.js', start_line: 1, end_line: 10 + callIndex } },
      ],
    }));
    const busy = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 4,
      log,
    });
    expect(busy).toMatchObject({ kind: 'stuck', reason: 'budget-turns' });
  });

  it('stops an A-B-A-B cycle that changes nothing', async () => {
    api.setModel((_req, { callIndex }) => ({
      content: [
        callIndex % 2
          ? { type: 'tool_use', name: 'list_files', input: { path: '.' } }
          : { type: 'tool_use', name: 'read_file', input: { path: 'add.js', start_line: 1, end_line: 5 } },
      ],
    }));
    const r = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 20,
      log,
    });
    expect(r).toMatchObject({
      kind: 'stuck',
      reason: 'cycle',
      evidence: expect.stringContaining('2 calls repeated 3 times'),
    });
    expect(api.requests).toHaveLength(6);
  });

  it('answers every tool_use of a turn, even after the terminal tool', async () => {
    api.setModel(() => ({
      content: [
        { type: 'tool_use', name: 'submit_plan', input: plan },
        { type: 'tool_use', name: 'list_files', input: { path: '.' } },
      ],
    }));
    const r = await runLoop({
      stage: 'plan',
      tier: 'frontier',
      model: model(),
      system: 'rules',
      task: 'fix it',
      tools: PLAN_TOOLS,
      ctx,
      maxTurns: 3,
      log,
    });
    expect(r.kind).toBe('done');
    expect(api.violations).toEqual([]);
  });
});
