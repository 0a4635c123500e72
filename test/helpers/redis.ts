import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startRedisServer, type RedisHandle } from '../../src/queue/redis.js';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** A real redis-server of the test's own, on a free port, never the machine's 6379. */
export async function startTestRedis(): Promise<RedisHandle> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ia-redis-'));
  const handle = await startRedisServer({ port: await freePort(), dir });
  return {
    ...handle,
    stop: async () => {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
