import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
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
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
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
 * The settings the app's Redis needs so that a restart loses no job: the append-only file
 * (fsync once a second) and no eviction (BullMQ's keys must never be dropped for memory).
 */
export const REDIS_PERSISTENCE_ARGS = [
  '--appendonly',
  'yes',
  '--appendfsync',
  'everysec',
  '--maxmemory-policy',
  'noeviction',
] as const;

/**
 * Starts a redis-server child on `port` with data (the append-only file) under `dir`, with
 * REDIS_PERSISTENCE_ARGS. `extraConfig` lines go into its config as they are. Resolves once
 * it answers PING.
 */
export async function startRedisServer(opts: {
  port: number;
  dir: string;
  password?: string;
  extraConfig?: string[];
  log?: Logger;
}): Promise<RedisHandle> {
  mkdirSync(opts.dir, { recursive: true });
  const args = [
    '--port',
    String(opts.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    opts.dir,
    ...REDIS_PERSISTENCE_ARGS,
    '--save',
    '',
  ];
  // The password goes in through stdin's config, not argv, where any local user could read it.
  const stdinConfig = [...(opts.password ? [`requirepass ${opts.password}`] : []), ...(opts.extraConfig ?? [])];
  const child = spawn('redis-server', stdinConfig.length > 0 ? ['-', ...args] : args, {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin?.end(stdinConfig.map((l) => `${l}\n`).join(''));
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4_000)));
  const url = opts.password
    ? `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${opts.port}`
    : `redis://127.0.0.1:${opts.port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) break;
    if (await redisAnswers(url, 200)) {
      opts.log?.info({ port: opts.port, dir: opts.dir }, 'started a local redis-server');
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
export async function resolveRedis(opts: {
  url?: string;
  password?: string;
  dataDir: string;
  log: Logger;
}): Promise<RedisHandle> {
  if (opts.url) return { url: opts.url, stop: async () => {} };
  const local = withPassword(DEFAULT_REDIS_URL, opts.password);
  if (await redisAnswers(local)) return { url: local, stop: async () => {} };
  // Our own server has a password: Redis is not a trust root, and whatever reaches the
  // host's loopback must not be able to write jobs into the queue.
  const dir = path.join(opts.dataDir, 'redis');
  const passwordFile = path.join(dir, 'password');
  mkdirSync(dir, { recursive: true });
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(24).toString('hex'), { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();
  const ours = `redis://:${password}@127.0.0.1:6379`;
  if (await redisAnswers(ours)) return { url: ours, stop: async () => {} };
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!installed) {
    throw new Error(
      `no Redis answers at ${DEFAULT_REDIS_URL} and redis-server is not installed. ` +
        'Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL to a Redis you run.',
    );
  }
  return startRedisServer({ port: 6379, dir, password, log: opts.log });
}

/** `url` with `password` put in, unless the URL carries credentials of its own. */
export function withPassword(url: string, password: string | undefined): string {
  if (!password) return url;
  const u = new URL(url);
  if (u.password) return url;
  u.password = password;
  return u.toString();
}

/**
 * Whether the Redis at `url` runs commands for a client that never authenticated: the URL's
 * credentials are dropped and PING is sent. A server with a password answers NOAUTH.
 */
