import { describe, expect, it } from 'vitest';
import { useTestRedis } from '../../test/helpers/redis.js';
import { RedisStageStore } from './stage-store.js';

const t = useTestRedis();

describe('stage checkpoints', () => {
  it('keeps each finished stage of a job, and drops only a damaged field', async () => {
    const store = new RedisStageStore(t.redis, 'st');
    expect(await store.load('o/r/issues/1/attempt-1')).toEqual({});
    await store.save('o/r/issues/1/attempt-1', 'scope', { acceptanceCriteria: ['npm test passes'] });
    await store.save('o/r/issues/1/attempt-1', 'pushed', { sha: 'a'.repeat(40), branch: 'agent/issue-1-x', stat: ' 1 file changed' });
    expect(await store.load('o/r/issues/1/attempt-1')).toEqual({
      scope: { acceptanceCriteria: ['npm test passes'] },
      pushed: { sha: 'a'.repeat(40), branch: 'agent/issue-1-x', stat: ' 1 file changed' },
    });
    // Another job's checkpoints are its own.
    expect(await store.load('o/r/issues/1/attempt-2')).toEqual({});
    await t.redis.hset('st:stages:o/r/issues/1/attempt-1', 'plan', '{"summary": 3}');
    await t.redis.hset('st:stages:o/r/issues/1/attempt-1', 'replied', 'not json');
    const loaded = await store.load('o/r/issues/1/attempt-1');
    expect(Object.keys(loaded).sort()).toEqual(['pushed', 'scope']);
    expect(await t.redis.ttl('st:stages:o/r/issues/1/attempt-1')).toBeGreaterThan(0);
  });
});
