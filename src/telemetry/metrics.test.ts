import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheus } from '../../test/helpers/prometheus.js';
import { startTestRedis, type TestRedis } from '../../test/helpers/redis.js';
import { Trace, type TraceEvent } from '../agent/trace.js';
import { connectedWorkers, JOB_OUTCOMES, Metrics, type QueueSource } from './metrics.js';
import { bullConnection } from '../queue/redis.js';
import { RECORD_FILE } from '../sandbox/environment/cache.js';
import { Environments } from '../sandbox/environment/environments.js';

const scrape = async (m: Metrics) => parsePrometheus((await m.text()).body);

const stageEnd = (stage: string, result: string | undefined, durationMs: number): TraceEvent => ({
  type: 'stage',
  stage,
  phase: 'end',
  result,
  durationMs,
});

describe('Metrics from trace events', () => {
  it('times each stage by its result, and ignores stage starts', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const job = {};
    m.observeTrace({ type: 'stage', stage: 'scope', phase: 'start' }, job);
    m.observeTrace(stageEnd('scope', 'done', 1_500), job);
    m.observeTrace(stageEnd('plan', 'done', 40_000), job);
    m.observeTrace(stageEnd('code', 'stuck', 200), job);
    m.observeTrace(stageEnd('summary', undefined, 300), job);
    const x = await scrape(m);
    expect(x.value('issue_agent_stage_duration_seconds_count', { stage: 'scope', result: 'done' })).toBe(1);
    expect(x.value('issue_agent_stage_duration_seconds_sum', { stage: 'scope', result: 'done' })).toBe(1.5);
    expect(x.value('issue_agent_stage_duration_seconds_bucket', { stage: 'scope', result: 'done', le: '1' })).toBe(0);
    expect(x.value('issue_agent_stage_duration_seconds_bucket', { stage: 'scope', result: 'done', le: '2.5' })).toBe(1);
    expect(x.value('issue_agent_stage_duration_seconds_sum', { stage: 'plan', result: 'done' })).toBe(40);
    expect(x.value('issue_agent_stage_duration_seconds_count', { stage: 'code', result: 'stuck' })).toBe(1);
    // A stage without a result (the failure summary answers text) counts as done.
    expect(x.value('issue_agent_stage_duration_seconds_count', { stage: 'summary', result: 'done' })).toBe(1);
    expect(x.sum('issue_agent_stage_duration_seconds_count')).toBe(4);
    expect(x.types.get('issue_agent_stage_duration_seconds')).toBe('histogram');
  });

  it('counts validation rounds by result, and the rounds each job needed until it passed', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const [slow, fast, never] = [{}, {}, {}];
    for (const [job, result] of [
      [slow, 'failed'],
      [fast, 'passed'],
      [never, 'failed'],
      [slow, 'failed'],
      [never, 'failed'],
      [slow, 'passed'],
    ] as const) {
      m.observeTrace(stageEnd('validate', result, 1_000), job);
    }
    // The baseline run before the change is not a round.
    m.observeTrace(stageEnd('baseline', 'failed', 1_000), fast);
    const x = await scrape(m);
    expect(x.value('issue_agent_validation_rounds_total', { result: 'passed' })).toBe(2);
    expect(x.value('issue_agent_validation_rounds_total', { result: 'failed' })).toBe(4);
    expect(x.value('issue_agent_validation_rounds_to_pass_count')).toBe(2);
    expect(x.value('issue_agent_validation_rounds_to_pass_sum')).toBe(1 + 3);
    expect(x.value('issue_agent_validation_rounds_to_pass_bucket', { le: '1' })).toBe(1);
    expect(x.value('issue_agent_validation_rounds_to_pass_bucket', { le: '3' })).toBe(2);
    expect(x.value('issue_agent_stage_duration_seconds_count', { stage: 'baseline', result: 'failed' })).toBe(1);
  });

  it('adds up model tokens by tier, model and type, the cost, and the calls', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const call = (tier: string, model: string, usage: Record<string, number>, costUsd: number): TraceEvent => ({
      type: 'model',
      stage: 'x',
      tier,
      model,
      usage,
      costUsd,
      durationMs: 2_000,
      stopReason: 'tool_use',
    });
    m.observeTrace(
      call(
        'fast',
        'claude-haiku-5-5',
        { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 0, cache_creation_input_tokens: 500 },
        0.01,
      ),
      {},
    );
    m.observeTrace(
      call(
        'fast',
        'claude-haiku-5-5',
        { input_tokens: 50, output_tokens: 10, cache_read_input_tokens: 500, cache_creation_input_tokens: 0 },
        0.005,
      ),
      {},
    );
    m.observeTrace(call('frontier', 'claude-opus-5-5', { input_tokens: 1_000, output_tokens: 300 }, 0.25), {});
    const x = await scrape(m);
    const fast = { tier: 'fast', model: 'claude-haiku-5-5' };
    expect(x.value('issue_agent_model_tokens_total', { ...fast, type: 'input' })).toBe(150);
    expect(x.value('issue_agent_model_tokens_total', { ...fast, type: 'output' })).toBe(30);
    expect(x.value('issue_agent_model_tokens_total', { ...fast, type: 'cache_read' })).toBe(500);
    expect(x.value('issue_agent_model_tokens_total', { ...fast, type: 'cache_write' })).toBe(500);
    expect(
      x.value('issue_agent_model_tokens_total', { tier: 'frontier', model: 'claude-opus-5-5', type: 'output' }),
    ).toBe(300);
    expect(x.value('issue_agent_model_cost_usd_total', fast)).toBeCloseTo(0.015, 10);
    expect(x.value('issue_agent_model_cost_usd_total', { tier: 'frontier', model: 'claude-opus-5-5' })).toBe(0.25);
    expect(x.value('issue_agent_model_call_duration_seconds_count', fast)).toBe(2);
    // A call's usage without cache fields makes no cache series.
    expect(x.find('issue_agent_model_tokens_total', { tier: 'frontier', type: 'cache_read' })).toEqual([]);
    expect(x.value('issue_agent_model_tokens_total', { ...fast, type: 'cache_read' })).toBe(500);
  });

  it('counts tool calls by tool and outcome, and never makes a series of a tool name the model made up', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const tool = (name: string, ok: boolean, errorCode?: string): TraceEvent => ({
      type: 'tool',
      stage: 'code',
      tool: name,
      ok,
      errorCode,
      durationMs: 3,
      input: {},
    });
    m.observeTrace(tool('read_file', true), {});
    m.observeTrace(tool('read_file', true), {});
    m.observeTrace(tool('read_file', false, 'not_found'), {});
    m.observeTrace(tool('edit_file', false, 'old_text_not_found'), {});
    m.observeTrace(tool('rm -rf /; DROP TABLE', false, 'unknown_tool'), {});
    const x = await scrape(m);
    expect(x.value('issue_agent_tool_calls_total', { tool: 'read_file', outcome: 'ok' })).toBe(2);
    expect(x.value('issue_agent_tool_calls_total', { tool: 'read_file', outcome: 'not_found' })).toBe(1);
    expect(x.value('issue_agent_tool_calls_total', { tool: 'edit_file', outcome: 'old_text_not_found' })).toBe(1);
    expect(x.value('issue_agent_tool_calls_total', { tool: 'unknown', outcome: 'unknown_tool' })).toBe(1);
    expect(
      x
        .find('issue_agent_tool_calls_total')
        .map((s) => s.labels.tool)
        .sort(),
    ).toEqual(['edit_file', 'read_file', 'read_file', 'unknown']);
  });

  it('ignores notes and commands', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.observeTrace({ type: 'note', message: 'spend' }, {});
    m.observeTrace(
      {
        type: 'command',
        stage: 'validate',
        name: 'test',
        command: 'npm test',
        exitCode: 0,
        timedOut: false,
        durationMs: 9,
        output: '',
      },
      {},
    );
    const x = await scrape(m);
    expect(
      x.sum('issue_agent_stage_duration_seconds_count') +
        x.sum('issue_agent_tool_calls_total') +
        x.sum('issue_agent_model_tokens_total'),
    ).toBe(0);
  });
});

