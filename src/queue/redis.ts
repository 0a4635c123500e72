import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

export interface RedisHandle {
  url: string;
  /** Set when this process started the server; stop() ends it. */
  owned?: ChildProcess;
  stop(): Promise<void>;
}

/** Answers whether a Redis server replies to PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1_500): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/**
 * Starts a redis-server child on `port` with data under `dir` (AOF on, no eviction: BullMQ
 * must not lose jobs). Resolves once it answers PING.
 */
export async function startRedisServer(opts: { port: number; dir: string; log?: Logger }): Promise<RedisHandle> {
  mkdirSync(opts.dir, { recursive: true });
  const child = spawn(
    'redis-server',
    ['--port', String(opts.port), '--bind', '127.0.0.1', '--dir', opts.dir, '--appendonly', 'yes', '--maxmemory-policy', 'noeviction', '--save', ''],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  const url = `redis://127.0.0.1:${opts.port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await redisAnswers(url, 200)) {
      opts.log?.info({ url, dir: opts.dir }, 'started a local redis-server');
      return {
        url,
        owned: child,
        stop: async () => {
          if (child.exitCode === null) child.kill('SIGTERM');
          await exited;
        },
      };
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not start on port ${opts.port}: ${output.trim().slice(-500)}`);
}

/**
 * REDIS_URL when set; otherwise the local default, and when nothing answers there, a
 * redis-server of our own if one is installed.
 */
export async function resolveRedis(opts: { url?: string; dataDir: string; log: Logger }): Promise<RedisHandle> {
  if (opts.url) return { url: opts.url, stop: async () => {} };
  if (await redisAnswers(DEFAULT_REDIS_URL)) return { url: DEFAULT_REDIS_URL, stop: async () => {} };
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!installed) {
    throw new Error(
      `no Redis answers at ${DEFAULT_REDIS_URL} and redis-server is not installed. ` +
        'Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a Redis you run.',
    );
  }
  return startRedisServer({ port: 6379, dir: `${opts.dataDir}/redis`, log: opts.log });
}

/** BullMQ's connection options for a redis:// URL (workers need maxRetriesPerRequest: null). */
export function bullConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url, maxRetriesPerRequest: null };
}
