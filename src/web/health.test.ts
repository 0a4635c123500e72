import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePrometheus } from '../../test/helpers/prometheus.js';
import { Metrics } from '../telemetry/metrics.js';
import { healthHandler, startOpsServer, timeWebhooks, type HealthDeps, type WorkerState } from './health.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function serve(deps: HealthDeps): Promise<string> {
  const server = await startOpsServer({ port: 0, host: '127.0.0.1', handler: healthHandler(deps) });
  servers.push(server);
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const up = async () => true;
const hangs = () => new Promise<boolean>(() => {});

describe('/healthz', () => {
  it('is 200 when Redis answers and 503 when it does not, also when the ping hangs', async () => {
    expect(await (await fetch(`${await serve({ redisPing: up })}/healthz`)).json()).toEqual({ ok: true, redis: 'up' });
    const down = await fetch(
      `${await serve({ redisPing: async () => Promise.reject(new Error('ECONNREFUSED')) })}/healthz`,
    );
    expect(down.status).toBe(503);
    expect(await down.json()).toEqual({ ok: false, redis: 'down' });
    expect((await fetch(`${await serve({ redisPing: hangs, timeoutMs: 50 })}/healthz`)).status).toBe(503);
  });
});

describe('/readyz', () => {
  const ready = async (deps: HealthDeps) => {
    const r = await fetch(`${await serve(deps)}/readyz`);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };

  it('is 200 for a consuming worker, and says how many workers the queue has', async () => {
    expect(await ready({ redisPing: up, workerState: () => 'consuming', workers: async () => 3 })).toEqual({
      status: 200,
      body: { ready: true, redis: true, worker: 'consuming', workers: 3 },
    });
  });

  it('is 200 for a process without a worker: webhooks are taken and jobs wait in the queue', async () => {
    expect(await ready({ redisPing: up, workers: async () => 0 })).toEqual({
      status: 200,
      body: { ready: true, redis: true, worker: 'none', workers: 0 },
    });
  });

  it('is 503 while its worker is not consuming', async () => {
    for (const state of ['paused', 'closing', 'starting'] satisfies WorkerState[]) {
      expect(await ready({ redisPing: up, workerState: () => state })).toEqual({
        status: 503,
        body: { ready: false, redis: true, worker: state },
      });
    }
  });

  it('is 503 when Redis does not answer', async () => {
    expect(
      await ready({ redisPing: hangs, timeoutMs: 50, workerState: () => 'consuming', workers: async () => undefined }),
    ).toEqual({ status: 503, body: { ready: false, redis: false, worker: 'consuming' } });
  });
});

describe('/metrics', () => {
  it('serves the registry as Prometheus text', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.jobFinished('issue', 'pr', 1);
    const r = await fetch(`${await serve({ redisPing: up, metrics })}/metrics`);
    expect(r.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(parsePrometheus(await r.text()).value('issue_agent_jobs_total', { kind: 'issue', outcome: 'pr' })).toBe(1);
  });

  it('is not there without a registry, and the ops server answers 404 for anything else', async () => {
    const url = await serve({ redisPing: up });
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
    expect((await fetch(`${url}/api/github/webhooks`, { method: 'POST' })).status).toBe(404);
  });
});

describe('timeWebhooks', () => {
  it('observes each webhook request, with its event and status, and nothing else', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const server = createServer((req, res) => {
      res.writeHead(req.headers['x-hub-signature-256'] ? 200 : 400);
      res.end();
    });
    servers.push(server);
    timeWebhooks(server, metrics);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await fetch(`${url}/api/github/webhooks`, {
      method: 'POST',
      headers: { 'x-github-event': 'issues', 'x-hub-signature-256': 'sha256=x' },
      body: '{}',
    });
    await fetch(`${url}/api/github/webhooks?x=1`, {
      method: 'POST',
      headers: { 'x-github-event': 'issue_comment' },
      body: '{}',
    });
    await fetch(`${url}/healthz`);
    await fetch(`${url}/api/github/webhooks`);
    const x = parsePrometheus((await metrics.text()).body);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'issues', status: '200' })).toBe(1);
    expect(x.value('issue_agent_webhook_duration_seconds_count', { event: 'issue_comment', status: '400' })).toBe(1);
    expect(x.sum('issue_agent_webhook_duration_seconds_count')).toBe(2);
  });
});