describe('Metrics of jobs and webhooks', () => {
  it('counts jobs by kind and a closed set of outcomes, each known series starting at 0', async () => {
    const m = new Metrics({ defaultMetrics: false });
    let x = await scrape(m);
    for (const kind of ['issue', 'revise'])
      for (const outcome of JOB_OUTCOMES) expect(x.value('issue_agent_jobs_total', { kind, outcome })).toBe(0);
    m.jobFinished('issue', 'pr', 95);
    m.jobFinished('issue', 'needs-info', 4);
    m.jobFinished('revise', 'revised', 50);
    m.jobFinished('issue', 'invalid-config', 1);
    m.jobFinished('issue', 'failed');
    x = await scrape(m);
    expect(x.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'pr' })).toBe(1);
    expect(x.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'needs_info' })).toBe(1);
    expect(x.value('issue_agent_jobs_total', { kind: 'revise', outcome: 'revised' })).toBe(1);
    expect(x.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'invalid_config' })).toBe(1);
    expect(x.value('issue_agent_jobs_total', { kind: 'issue', outcome: 'failed' })).toBe(1);
    expect(new Set(x.find('issue_agent_jobs_total').map((s) => s.labels.outcome))).toEqual(new Set(JOB_OUTCOMES));
    expect(x.value('issue_agent_job_duration_seconds_sum', { kind: 'issue', outcome: 'pr' })).toBe(95);
    // A failure found in Redis (a job that stalled too often) has no duration to observe.
    expect(x.find('issue_agent_job_duration_seconds_count', { outcome: 'failed' })).toEqual([]);
  });

  it('times webhooks by event and status, naming an event it does not handle `other`', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.webhookHandled('issues', 200, 0.012);
    m.webhookHandled('issues', 400, 0.001);
    m.webhookHandled('made_up_event_1234', 200, 0.002);
    m.webhookHandled(undefined, 400, 0.001);
    const x = await scrape(m);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'issues', status: '200' })).toBe(1);
    expect(x.value('issue_agent_webhook_duration_seconds_sum', { event: 'issues', status: '200' })).toBe(0.012);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'issues', status: '400' })).toBe(1);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'other', status: '200' })).toBe(1);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'other', status: '400' })).toBe(1);
  });

  it("reads the environment caches' entries and bytes at each scrape, from the caches themselves", async () => {
    const data = mkdtempSync(path.join(tmpdir(), 'metrics-env-'));
    try {
      const envs = Environments.open({ dataDir: data, access: { insecureHosts: [] }, log: pino({ level: 'silent' }) });
      const m = new Metrics({ defaultMetrics: false });
      m.watchEnvironments(envs);
      expect((await scrape(m)).value('issue_agent_environment_cache_bytes', { kind: 'setups' })).toBe(0);
      const entry = path.join(data, 'environments', 'setups', 'k1');
      mkdirSync(entry, { recursive: true });
      writeFileSync(path.join(entry, RECORD_FILE.setups), JSON.stringify({ bytes: 12345 }));
      const x = await scrape(m);
      expect(x.value('issue_agent_environment_cache_bytes', { kind: 'setups' })).toBe(12345);
      expect(x.value('issue_agent_environment_cache_entries', { kind: 'setups' })).toBe(1);
      expect(x.value('issue_agent_environment_cache_entries', { kind: 'images' })).toBe(0);
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });

  it('includes the default process metrics unless asked not to', async () => {
    const x = await scrape(new Metrics());
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_resident_memory_bytes',
      'nodejs_heap_size_used_bytes',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(x.find(name).length, name).toBeGreaterThan(0);
    }
    expect((await scrape(new Metrics({ defaultMetrics: false }))).find('process_cpu_user_seconds_total')).toEqual([]);
  });

  it('answers the Prometheus text content type', async () => {
    expect((await new Metrics({ defaultMetrics: false }).text()).contentType).toMatch(/^text\/plain; version=0\.0\.4/);
  });
});

