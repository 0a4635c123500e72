import { RecordSeal } from './record-seal.js';
import { describe, expect, it } from 'vitest';
import { useTestRedis } from '../../test/helpers/redis.js';
import { RedisStageStore } from './stage-store.js';

const t = useTestRedis();
const seal = RecordSeal.ephemeral();

describe('stage checkpoints', () => {
  it('keeps each finished stage of a job, and drops only a damaged field', async () => {
    const store = new RedisStageStore(t.redis, seal, 'st');
    expect(await store.load('o/r/issues/1/attempt-1')).toEqual({});
    await store.save('o/r/issues/1/attempt-1', 'scope', { acceptanceCriteria: ['npm test passes'] });
    await store.save('o/r/issues/1/attempt-1', 'pushed', {
      sha: 'a'.repeat(40),
      branch: 'agent/issue-1-x',
      stat: ' 1 file changed',
    });
    expect(await store.load('o/r/issues/1/attempt-1')).toEqual({
      scope: { acceptanceCriteria: ['npm test passes'] },
      pushed: { sha: 'a'.repeat(40), branch: 'agent/issue-1-x', stat: ' 1 file changed' },
    });
    // Another job's checkpoints are its own.
    expect(await store.load('o/r/issues/1/attempt-2')).toEqual({});
    // Sealed but damaged, or no longer fitting the schema: only that stage is lost.
    await t.redis.hset(
      'st:stages:o/r/issues/1/attempt-1',
      'plan',
      seal.seal('stage:plan', 'o/r/issues/1/attempt-1', '{"summary": 3}'),
    );
    await t.redis.hset(
      'st:stages:o/r/issues/1/attempt-1',
      'replied',
      seal.seal('stage:replied', 'o/r/issues/1/attempt-1', 'not json'),
    );
    const loaded = await store.load('o/r/issues/1/attempt-1');
    expect(Object.keys(loaded).sort()).toEqual(['pushed', 'scope']);
    expect(await t.redis.ttl('st:stages:o/r/issues/1/attempt-1')).toBeGreaterThan(0);
  });

  it('refuses a checkpoint anyone but the app wrote, naming it, and that stage runs again', async () => {
    const errors: Array<Record<string, unknown>> = [];
    const store = new RedisStageStore(t.redis, seal, 'st', {
      error: (o: Record<string, unknown>) => void errors.push(o),
    } as never);
    const job = 'o/victim/issues/2/attempt-1';
    const key = `st:stages:${job}`;
    await store.save(job, 'scope', { acceptanceCriteria: ['x'] });
    const change = {
      round: 1,
      validated: true,
      patch: 'evil',
      baseSha: 'b'.repeat(40),
      summary: 's',
      touched: ['a'],
      scopeRequests: [],
      tried: [],
    };
    // What a process that reaches Redis would write: plain JSON, a seal made with another key,
    // and a genuine seal copied from another job's or another stage's record.
    await t.redis.hset(key, 'change', JSON.stringify(change));
    await t.redis.hset(
      key,
      'naming',
      RecordSeal.ephemeral().seal('stage:naming', job, JSON.stringify({ branch: 'deploy/prod', title: 'x' })),
    );
    await t.redis.hset(
      key,
      'pushed',
      seal.seal(
        'stage:pushed',
        'o/other/issues/2/attempt-1',
        JSON.stringify({ sha: 'a'.repeat(40), branch: 'deploy/prod', stat: '' }),
      ),
    );
    await t.redis.hset(key, 'plan', (await t.redis.hget(key, 'scope'))!);
    expect(await store.load(job)).toEqual({ scope: { acceptanceCriteria: ['x'] } });
    expect(errors.map((e) => e.stage).sort()).toEqual(['change', 'naming', 'plan', 'pushed']);
    expect(errors[0]).toMatchObject({ job, key });
  });
});
