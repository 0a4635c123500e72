import type { IncomingMessage, ServerResponse } from 'node:http';

/** `GET /healthz`: 200 once Redis answers, 503 with the reason otherwise. */
export function healthHandler(deps: { redisPing: () => Promise<boolean> }) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/healthz') return false;
    const redis = await deps.redisPing().catch(() => false);
    res.writeHead(redis ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok: redis, redis: redis ? 'up' : 'down' }));
    return true;
  };
}
