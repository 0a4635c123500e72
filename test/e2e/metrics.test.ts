import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus, type Exposition } from '../helpers/prometheus.js';
import { freePort } from '../helpers/redis.js';
import { calcModel, CALC_REPO, leakCheck, OWNER, startScenario, WEBHOOK_SECRET, type Scenario } from './harness.js';

// One labeled issue runs to a PR in the default process (web + worker), then /metrics is
// scraped and every family is checked for its labels and values; /readyz says who consumes.

let s: Scenario;

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  if (process.env.E2E_LOGS) console.log(s?.logs().slice(-6000));
  await s?.stop();
});

async function scrape(url = s.appUrl): Promise<Exposition> {
  const r = await fetch(`${url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(await r.text());
}

async function readyz(url = s.appUrl): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${url}/readyz`);
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

describe('metrics after an end-to-end run', () => {
  it("answers /readyz: Redis up and this process's worker consuming", async () => {
    const ready = await s.waitFor(
      'the worker to consume',
      async () => {
        const r = await readyz();
        // The worker is counted once its connection to Redis has its name.
        return r.status === 200 && r.body.workers === 1 ? r : undefined;
      },
      30_000,
    );
    expect(ready.body).toEqual({ ready: true, redis: true, worker: 'consuming', workers: 1 });
  });

  it('counts the job, its stages, model tokens and cost, tool calls, rounds, webhooks and the queue', async () => {
    const toolErrors: string[] = [];
    s.anthropic.setModel(calcModel({ toolErrors }));
    await s.github.addRepo({ owner: OWNER, repo: 'calc', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc', 'maintainer', 'maintain');
    const title = 'add() returns the wrong sum when one number is negative';
    s.github.addIssue(OWNER, 'calc', {
      number: 7,
      title,
      body: '`npm test` fails on "adds a negative number".',
      user: 'maintainer',
    });
    // A forged delivery is answered 400 and timed as such.
    const forged = await fetch(`${s.appUrl}/api/github/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'issues',
        'x-github-delivery': 'forged',
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
      body: JSON.stringify({ action: 'labeled' }),
    });
    expect(forged.status).toBe(400);
    expect((await s.label({ repo: 'calc', issueNumber: 7, title, body: 'x' })).status).toBe(200);
    await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'calc')[0]);
    // The job counts as finished once the pipeline has returned, and leaves the active state after.
    const x = await s.waitFor('the job counted and no longer active', async () => {
      const m = await scrape();
      return m.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'pr' }) === 1 &&
        m.value('issue_agent_queue_jobs', { state: 'active' }) === 0
        ? m
        : undefined;
    });
    expect(toolErrors).toEqual([]);

    // Jobs by outcome: the PR, and every other outcome present at 0.
    for (const outcome of ['revised', 'stuck', 'needs_info', 'checkpoint', 'stopped', 'invalid_config', 'failed']) {
      expect(x.value('issue_agent_jobs_total', { kind: 'issue', outcome }), outcome).toBe(0);
    }
    expect(x.value('issue_agent_job_duration_seconds_count', { kind: 'issue', outcome: 'pr' })).toBe(1);
    expect(x.value('issue_agent_job_duration_seconds_sum', { kind: 'issue', outcome: 'pr' })).toBeGreaterThan(0);

    // Stage durations: one run of each stage, with its result.
    for (const [stage, result] of [
      ['scope', 'done'],
      ['baseline', 'failed'],
      ['plan', 'done'],
      ['code', 'done'],
      ['validate', 'passed'],
    ] as const) {
      expect(x.value('issue_agent_stage_duration_seconds_count', { stage, result }), `${stage} ${result}`).toBe(1);
      expect(
        x.value('issue_agent_stage_duration_seconds_sum', { stage, result }),
        `${stage} ${result}`,
      ).toBeGreaterThan(0);
      expect(x.value('issue_agent_stage_duration_seconds_bucket', { stage, result, le: '+Inf' })).toBe(1);
    }
    expect(x.types.get('issue_agent_stage_duration_seconds')).toBe('histogram');

    // Model tokens and cost by tier and model: scope on fast, plan on frontier, code on mid.
    const tiers = { fast: 'claude-haiku-5-5', frontier: 'claude-opus-5-5', mid: 'claude-sonnet-5-5' };
    for (const [tier, model] of Object.entries(tiers)) {
      // Each type has its series; with prompt caching most input is a cache write or read.
      for (const type of ['input', 'output', 'cache_read', 'cache_write'])
        expect(
          x.value('issue_agent_model_tokens_total', { tier, model, type }),
          `${tier} ${type}`,
        ).toBeGreaterThanOrEqual(0);
      expect(
        x.sum('issue_agent_model_tokens_total', { tier, model }) -
          x.sum('issue_agent_model_tokens_total', { tier, model, type: 'output' }),
        tier,
      ).toBeGreaterThan(0);
      expect(x.value('issue_agent_model_tokens_total', { tier, model, type: 'output' }), tier).toBeGreaterThan(0);
      expect(x.value('issue_agent_model_cost_usd_total', { tier, model }), tier).toBeGreaterThan(0);
    }
    expect(new Set(x.find('issue_agent_model_tokens_total').map((m) => m.labels.tier))).toEqual(
      new Set(Object.keys(tiers)),
    );
    // 1 scope call, 3 plan calls, 4 code calls: the 8 the PR body counts.
    expect(x.value('issue_agent_model_call_duration_seconds_count', { tier: 'fast', model: tiers.fast })).toBe(1);
    expect(x.value('issue_agent_model_call_duration_seconds_count', { tier: 'frontier', model: tiers.frontier })).toBe(
      3,
    );
    expect(x.value('issue_agent_model_call_duration_seconds_count', { tier: 'mid', model: tiers.mid })).toBe(4);
    expect(s.anthropic.requests).toHaveLength(8);

    // Tool calls by tool and outcome.
    expect(x.value('issue_agent_tool_calls_total', { tool: 'read_file', outcome: 'ok' })).toBe(2);
    for (const tool of ['accept_task', 'search', 'submit_plan', 'run_command', 'edit_file', 'finish_change']) {
      expect(x.value('issue_agent_tool_calls_total', { tool, outcome: 'ok' }), tool).toBe(1);
    }
    expect(x.find('issue_agent_tool_calls_total').filter((m) => m.labels.outcome !== 'ok')).toEqual([]);

    // Validation rounds: green in the first.
    expect(x.value('issue_agent_validation_rounds_total', { result: 'passed' })).toBe(1);
    expect(x.value('issue_agent_validation_rounds_total', { result: 'failed' })).toBe(0);
    expect(x.value('issue_agent_validation_rounds_to_pass_count')).toBe(1);
    expect(x.value('issue_agent_validation_rounds_to_pass_sum')).toBe(1);

    // Webhook latency: the label event answered 200, the forged one 400.
    expect(
      x.value('issue_agent_webhook_duration_seconds_count', { event: 'issues', status: '200' }),
    ).toBeGreaterThanOrEqual(1);
    expect(x.value('issue_agent_webhook_duration_seconds_sum', { event: 'issues', status: '200' })).toBeGreaterThan(0);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'issues', status: '400' })).toBe(1);

    // Queue depth and workers, read from Redis at the scrape.
    for (const state of ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'paused']) {
      expect(x.value('issue_agent_queue_jobs', { state }), state).toBe(0);
    }
    expect(x.value('issue_agent_queue_workers')).toBe(1);

    // The inbox: the label's work was done once, after the answer; nothing waits, runs or died.
    expect(x.value('issue_agent_inbox_wait_seconds_count', { outcome: 'done' })).toBe(1);
    for (const state of ['waiting', 'handling', 'dead'])
      expect(x.value('issue_agent_inbox_items', { state }), state).toBe(0);

    // The default process metrics.
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_heap_size_used_bytes',
    ]) {
      expect(x.find(name).length, name).toBeGreaterThan(0);
    }

    // Labels stay a small closed set: nothing from a payload, a path or a secret.
    const text = await (await fetch(`${s.appUrl}/metrics`)).text();
    for (const secret of [WEBHOOK_SECRET, 'sk-ant-e2e-key', 'ghp_parentsecret', s.dataDir, ...s.github.issuedTokens])
      expect(text).not.toContain(secret);
  });

  it('a worker-only process serves its own /metrics and /readyz on METRICS_PORT; the web counts both workers', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    s.spawnExtra('worker', { METRICS_PORT: String(port) });
    const ready = await s.waitFor(
      'the worker-only process to consume',
      async () => {
        const r = await readyz(url).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      },
      60_000,
    );
    expect(ready.body).toMatchObject({ ready: true, redis: true, worker: 'consuming' });
    const own = await scrape(url);
    // Its own counters (no job ran there) and process metrics; the queue gauges are the web's.
    expect(own.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'pr' })).toBe(0);
    expect(own.find('process_cpu_user_seconds_total').length).toBeGreaterThan(0);
    expect(own.find('issue_agent_queue_jobs')).toEqual([]);
    const web = await s.waitFor(
      'the web to see two workers',
      async () => ((await readyz()).body.workers === 2 ? true : undefined),
      30_000,
    );
    expect(web).toBe(true);
    expect((await scrape()).value('issue_agent_queue_workers')).toBe(2);
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'metrics')).toEqual([]);
  });
});
