import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll } from 'vitest';
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

export interface TestRedis extends RedisHandle {
  port: number;
  /** Where the server keeps its append-only file. */
  dir: string;
  /** Stops the server (SIGTERM: it writes out its AOF) and starts it again on the same port and data. */
  restart(): Promise<void>;
}

/**
 * A real redis-server of the test's own, on a free port, never the machine's 6379. It runs
 * as the app's own does: AOF on (appendfsync everysec), maxmemory-policy noeviction.
 * `extraConfig` lines go into its config (e.g. `rename-command CONFIG ""`). It has a
 * password unless `noPassword`; `url` carries it.
 */
export async function startTestRedis(opts: { extraConfig?: string[]; noPassword?: boolean } = {}): Promise<TestRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ia-redis-'));
  const port = await freePort();
  // A password, as the app requires of any Redis it runs on (REDIS_ALLOW_NO_AUTH aside).
  const password = opts.noPassword ? undefined : randomBytes(12).toString('hex');
  const start = () => startRedisServer({ port, dir, extraConfig: opts.extraConfig, ...(password ? { password } : {}) });
  let current = await start();
  return {
    port,
    dir,
    get url() {
      return current.url;
    },
    get owned() {
      return current.owned;
    },
    restart: async () => {
      await current.stop();
      current = await start();
    },
    stop: async () => {
      await current.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A test file's own redis-server and a client to it, started before its tests and stopped
 * after them: read `server` and `redis` inside the tests.
 */
export function useTestRedis(): { server: TestRedis; redis: Redis } {
  const ctx = {} as { server: TestRedis; redis: Redis };
  beforeAll(async () => {
    ctx.server = await startTestRedis();
    ctx.redis = new Redis(ctx.server.url, { maxRetriesPerRequest: null });
  });
  afterAll(async () => {
    ctx.redis?.disconnect();
    await ctx.server?.stop();
  });
  return ctx;
}