export async function redisAcceptsWithoutAuth(url: string, timeoutMs = 3_000): Promise<boolean> {
  const bare = new URL(url);
  bare.username = '';
  bare.password = '';
  const client = new Redis(bare.toString(), {
    lazyConnect: true,
    enableReadyCheck: false,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch (err) {
    if (/NOAUTH|WRONGPASS|NOPERM/.test((err as Error).message)) return false;
    throw err;
  } finally {
    client.disconnect();
  }
}

/** What to say when the app's Redis needs no password, with how to set one. */
export function noAuthProblem(url: string): string {
  const where = new URL(url);
  where.username = '';
  where.password = '';
  return (
    `REDIS_ALLOW_NO_AUTH: the Redis at ${where.toString()} runs commands without a password, so anything that reaches it ` +
    "(another machine on its network, any process on this one) could forge jobs and stage outputs that workers act on with the App's rights " +
    'on every repository. Set a password (requirepass in redis.conf, or CONFIG SET requirepass … then CONFIG REWRITE) and give it to the app ' +
    'in REDIS_URL (redis://:PASSWORD@host:6379) or REDIS_PASSWORD; or leave REDIS_URL unset with nothing on 127.0.0.1:6379, and the app starts ' +
    'its own redis-server with a generated password. To run on it anyway, set REDIS_ALLOW_NO_AUTH=1'
  );
}

/** BullMQ's connection options for a redis:// URL (workers need maxRetriesPerRequest: null). */
export function bullConnection(url: string): { url: string; maxRetriesPerRequest: null } {
  return { url, maxRetriesPerRequest: null };
}

export interface RedisSettingsCheck {
  /** The settings were read and none is a problem. */
  ok: boolean;
  /** False when the server would not say (CONFIG disabled, as on many managed services). */
  checked: boolean;
  /** One line per problem, each with its fix; each is also logged as a warning. */
  problems: string[];
}

async function configGet(redis: Redis, name: string): Promise<string | undefined> {
  const reply = (await redis.call('CONFIG', 'GET', name)) as unknown;
  return Array.isArray(reply) && typeof reply[1] === 'string' ? reply[1] : undefined;
}

/**
 * Checks that Redis keeps BullMQ's jobs across a restart and under memory pressure:
 * `appendonly yes` (with `appendfsync` everysec or always) and `maxmemory-policy noeviction`.
 * Warns once per problem with the fix; never throws, so a managed Redis that refuses CONFIG
 * only gets a warning that the settings could not be checked.
 */
/** The oldest Redis the app runs on: the inbox moves items with LMOVE/BLMOVE (6.2). */
export const MIN_REDIS_VERSION = [6, 2] as const;

/** Why this Redis (its `INFO server` text) is too old for the app, or undefined when it is not. */
export function redisVersionProblem(infoServer: string): string | undefined {
  const version = /^redis_version:(\S+)/m.exec(infoServer)?.[1];
  if (!version) return undefined;
  const [major = 0, minor = 0] = version.split('.').map(Number);
  if (major > MIN_REDIS_VERSION[0] || (major === MIN_REDIS_VERSION[0] && minor >= MIN_REDIS_VERSION[1]))
    return undefined;
  return `Redis ${version} is too old: issue-agent needs ${MIN_REDIS_VERSION.join('.')} or later (for LMOVE); upgrade it, or point REDIS_URL at a newer one`;
}

export async function checkRedisSettings(redis: Redis, log: Pick<Logger, 'warn'>): Promise<RedisSettingsCheck> {
  let settings: Record<'appendonly' | 'appendfsync' | 'maxmemory-policy' | 'save', string | undefined>;
  try {
    const [appendonly, appendfsync, policy, save] = await Promise.all(
      ['appendonly', 'appendfsync', 'maxmemory-policy', 'save'].map((name) => configGet(redis, name)),
    );
    settings = { appendonly, appendfsync, 'maxmemory-policy': policy, save };
  } catch (err) {
    const problem =
      `could not read the Redis settings (CONFIG GET: ${(err as Error).message}); make sure the server persists jobs ` +
      '(appendonly yes) and never evicts keys (maxmemory-policy noeviction): on a managed Redis, set them in its parameter group or plan';
    log.warn(problem);
    return { ok: false, checked: false, problems: [problem] };
  }
  const problems: string[] = [];
  if (settings.appendonly !== 'yes') {
    const snapshots = settings.save
      ? `only the RDB snapshots (save "${settings.save}") are kept, so`
      : 'nothing is written to disk, so';
    problems.push(
      `Redis appendonly is "${settings.appendonly ?? 'unknown'}": ${snapshots} a Redis restart loses queued and running jobs; ` +
        'set "appendonly yes" in redis.conf (or CONFIG SET appendonly yes, then CONFIG REWRITE)',
    );
  } else if (settings.appendfsync === 'no') {
    problems.push(
      'Redis appendfsync is "no": the OS decides when jobs reach the disk, so a crash can lose many seconds of them; set "appendfsync everysec"',
    );
  }
  if (settings['maxmemory-policy'] !== 'noeviction') {
    problems.push(
      `Redis maxmemory-policy is "${settings['maxmemory-policy'] ?? 'unknown'}": under memory pressure Redis evicts keys and BullMQ loses jobs; ` +
        'set "maxmemory-policy noeviction" in redis.conf (or CONFIG SET maxmemory-policy noeviction, then CONFIG REWRITE)',
    );
  }
  for (const problem of problems) log.warn(problem);
  return { ok: problems.length === 0, checked: true, problems };
}
