import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedBlock, ScriptedModel } from '../stand-ins/anthropic/server.js';
import {
  CALC_FAILURE_SUMMARY,
  CALC_PLAN,
  CALC_REPO,
  CALC_SCOPE,
  OWNER,
  stageOf,
  startScenario,
  use,
  type Scenario,
  leakCheck,
} from './harness.js';

let s: Scenario;
const figures: string[] = [];

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  if (figures.length)
    console.log(['stuck patterns: model calls and seconds until the escalation', ...figures].join('\n'));
  await s?.stop();
});

/** A model that scopes and plans the calc fix, then behaves as `code` (or `plan`) says. */
function modelWith(behaviour: {
  plan?: (turn: number) => ScriptedBlock[];
  code?: (turn: number, repair: boolean) => ScriptedBlock[];
}): ScriptedModel {
  return (req) => {
    const { stage, turn, repair } = stageOf(req);
    if (stage === 'scope') return { content: [use('accept_task', CALC_SCOPE)] };
    if (stage === 'summary') return { content: [use('report_failure', CALC_FAILURE_SUMMARY)] };
    if (stage === 'plan') return { content: behaviour.plan?.(turn) ?? [use('submit_plan', CALC_PLAN)] };
    if (stage === 'code' && behaviour.code) return { content: behaviour.code(turn, repair) };
    return { content: [{ type: 'text', text: 'nothing to do' }] };
  };
}

let counter = 0;

/** Runs one issue to its end and returns the escalation comment with the job's spend. */
async function runToEscalation(model: ScriptedModel, agentYml?: string) {
  const repo = `stuck-${++counter}`;
  await s.github.addRepo({
    owner: OWNER,
    repo,
    files: { ...CALC_REPO, ...(agentYml ? { '.github/agent.yml': agentYml } : {}) },
  });
  s.github.setPermission(OWNER, repo, 'maintainer', 'write');
  s.github.addIssue(OWNER, repo, {
    number: 1,
    title: 'add() is wrong for negative numbers',
    body: '`npm test` fails on "adds a negative number"',
    user: 'maintainer',
  });
  s.anthropic.setModel(model);
  await s.label({ repo, issueNumber: 1, title: 'add() is wrong for negative numbers', body: 'x' });
  const comment = await s.waitFor('the escalation', () => {
    const c = s.github.comments(OWNER, repo, 1)[0];
    return c?.body.includes('stopped without a pull request') ? c : undefined;
  });
  const traceDir = path.join(s.dataDir, 'data', 'traces');
  const traceFile = readdirSync(traceDir).find((f) => f.includes(`${repo}_issues_1`))!;
  const spend = await s.waitFor('the spend note', () => {
    const lines = readFileSync(path.join(traceDir, traceFile), 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as {
            message?: string;
            detail?: { modelCalls: number; seconds: number; costUsd: number; inputTokens: number };
          },
      );
    return lines.find((l) => l.message === 'spend')?.detail;
  });
  expect(s.github.pulls(OWNER, repo)).toEqual([]);
  expect(s.github.labels(OWNER, repo, 1)).toContain('agent:stuck');
  expect(s.github.labels(OWNER, repo, 1)).not.toContain('agent:working');
  expect(s.anthropic.violations).toEqual([]);
  expect(s.github.violations).toEqual([]);
  return { body: comment.body, spend, repo };
}

function record(pattern: string, spend: { modelCalls: number; seconds: number }) {
  figures.push(
    `  ${pattern.padEnd(16)} ${String(spend.modelCalls).padStart(3)} model calls  ${spend.seconds.toFixed(1).padStart(5)} s`,
  );
}

const readAdd = (end: number) => use('read_file', { path: 'add.js', start_line: 1, end_line: end });

