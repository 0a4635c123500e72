import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { freePort, startTestRedis } from '../../test/helpers/redis.js';
import {
  bullConnection,
  checkRedisSettings,
  noAuthProblem,
  redisAcceptsWithoutAuth,
  redisAnswers,
  redisVersionProblem,
  startRedisServer,
  withPassword,
} from './redis.js';

describe('a redis-server of our own', () => {
  it('starts with a password that is required and never on its command line', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ia-redis-pw-'));
    const port = await freePort();
    const handle = await startRedisServer({ port, dir, password: 'correct-horse-battery' });
    try {
      expect(handle.url).toBe(`redis://:correct-horse-battery@127.0.0.1:${port}`);
      expect(await redisAnswers(handle.url)).toBe(true);
      expect(await redisAnswers(`redis://127.0.0.1:${port}`)).toBe(false);
      expect(handle.owned?.spawnargs.join(' ')).not.toContain('correct-horse');
    } finally {
      await handle.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('a Redis without a password', () => {
  it('is told apart from one that asks for its password, whatever credentials the URL carries', async () => {
    const open = await startTestRedis({ noPassword: true });
    const closed = await startTestRedis();
    try {
      expect(await redisAcceptsWithoutAuth(open.url)).toBe(true);
      expect(await redisAcceptsWithoutAuth(`redis://:anything@127.0.0.1:${open.port}`)).toBe(true);
      expect(await redisAcceptsWithoutAuth(closed.url)).toBe(false);
      expect(closed.url).toMatch(/^redis:\/\/:[0-9a-f]{24}@/);
      // Unreachable is not "no password": the caller hears why.
      await expect(redisAcceptsWithoutAuth(`redis://127.0.0.1:${await freePort()}`)).rejects.toThrow(
        /ECONNREFUSED|Connection is closed/,
      );
      expect(noAuthProblem(`redis://:pw@127.0.0.1:${open.port}`)).toMatch(
        new RegExp(
          `^REDIS_ALLOW_NO_AUTH: the Redis at redis://127\\.0\\.0\\.1:${open.port} runs commands without a password.*requirepass.*REDIS_PASSWORD.*REDIS_ALLOW_NO_AUTH=1$`,
        ),
      );
      expect(noAuthProblem('redis://:secret-pw@h:1')).not.toContain('secret-pw');
    } finally {
      await open.stop();
      await closed.stop();
    }
  });

  it('gets the password from REDIS_PASSWORD when the URL has none', () => {
    expect(withPassword('redis://redis:6379', 's3cret/+')).toBe('redis://:s3cret%2F+@redis:6379');
    expect(withPassword('redis://:own@redis:6379', 'other')).toBe('redis://:own@redis:6379');
    expect(withPassword('redis://redis:6379', undefined)).toBe('redis://redis:6379');
  });
});

describe('redisVersionProblem', () => {
  it('refuses a Redis older than 6.2 and names the version', () => {
    expect(redisVersionProblem('# Server\r\nredis_version:6.0.16\r\nredis_mode:standalone\r\n')).toMatch(
      /Redis 6\.0\.16 is too old: issue-agent needs 6\.2/,
    );
    expect(redisVersionProblem('redis_version:5.0.7\r\n')).toMatch(/5\.0\.7/);
    expect(redisVersionProblem('redis_version:6.2.0\r\n')).toBeUndefined();
    expect(redisVersionProblem('redis_version:7.0.15\r\n')).toBeUndefined();
  });
});

describe('checkRedisSettings', () => {
  function recordingLog() {
    const lines: string[] = [];
    return { lines, log: { warn: (msg: string) => void lines.push(msg) } as unknown as Pick<Logger, 'warn'> };
  }

  it('passes the server the app starts for itself: AOF everysec, noeviction', async () => {
    const server = await startTestRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      const { lines, log } = recordingLog();
      expect(await checkRedisSettings(redis, log)).toEqual({ ok: true, checked: true, problems: [] });
      expect(lines).toEqual([]);
      const [, appendfsync] = (await redis.config('GET', 'appendfsync')) as [string, string];
      expect(appendfsync).toBe('everysec');
      // The append-only file lives under the server's data directory.
      expect(existsSync(path.join(server.dir, 'appendonlydir'))).toBe(true);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });

  it('warns, one line per problem with its fix, when a restart or eviction would lose jobs', async () => {
    const server = await startTestRedis();
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      await redis.config('SET', 'appendfsync', 'no');
      const fsync = await checkRedisSettings(redis, recordingLog().log);
      expect(fsync.problems).toEqual([expect.stringMatching(/appendfsync is "no".*set "appendfsync everysec"/)]);

      // (Turning AOF back on would start a rewrite that blocks the server's shutdown: do it last.)
      await redis.config('SET', 'appendonly', 'no');
      await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
      const { lines, log } = recordingLog();
      const result = await checkRedisSettings(redis, log);
      expect(result.ok).toBe(false);
      expect(result.checked).toBe(true);
      expect(result.problems).toHaveLength(2);
      expect(result.problems[0]).toMatch(
        /appendonly is "no": nothing is written to disk, so a Redis restart loses queued and running jobs; set "appendonly yes"/,
      );
      expect(result.problems[1]).toMatch(
        /maxmemory-policy is "allkeys-lru": .*BullMQ loses jobs; set "maxmemory-policy noeviction"/,
      );
      expect(lines).toEqual(result.problems);
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });

  it('only warns that it could not check when CONFIG is disabled, as on managed Redis', async () => {
    const server = await startTestRedis({ extraConfig: ['rename-command CONFIG ""'] });
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    try {
      const { lines, log } = recordingLog();
      const result = await checkRedisSettings(redis, log);
      expect(result).toMatchObject({ ok: false, checked: false });
      expect(result.problems).toEqual([
        expect.stringMatching(
          /^could not read the Redis settings \(CONFIG GET: ERR unknown command 'CONFIG'.*appendonly yes.*maxmemory-policy noeviction/,
        ),
      ]);
      expect(lines).toEqual(result.problems);
      // The connection is still usable.
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
      await server.stop();
    }
  });
});

describe('a Redis restart', () => {
  it('loses no job: the queue, a worker and a plain client reconnect and carry on', async () => {
    const server = await startTestRedis();
    const connection = bullConnection(server.url);
    const redis = new Redis(server.url, { maxRetriesPerRequest: null });
    const queue = new Queue('survive-restart', { connection });
    // Connection errors while the server is down are expected; listening keeps them from crashing the run.
    const errors: string[] = [];
    redis.on('error', (e: Error) => errors.push(e.message));
    queue.on('error', (e: Error) => errors.push(e.message));
    let worker: Worker | undefined;
    try {
      const runId = async () => /run_id:(\w+)/.exec(await redis.info('server'))?.[1];
      const firstRun = await runId();
      await redis.set('plain-key', 'kept');
      const before = await queue.add('job', { n: 21 }, { jobId: 'before-restart' });

      await server.restart();
      expect(await runId()).not.toBe(firstRun);
      expect(await redis.get('plain-key')).toBe('kept');
      const still = await queue.getJob(before.id!);
      expect(still?.data).toEqual({ n: 21 });
      expect(await still?.getState()).toBe('waiting');

      const done = new Map<string, unknown>();
      const finished = (id: string) =>
        new Promise<unknown>((resolve) => {
          if (done.has(id)) return resolve(done.get(id));
          worker!.on('completed', (job, result) => {
            if (job.id === id) resolve(result);
          });
        });
      worker = new Worker('survive-restart', async (job) => (job.data as { n: number }).n * 2, { connection });
      worker.on('error', (e: Error) => errors.push(e.message));
      worker.on('completed', (job, result) => done.set(job.id!, result));
      expect(await finished('before-restart')).toBe(42);

      // A long-lived worker rides out the next restart too.
      await server.restart();
      await queue.add('job', { n: 50 }, { jobId: 'after-restart' });
      expect(await finished('after-restart')).toBe(100);
      expect(await queue.getJobCounts('completed', 'waiting', 'active', 'failed')).toMatchObject({
        completed: 2,
        waiting: 0,
        active: 0,
        failed: 0,
      });
    } finally {
      await worker?.close();
      await queue.close();
      redis.disconnect();
      await server.stop();
    }
  });
});