describe('queue gauges', () => {
  const source = (
    counts: () => Promise<Record<string, number>>,
    workers: () => Promise<Array<Record<string, string>>>,
  ): QueueSource => ({ getJobCounts: counts, getWorkers: workers });

  it('read the queue at each scrape', async () => {
    const m = new Metrics({ defaultMetrics: false });
    let waiting = 3;
    m.watchQueue(
      source(
        async () => ({ waiting, active: 1, delayed: 0, prioritized: 0, 'waiting-children': 0, paused: 0 }),
        async () => [
          { id: '1', name: 'x' },
          { id: '2', name: 'x' },
        ],
      ),
    );
    let x = await scrape(m);
    expect(x.value('issue_agent_queue_jobs', { state: 'waiting' })).toBe(3);
    expect(x.value('issue_agent_queue_jobs', { state: 'active' })).toBe(1);
    expect(x.value('issue_agent_queue_jobs', { state: 'delayed' })).toBe(0);
    expect(x.value('issue_agent_queue_workers')).toBe(2);
    waiting = 0;
    x = await scrape(m);
    expect(x.value('issue_agent_queue_jobs', { state: 'waiting' })).toBe(0);
  });

  it('leave the gauges out, without holding the scrape, when Redis does not answer', async () => {
    const m = new Metrics({ defaultMetrics: false });
    const never = () => new Promise<never>(() => {});
    m.watchQueue(source(never, never), 50);
    const x = await scrape(m);
    expect(x.find('issue_agent_queue_jobs')).toEqual([]);
    expect(x.find('issue_agent_queue_workers')).toEqual([]);
    expect(x.types.get('issue_agent_queue_jobs')).toBe('gauge');
  });

  it('leave the worker count out where Redis does not list clients', async () => {
    // What BullMQ answers when CLIENT LIST is refused (some managed Redis services).
    expect(
      await connectedWorkers({ getWorkers: async () => [{ name: 'GCP does not support client list' }] }),
    ).toBeUndefined();
    expect(await connectedWorkers({ getWorkers: async () => Promise.reject(new Error('down')) })).toBeUndefined();
    expect(await connectedWorkers({ getWorkers: async () => [] })).toBe(0);
  });

  describe('on a real Redis', () => {
    let redis: TestRedis;
    beforeAll(async () => {
      redis = await startTestRedis();
    });
    afterAll(async () => {
      await redis?.stop();
    });

    it('show the jobs waiting and the workers connected', async () => {
      const queue = new Queue('agent-run', { connection: bullConnection(redis.url), prefix: 'metrics-test' });
      const worker = new Worker('agent-run', async () => undefined, {
        connection: bullConnection(redis.url),
        prefix: 'metrics-test',
        autorun: false,
      });
      try {
        await worker.waitUntilReady();
        await queue.add('issue', { n: 1 });
        await queue.add('issue', { n: 2 }, { delay: 60_000 });
        const m = new Metrics({ defaultMetrics: false });
        m.watchQueue(queue);
        const x = await scrape(m);
        expect(x.value('issue_agent_queue_jobs', { state: 'waiting' })).toBe(1);
        expect(x.value('issue_agent_queue_jobs', { state: 'delayed' })).toBe(1);
        expect(x.value('issue_agent_queue_jobs', { state: 'active' })).toBe(0);
        expect(x.value('issue_agent_queue_workers')).toBe(1);
      } finally {
        await worker.close();
        await queue.close();
      }
    });
  });
});