describe('the system notices when the model is stuck', () => {
  it('retry limit: one tool failing five times in a row', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({
        code: (turn) => [use('edit_file', { path: 'add.js', old_text: `no such text ${turn}`, new_text: 'x' })],
      }),
    );
    expect(body).toContain('**retry-limit**');
    expect(body).toMatch(/edit_file failed 5 times in a row/);
    record('retry-limit', spend);
  });

  it('repeated action: the same failing call three times', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ plan: () => [use('read_file', { path: 'src/add.js', start_line: 1, end_line: 9 })] }),
    );
    expect(body).toContain('**repeated-action**');
    expect(body).toMatch(/read_file called 3 times with the same input/);
    expect(spend.modelCalls).toBe(1 + 3);
    record('repeated-action', spend);
  });

  it('cycle: A-B-A-B reads that change nothing', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ plan: (turn) => [turn % 2 ? use('list_files', { path: '.' }) : readAdd(9)] }),
    );
    expect(body).toContain('**cycle**');
    expect(body).toMatch(/2 calls repeated 3 times/);
    record('cycle', spend);
  });

  it('monologue: turns without a tool call', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ plan: () => [{ type: 'text', text: 'I am thinking about the best approach here.' }] }),
    );
    expect(body).toContain('**monologue**');
    expect(spend.modelCalls).toBe(1 + 3);
    record('monologue', spend);
  });

  it('same failure: two rounds that fail the same way', async () => {
    const { body, spend, repo } = await runToEscalation(
      modelWith({
        code: (turn, repair) =>
          repair
            ? [
                [
                  use('edit_file', {
                    path: 'add.js',
                    old_text: 'function add(a, b) {',
                    new_text: '// adds\nfunction add(a, b) {',
                  }),
                ],
                [use('finish_change', { summary: 'b' })],
              ][Math.min(turn, 1)]!
            : [
                [use('edit_file', { path: 'add.js', old_text: '  return a + b;', new_text: '  return a + b + 1;' })],
                [use('finish_change', { summary: 'a' })],
              ][Math.min(turn, 1)]!,
      }),
    );
    expect(body).toContain('**same-failure**');
    expect(body).toMatch(/rounds 1 and 2 failed the same way/);
    expect(body).toContain('**Failing command:** `npm test`');
    // Without push_wip_branch nothing is pushed: a branch would run the repository's push CI.
    expect(body).not.toContain('Work in progress');
    expect(await s.github.branches(OWNER, repo)).toEqual(['main']);
    record('same-failure', spend);
  });

  it('no progress: a round that leaves the diff as it was', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({
        code: (turn, repair) =>
          repair
            ? [
                [use('run_command', { command: 'npm test 2>&1 | tail -3', timeout_seconds: 60 })],
                [use('finish_change', { summary: 'b' })],
              ][Math.min(turn, 1)]!
            : [
                [use('edit_file', { path: 'add.js', old_text: '  return a + b;', new_text: '  return a + b + 1;' })],
                [use('finish_change', { summary: 'a' })],
              ][Math.min(turn, 1)]!,
      }),
    );
    expect(body).toContain('**no-progress**');
    expect(body).toMatch(/round 2 left the change exactly as round 1/);
    record('no-progress', spend);
  });

  it('token budget', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ plan: (turn) => [readAdd(10 + turn)] }),
      'budgets:\n  max_input_tokens: 3000\n',
    );
    expect(body).toContain('**budget-tokens**');
    expect(body).toMatch(/input tokens used of a budget of 3000/);
    record('budget-tokens', spend);
  });

  it('cost budget', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ plan: (turn) => [readAdd(10 + turn)] }),
      'budgets:\n  max_cost_usd: 0.01\n',
    );
    expect(body).toContain('**budget-cost**');
    expect(body).toMatch(/spent of a budget of \$0.01/);
    // Checked before each call: at most one call past the line.
    expect(spend.costUsd).toBeLessThan(0.01 + 0.01);
    record('budget-cost', spend);
  });

  it("daily budget: each call is added to the repository's day as it is paid, and checked before the next", async () => {
    const { body, spend, repo } = await runToEscalation(
      modelWith({ plan: (turn) => [readAdd(10 + turn)] }),
      'budgets:\n  daily_cost_usd: 0.000001\n',
    );
    expect(body).toContain('**budget-cost**');
    expect(body).toMatch(/this repository has spent \$0\.\d{4} today, its daily budget is \$0\.000001/);
    // One call paid, then the check before the next one stopped the job.
    expect(spend.modelCalls).toBe(1);
    const redis = new Redis(s.redis.url, { maxRetriesPerRequest: null });
    try {
      const day = Number(
        await redis.get(`issue-agent:spend:${OWNER}/${repo}:${new Date().toISOString().slice(0, 10)}`.toLowerCase()),
      );
      expect(day).toBeCloseTo(spend.costUsd, 10);
      expect(day).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
    record('daily budget', spend);
  });

  it('a model without a price: refused before any call, never costed at $0', async () => {
    const before = s.anthropic.requests.length;
    const { body } = await runToEscalation(modelWith({}), 'models:\n  mid: claude-unpriced-1\n');
    expect(body).toContain('**unpriced-model**');
    expect(body).toContain('no price is known for claude-unpriced-1 (mid, from .github/agent.yml)');
    expect(s.anthropic.requests.length).toBe(before);
  });

  it('wall-clock timeout', async () => {
    const { body, spend } = await runToEscalation(
      modelWith({ code: (turn) => [use('run_command', { command: `sleep 1.${turn}`, timeout_seconds: 10 })] }),
      'budgets:\n  max_minutes: 0.1\n',
    );
    expect(body).toContain('**timeout**');
    expect(body).toMatch(/minutes elapsed of a limit of 0.1/);
    record('timeout', spend);
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'stuck')).toEqual([]);
  });
});
