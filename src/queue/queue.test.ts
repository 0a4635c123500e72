import { RecordSeal } from './record-seal.js';
import { Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestRedis } from '../../test/helpers/redis.js';
import type { RedisHandle } from './redis.js';
import { bullConnection } from './redis.js';
import { AgentQueue } from './queue.js';
import { branchName, isOwnBranch, issueKey, jobId, JobDataSchema, openJob, type JobData } from './jobs.js';

let server: RedisHandle;
let redis: Redis;
let queue: AgentQueue;
const seal = RecordSeal.ephemeral();
const base = {
  kind: 'issue' as const,
  installationId: 7,
  owner: 'octo',
  repo: 'demo',
  issueNumber: 12,
  sender: 'maintainer',
};

beforeAll(async () => {
  server = await startTestRedis();
  redis = new Redis(server.url, { maxRetriesPerRequest: null });
  queue = new AgentQueue(bullConnection(server.url), redis, seal, 'test');
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
    expect(branchName(12, 'add() returns the wrong sum when one number is negative')).toBe(
      'agent/issue-12-add-returns-the-wrong-sum',
    );
    expect(branchName(3, '🔥🔥')).toBe('agent/issue-3');
  });
});

describe('status comment refs', () => {
  it("waits for the web's comment, and answers at once when none is coming", async () => {
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

  it("keeps the first comment recorded when a worker gave up on the web's and both made one", async () => {
    const refs = queue.statusRefs;
    await refs.markPending('j4');
    expect(await refs.claim('j4')).toBe(true);
    // The web's POST is slow: the worker gives up, makes comment 200 and records it first.
    expect(await refs.set('j4', 200)).toBe(200);
    // The web's comment 100 lands later: it is told to keep 200 (and deletes its own).
    expect(await refs.set('j4', 100)).toBe(200);
    expect(await refs.get('j4', 0)).toBe(200);
    // The other way round, and recording the same comment again.
    await refs.markPending('j5');
    expect(await refs.set('j5', 100)).toBe(100);
    expect(await refs.set('j5', 200)).toBe(100);
    expect(await refs.set('j5', 100)).toBe(100);
  });
});

describe('enqueue', () => {
  it('makes one job per attempt: a redelivery and a second label while active are not new jobs', async () => {
    const first = await queue.enqueue({ ...base, deliveryId: 'd-1' });
    expect(first).toEqual({ kind: 'enqueued', jobId: jobId({ ...base, attempt: 1 }), attempt: 1 });
    expect(await queue.enqueue({ ...base, deliveryId: 'd-1' })).toEqual({
      kind: 'duplicate-delivery',
      deliveryId: 'd-1',
    });
    expect(await queue.enqueue({ ...base, deliveryId: 'd-2' })).toMatchObject({ kind: 'already-active', attempt: 1 });
    const job = await queue.queue.getJob(jobId({ ...base, attempt: 1 }));
    const { seal: mac, ...fields } = job!.data as JobData & { seal: string };
    expect(fields).toEqual({ ...base, attempt: 1, deliveryId: 'd-1' });
    // Sealed for this job: it opens here, and not under another job's id or with a field changed.
    expect(mac).toMatch(/^[0-9a-f]{64}$/);
    expect(openJob(seal, job!.id!, job!.data)).toEqual({ ok: true, data: { ...base, attempt: 1, deliveryId: 'd-1' } });
    expect(openJob(seal, jobId({ ...base, attempt: 2 }), job!.data)).toEqual({
      ok: false,
      why: 'its seal does not match its data',
    });
    expect(openJob(seal, job!.id!, { ...job!.data, owner: 'victim-org' })).toEqual({
      ok: false,
      why: 'its seal does not match its data',
    });
    expect(openJob(seal, job!.id!, fields)).toEqual({ ok: false, why: 'its data carries no seal' });
    expect(openJob(RecordSeal.ephemeral(), job!.id!, job!.data).ok).toBe(false);
    expect(await queue.queue.getJobCounts('waiting')).toMatchObject({ waiting: 1 });
  });

  it('makes one job when two deliveries race', async () => {
    const other = { ...base, issueNumber: 99 };
    const results = await Promise.all([1, 2, 3, 4].map((i) => queue.enqueue({ ...other, deliveryId: `race-${i}` })));
    expect(results.filter((r) => r.kind === 'enqueued')).toHaveLength(1);
    expect(results.filter((r) => r.kind === 'already-active')).toHaveLength(3);
  });

  it('waits for a lock another process holds without claiming the delivery, and keeps only its own lock', async () => {
    const other = { ...base, issueNumber: 102 };
    const lockKey = `test:lock:${issueKey(other)}`;
    await redis.set(lockKey, 'someone-else', 'PX', 400);
    const pending = queue.enqueue({ ...other, deliveryId: 'w-1' });
    await new Promise((r) => setTimeout(r, 150));
    // Still waiting: the delivery is not recorded yet, and the other holder's lock stands.
    expect(await redis.exists('test:delivery:w-1')).toBe(0);
    expect(await redis.get(lockKey)).toBe('someone-else');
    expect(await pending).toMatchObject({ kind: 'enqueued', attempt: 1 });
    expect(await redis.exists('test:delivery:w-1')).toBe(1);
    expect(await redis.exists(lockKey)).toBe(0);
  });

  it('releases the delivery and the lock when the job cannot be added, so a redelivery can try again', async () => {
    const other = { ...base, issueNumber: 103 };
    // Data the schema refuses makes the add throw after the lock is taken.
    await expect(queue.enqueue({ ...other, owner: '../etc', deliveryId: 'x-1' })).rejects.toThrow();
    expect(await redis.exists('test:delivery:x-1')).toBe(0);
    expect(await redis.keys('test:lock:*')).toEqual([]);
    expect(await queue.enqueue({ ...other, deliveryId: 'x-1' })).toMatchObject({ kind: 'enqueued', attempt: 1 });
  });

  it('starts the next attempt once the running one has posted its last word', async () => {
    const other = { ...base, issueNumber: 101 };
    const first = (await queue.enqueue({ ...other, deliveryId: 'e-1' })) as { jobId: string };
    expect(await queue.enqueue({ ...other, deliveryId: 'e-2' })).toMatchObject({ kind: 'already-active' });
    await queue.markEnding(first.jobId);
    expect(await queue.enqueue({ ...other, deliveryId: 'e-3' })).toMatchObject({ kind: 'enqueued', attempt: 2 });
  });

  it('starts the next attempt once the last one finished', async () => {
    const other = { ...base, issueNumber: 100 };
    await queue.enqueue({ ...other, deliveryId: 'n-1' });
    const job = await queue.queue.getJob(jobId({ ...other, attempt: 1 }));
    await job!.remove();
    expect(await queue.enqueue({ ...other, deliveryId: 'n-2' })).toMatchObject({ kind: 'enqueued', attempt: 2 });
  });
});

describe('revise jobs', () => {
  const pr = { installationId: 7, owner: 'octo', repo: 'demo', issueNumber: 40, sender: 'reviewer' };

  it('batches feedback that arrives while a revise job is queued, and starts the next one after it', async () => {
    const first = await queue.enqueueRevise({
      ...pr,
      deliveryId: 'r-1',
      feedback: { reviewId: 1, sender: 'reviewer' },
    });
    expect(first).toMatchObject({ kind: 'enqueued', attempt: 1 });
    const id = jobId({ ...pr, kind: 'revise', attempt: 1 });
    expect(first).toMatchObject({ jobId: id });
    expect(
      await queue.enqueueRevise({ ...pr, deliveryId: 'r-1', feedback: { reviewId: 1, sender: 'reviewer' } }),
    ).toMatchObject({ kind: 'duplicate-delivery' });
    expect(
      await queue.enqueueRevise({ ...pr, deliveryId: 'r-2', feedback: { reviewId: 2, sender: 'reviewer' } }),
    ).toEqual({ kind: 'batched', jobId: id });
    // The job starts and takes both reviews at once.
    expect((await queue.takeFeedback(pr, id)).map((f) => f.reviewId)).toEqual([1, 2]);
    // The same job, retried after a crash, addresses the same feedback.
    expect((await queue.takeFeedback(pr, id)).map((f) => f.reviewId)).toEqual([1, 2]);
    // A review while it runs waits for the next job, which the ending job starts.
    expect(
      await queue.enqueueRevise({ ...pr, deliveryId: 'r-3', feedback: { text: 'also rename x', sender: 'reviewer' } }),
    ).toEqual({ kind: 'batched', jobId: id });
    const job = await queue.queue.getJob(id);
    const { next } = await queue.finishRevise(job!.data);
    expect(next).toBe(jobId({ ...pr, kind: 'revise', attempt: 2 }));
    expect((await queue.queue.getJob(next!))?.data).toMatchObject({ kind: 'revise', prNumber: 40, attempt: 2 });
    expect((await queue.takeFeedback(pr, next!)).map((f) => f.text)).toEqual(['also rename x']);
    // With nothing waiting, the PR has no revise job any more and the next review starts one.
    const second = await queue.queue.getJob(next!);
    expect(await queue.finishRevise(second!.data)).toEqual({});
    expect(
      await queue.enqueueRevise({ ...pr, deliveryId: 'r-4', feedback: { reviewId: 4, sender: 'reviewer' } }),
    ).toMatchObject({ kind: 'enqueued', attempt: 3 });
  });
});

describe('revise feedback', () => {
  it('addresses a review GitHub delivered twice once', async () => {
    const pr = { installationId: 7, owner: 'octo', repo: 'demo', issueNumber: 41, sender: 'reviewer' };
    const first = (await queue.enqueueRevise({
      ...pr,
      deliveryId: 'dd-1',
      feedback: { reviewId: 9, sender: 'reviewer' },
    })) as { jobId: string };
    await queue.enqueueRevise({ ...pr, deliveryId: 'dd-2', feedback: { reviewId: 9, sender: 'reviewer' } });
    await queue.enqueueRevise({ ...pr, deliveryId: 'dd-3', feedback: { text: 'and this', sender: 'reviewer' } });
    expect((await queue.takeFeedback(pr, first.jobId)).map((f) => f.reviewId ?? f.text)).toEqual([9, 'and this']);
  });
});

describe('answers', () => {
  it('claims an answer once per delivery', async () => {
    expect(await queue.claimAnswer('help-1')).toBe(true);
    expect(await queue.claimAnswer('help-1')).toBe(false);
    expect(await queue.claimAnswer('help-2')).toBe(true);
  });
});

describe('stop requests', () => {
  it('removes a queued job, and answers nothing-running when there is none', async () => {
    const issue = { ...base, issueNumber: 300 };
    expect(await queue.requestStop('issue', issue, 'maintainer')).toEqual({ kind: 'nothing-running' });
    const { jobId: id } = (await queue.enqueue({ ...issue, deliveryId: 's-1' })) as { jobId: string };
    expect(await queue.requestStop('issue', issue, 'maintainer', 'stop-1')).toEqual({ kind: 'removed', jobId: id });
    // The same delivery again (the inbox may do an item twice) is not a second stop.
    expect(await queue.requestStop('issue', issue, 'maintainer', 'stop-1')).toEqual({
      kind: 'duplicate-delivery',
      deliveryId: 'stop-1',
    });
    expect(await queue.queue.getJob(id)).toBeUndefined();
    expect(await queue.requestStop('issue', issue, 'maintainer')).toEqual({ kind: 'nothing-running' });
  });

  it('flags a running job with who asked', async () => {
    const issue = { ...base, issueNumber: 301 };
    // A queue of its own, so the only waiting job is this one.
    const own = new AgentQueue(bullConnection(server.url), redis, RecordSeal.ephemeral(), 'stoptest');
    const { jobId: id } = (await own.enqueue({ ...issue, deliveryId: 's-2' })) as { jobId: string };
    // Take the job as a worker would, so its state is active.
    const worker = new Worker('agent-run', null, { connection: bullConnection(server.url), prefix: 'stoptest' });
    const taken = await worker.getNextJob('tok');
    expect(taken?.id).toBe(id);
    expect(await own.requestStop('issue', issue, 'maintainer')).toEqual({ kind: 'stopping', jobId: id });
    expect(await own.stopRequestedBy(id)).toBe('maintainer');
    await own.clearStop(id);
    expect(await own.stopRequestedBy(id)).toBeUndefined();
    await worker.close();
    await own.close();
  });
});

describe('the branches a job may push', () => {
  it("are its own issue's, and for a revision only the app's issue branches", () => {
    const issue = { kind: 'issue' as const, issueNumber: 12 };
    expect(isOwnBranch(issue, branchName(12, 'Fix the parser: handle “quotes”'))).toBe(true);
    expect(isOwnBranch(issue, 'agent/issue-12')).toBe(true);
    expect(isOwnBranch(issue, 'agent/wip/issue-12-attempt-3')).toBe(true);
    for (const other of [
      'deploy/prod',
      'main',
      'agent/issue-13-x',
      'agent/issue-120-x',
      'agent/wip/issue-13-attempt-1',
      'agent/issue-12-x/../../main',
      'refs/heads/main',
      'agent/issue-12-X',
      'agent/issue-12-x:main',
    ]) {
      expect(isOwnBranch(issue, other), other).toBe(false);
    }
    const revise = { kind: 'revise' as const, issueNumber: 40 };
    expect(isOwnBranch(revise, 'agent/issue-12-fix-the-parser')).toBe(true);
    expect(isOwnBranch(revise, 'agent/wip/issue-12-attempt-1')).toBe(false);
    expect(isOwnBranch(revise, 'release/1.x')).toBe(false);
  });
});

describe('CI-fix jobs', () => {
  const pr = { installationId: 7, owner: 'octo', repo: 'ci-demo', issueNumber: 31, sender: 'github-actions[bot]' };
  const sha1 = '1'.repeat(40);
  const sha2 = '2'.repeat(40);
  let delivery = 0;
  const red = (sha: string) => queue.enqueueCiFix({ ...pr, deliveryId: `ci-${++delivery}` }, sha);
  const finish = async (id: string, headSha: string) => {
    await queue.queue.remove(id);
    const attempt = Number(id.split('-').pop());
    return queue.finishCiFix({ ...pr, kind: 'ci-fix', prNumber: 31, attempt, deliveryId: 'x', headSha });
  };

  it('adds one job per head commit, one at a time per pull request', async () => {
    const first = await red(sha1);
    expect(first).toMatchObject({ kind: 'enqueued', jobId: 'octo/ci-demo/pulls/31/ci-fix-1' });
    expect(await red(sha1)).toEqual({ kind: 'handled' });
    expect(await red(sha2)).toMatchObject({ kind: 'busy' });
    // The newest red head waits for the running job, and is answered when it ends.
    expect(await finish('octo/ci-demo/pulls/31/ci-fix-1', sha1)).toEqual({ next: 'octo/ci-demo/pulls/31/ci-fix-2' });
    expect(await finish('octo/ci-demo/pulls/31/ci-fix-2', sha2)).toEqual({});
    expect(await red(sha2)).toEqual({ kind: 'handled' });
  });

  it('adds one more for the same commit only after its checks were re-run', async () => {
    await queue.recordCi(pr, { kind: 'rerun', on: sha2, checks: ['test (windows)'] });
    await queue.recordCi(pr, { kind: 'rerun', on: sha2, checks: ['test (windows)'] });
    const again = await red(sha2);
    expect(again).toMatchObject({ kind: 'enqueued', attempt: 3 });
    await finish((again as { jobId: string }).jobId, sha2);
    expect(await red(sha2)).toEqual({ kind: 'handled' });
    expect((await queue.ciState(pr)).reruns).toEqual([`${sha2}:test (windows)`]);
  });

  it('counts fixes, announces green once per commit, and adds nothing once stopped', async () => {
    await queue.recordCi(pr, { kind: 'fixing', on: sha1, fingerprints: [{ fp: 'abc', check: 'lint' }] });
    // A resumed job records its attempt again: it counts once.
    await queue.recordCi(pr, { kind: 'fixing', on: sha1, fingerprints: [{ fp: 'abc', check: 'lint' }] });
    expect(await queue.ciGreen(pr, sha2)).toMatchObject({ fixes: 1, jobs: 3, last: 'fixed' });
    expect((await queue.ciState(pr)).fingerprints).toEqual([]);
    expect(await queue.ciGreen(pr, sha2)).toBeUndefined();
    await queue.recordCi(pr, { kind: 'stopped', why: 'escalated' });
    expect(await red('3'.repeat(40))).toEqual({ kind: 'stopped', why: 'escalated' });
  });

  it('answers a red head that came while a job held the branch once that job ends', async () => {
    const other = { ...pr, issueNumber: 33 };
    const first = await queue.enqueueCiFix({ ...other, deliveryId: 'q-1' }, sha1);
    expect(first).toMatchObject({ kind: 'enqueued' });
    expect(await queue.enqueueCiFix({ ...other, deliveryId: 'q-2' }, sha2)).toMatchObject({ kind: 'busy' });
    const id = (first as { jobId: string }).jobId;
    await queue.queue.remove(id);
    const ended = { ...other, kind: 'ci-fix' as const, prNumber: 33, attempt: 1, deliveryId: 'q-1', headSha: sha1 };
    const { next } = await queue.finishCiFix(ended);
    expect(next).toBe('octo/ci-demo/pulls/33/ci-fix-2');
    expect((await queue.queue.getJob(next!))?.data).toMatchObject({ headSha: sha2 });
  });

  it('/agent stop removes a queued CI fix and frees the pull request', async () => {
    const other = { ...pr, issueNumber: 34 };
    const queued = await queue.enqueueCiFix({ ...other, deliveryId: 'ci-stop-1' }, sha1);
    expect(queued).toMatchObject({ kind: 'enqueued' });
    expect(await queue.requestStop('ci-fix', other, 'maintainer')).toEqual({
      kind: 'removed',
      jobId: (queued as { jobId: string }).jobId,
    });
    expect(await queue.requestStop('ci-fix', other, 'maintainer')).toEqual({ kind: 'nothing-running' });
    // A revise job holds the branch too: a red head waits for it.
    await queue.enqueueRevise({
      ...other,
      sender: 'maintainer',
      deliveryId: 's-2',
      feedback: { sender: 'maintainer' },
    });
    expect(await queue.enqueueCiFix({ ...other, deliveryId: 'ci-stop-3' }, sha2)).toMatchObject({ kind: 'busy' });
  });

  it('gives back an attempt that pushed nothing, and counts a failure as back only after a pushed fix', async () => {
    const other = { ...pr, issueNumber: 35 };
    const fp = [{ fp: 'f00', check: 'lint' }];
    await queue.recordCi(other, { kind: 'fixing', on: sha1, fingerprints: fp });
    await queue.recordCi(other, { kind: 'abandoned', on: sha1 });
    expect(await queue.ciState(other)).toMatchObject({ fixes: 0, fingerprints: [] });
    await queue.recordCi(other, { kind: 'fixing', on: sha1, fingerprints: fp });
    expect((await queue.ciState(other)).fingerprints[0]).toMatchObject({ fp: 'f00', pushed: false });
    await queue.recordCi(other, { kind: 'pushed', on: sha1 });
    // A pushed fix is not given back.
    await queue.recordCi(other, { kind: 'abandoned', on: sha1 });
    expect(await queue.ciState(other)).toMatchObject({
      fixes: 1,
      fingerprints: [{ fp: 'f00', sha: sha1, pushed: true }],
    });
  });

  it('stops the watch when its record in Redis does not parse', async () => {
    const other = { ...pr, issueNumber: 32 };
    await redis.set('test:ci-fix-state:octo/ci-demo#32', '{"fixes":-5}');
    expect(await queue.ciState(other)).toMatchObject({ stopped: 'its CI record in Redis could not be read' });
  });

  it("a writer's review or retry hands the pull request back: the watch starts afresh", async () => {
    await queue.enqueueRevise({
      ...pr,
      sender: 'maintainer',
      deliveryId: 'rev-1',
      feedback: { sender: 'maintainer', text: 'go' },
    });
    const state = await queue.ciState(pr);
    expect(state.fixes).toBe(0);
    expect(state.stopped).toBeUndefined();
  });
});
