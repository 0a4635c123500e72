import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis } from '../../test/helpers/redis.js';
import type { RedisHandle } from './redis.js';
import { bullConnection } from './redis.js';
import { AgentQueue } from './queue.js';
import { branchName, jobId, JobDataSchema } from './jobs.js';

let server: RedisHandle;
let redis: Redis;
let queue: AgentQueue;
const base = { kind: 'issue' as const, installationId: 7, owner: 'octo', repo: 'demo', issueNumber: 12, sender: 'maintainer' };

beforeAll(async () => {
  server = await startTestRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
  queue = new AgentQueue(bullConnection(server.url), redis, 'test');
});
afterAll(async () => {
  await queue.close();
  redis.disconnect();
  await server.stop();
});

describe('job data', () => {
  it('refuses data that does not fit the schema', () => {
    expect(JobDataSchema.safeParse({ ...base, deliveryId: 'd', attempt: 1, owner: '../etc' }).success).toBe(false);
    expect(JobDataSchema.safeParse({ ...base, deliveryId: 'd', attempt: 0 }).success).toBe(false);
  });

  it('names branches agent/issue-<n>-<slug>', () => {
    expect(branchName(12, 'add() returns the wrong sum when one number is negative')).toBe('agent/issue-12-add-returns-the-wrong-sum');
    expect(branchName(3, '🔥🔥')).toBe('agent/issue-3');
  });
});

describe('status comment refs', () => {
  it('waits for the web\'s comment, and answers at once when none is coming', async () => {
    const refs = queue.statusRefs;
    expect(await refs.get('nobody', 5_000)).toBeUndefined();
    await refs.markPending('j1');
    setTimeout(() => void refs.claim('j1').then(() => refs.set('j1', 77)), 300);
    expect(await refs.get('j1', 5_000)).toBe(77);
    await refs.markPending('j1');
    expect(await refs.get('j1', 0)).toBe(77);
  });

  it('lets exactly one of web and worker create the comment', async () => {
    const refs = queue.statusRefs;
    await refs.markPending('j2');
    // The worker gave up waiting and claimed it: the web must not make a second comment.
    expect(await refs.get('j2', 0)).toBeUndefined();
    expect(await refs.claim('j2')).toBe(false);
    await refs.markPending('j3');
    const claims = await Promise.all([refs.claim('j3'), refs.claim('j3'), refs.claim('j3')]);
    expect(claims.filter(Boolean)).toHaveLength(1);
  });
});

describe('enqueue', () => {
  it('makes one job per attempt: a redelivery and a second label while active are not new jobs', async () => {
    const first = await queue.enqueue({ ...base, deliveryId: 'd-1' });
    expect(first).toEqual({ kind: 'enqueued', jobId: jobId({ ...base, attempt: 1 }), attempt: 1 });
    expect(await queue.enqueue({ ...base, deliveryId: 'd-1' })).toEqual({ kind: 'duplicate-delivery', deliveryId: 'd-1' });
    expect(await queue.enqueue({ ...base, deliveryId: 'd-2' })).toMatchObject({ kind: 'already-active', attempt: 1 });
    const job = await queue.queue.getJob(jobId({ ...base, attempt: 1 }));
    expect(job?.data).toEqual({ ...base, attempt: 1, deliveryId: 'd-1' });
    expect(await queue.queue.getJobCounts('waiting')).toMatchObject({ waiting: 1 });
  });

  it('makes one job when two deliveries race', async () => {
    const other = { ...base, issueNumber: 99 };
    const results = await Promise.all([1, 2, 3, 4].map((i) => queue.enqueue({ ...other, deliveryId: `race-${i}` })));
    expect(results.filter((r) => r.kind === 'enqueued')).toHaveLength(1);
    expect(results.filter((r) => r.kind === 'already-active')).toHaveLength(3);
  });

  it('starts the next attempt once the last one finished', async () => {
    const other = { ...base, issueNumber: 100 };
    await queue.enqueue({ ...other, deliveryId: 'n-1' });
    const job = await queue.queue.getJob(jobId({ ...other, attempt: 1 }));
    await job!.remove();
    expect(await queue.enqueue({ ...other, deliveryId: 'n-2' })).toMatchObject({ kind: 'enqueued', attempt: 2 });
  });
});
