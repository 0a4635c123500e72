import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { within, type Metrics } from '../telemetry/metrics.js';

/**
 * What this process's worker is doing: taking jobs, paused, shutting down (`closing`),
 * not started yet (`starting`), or `none` in a process without a worker (web only).
 */
export type WorkerState = 'consuming' | 'paused' | 'closing' | 'starting' | 'none';

export interface HealthDeps {
  redisPing: () => Promise<boolean>;
  /** This process's worker; unset means it has none. */
  workerState?: () => WorkerState;
  /** Workers connected to the queue from any host; undefined when Redis cannot say. */
  workers?: () => Promise<number | undefined>;
  /** Served at `/metrics` when set. */
  metrics?: Metrics;
  /** How long a check waits on Redis before it counts as down (default 2 s). */
  timeoutMs?: number;
}

/**
 * The operational endpoints, as a Probot `addHandler` handler (answers whether it handled
 * the request):
 * - `GET /healthz`: 200 once Redis answers, 503 with the reason otherwise.
 * - `GET /readyz`: 200 when Redis answers and this process's worker (if it has one) is
 *   consuming; the JSON says which, and how many workers the queue has across hosts.
 * - `GET /metrics`: Prometheus text.
 */
export function healthHandler(deps: HealthDeps) {
  const timeoutMs = deps.timeoutMs ?? 2_000;
  // A Redis client that queues commands while disconnected would hang a probe: bounded.
  const redisUp = async () => (await within(timeoutMs, deps.redisPing())) === true;
  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET') return false;
    if (path === '/healthz') {
      const redis = await redisUp();
      json(res, redis ? 200 : 503, { ok: redis, redis: redis ? 'up' : 'down' });
      return true;
    }
    if (path === '/readyz') {
      const [redis, workers] = await Promise.all([redisUp(), deps.workers?.()]);
      const worker = deps.workerState?.() ?? 'none';
      // A web-only process is ready without a worker of its own: jobs wait in the queue.
      const ready = redis && (worker === 'consuming' || worker === 'none');
      json(res, ready ? 200 : 503, { ready, redis, worker, ...(workers !== undefined ? { workers } : {}) });
      return true;
    }
    if (path === '/metrics' && deps.metrics) {
      const { contentType, body } = await deps.metrics.text();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return true;
    }
    return false;
  };
}

/**
 * A server of its own for the operational endpoints (METRICS_PORT): how a worker-only
 * process, which has no web server, is scraped and probed.
 */
export async function startOpsServer(opts: {
  port: number;
  host?: string;
  handler: ReturnType<typeof healthHandler>;
}): Promise<Server> {
  const server = createServer((req, res) => {
    opts.handler(req, res).then(
      (handled) => {
        if (!handled) {
          res.writeHead(404, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: 'not found: GET /healthz, /readyz or /metrics' }));
        }
      },
      () => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: opts.port, host: opts.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

/** Times each webhook request from its arrival to its answer, which is what GitHub waits for. */
export function timeWebhooks(server: Server, metrics: Metrics, webhookPath = '/api/github/webhooks'): void {
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== webhookPath) return;
    const started = process.hrtime.bigint();
    const event = req.headers['x-github-event'];
    res.once('finish', () =>
      metrics.webhookHandled(
        typeof event === 'string' ? event : undefined,
        res.statusCode,
        Number(process.hrtime.bigint() - started) / 1e9,
      ),
    );
  });
}