describe('Trace.listen', () => {
  it('hands every event a trace writes to the listener, until it stops listening; a failing listener breaks nothing', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ia-metrics-trace-'));
    try {
      const trace = new Trace(dir, 'octo/demo#1');
      const seen: Array<[TraceEvent, Trace]> = [];
      const stopFailing = Trace.listen(() => {
        throw new Error('an observer fault');
      });
      const stop = Trace.listen((event, t) => seen.push([event, t]));
      trace.write({ type: 'stage', stage: 'scope', phase: 'start' });
      trace.write({ type: 'stage', stage: 'scope', phase: 'end', result: 'done', durationMs: 5 });
      stop();
      stopFailing();
      trace.write({ type: 'note', message: 'after' });
      expect(seen.map(([e]) => e)).toEqual([
        { type: 'stage', stage: 'scope', phase: 'start' },
        { type: 'stage', stage: 'scope', phase: 'end', result: 'done', durationMs: 5 },
      ]);
      expect(seen.every(([, t]) => t === trace)).toBe(true);
      expect(readFileSync(trace.file, 'utf8').trim().split('\n')).toHaveLength(3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('feeds a Metrics registry the way main wires it', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ia-metrics-trace-'));
    const m = new Metrics({ defaultMetrics: false });
    const stop = Trace.listen((event, trace) => m.observeTrace(event, trace));
    try {
      const [a, b] = [new Trace(dir, 'a'), new Trace(dir, 'b')];
      a.write(stageEnd('validate', 'failed', 10));
      b.write(stageEnd('validate', 'passed', 10));
      a.write(stageEnd('validate', 'passed', 10));
      const x = await scrape(m);
      // Rounds are counted per job: a needed 2, b 1.
      expect(x.value('issue_agent_validation_rounds_to_pass_sum')).toBe(3);
      expect(x.value('issue_agent_validation_rounds_to_pass_count')).toBe(2);
    } finally {
      stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
