import { describe, expect, it } from 'vitest';
import { startScenario } from './harness.js';

/**
 * Redis is not a trust root: the real app process refuses to start on a Redis that runs
 * commands without a password, saying how to set one, unless the operator allows it.
 */
describe('a Redis without a password', () => {
  it('stops the app at start, naming the fix', async () => {
    const failed = await startScenario({ redisNoPassword: true }).then(
      async (s) => {
        await s.stop();
        return undefined;
      },
      (err: unknown) => (err as Error).message,
    );
    expect(failed).toBeDefined();
    expect(failed).toMatch(
      /REDIS_ALLOW_NO_AUTH: the Redis at redis:\/\/127\.0\.0\.1:\d+ runs commands without a password/,
    );
    expect(failed).toContain('requirepass');
    expect(failed).toContain('REDIS_ALLOW_NO_AUTH=1');
  }, 90_000);

  it('is used when the operator sets REDIS_ALLOW_NO_AUTH=1, with a warning', async () => {
    const s = await startScenario({ redisNoPassword: true, env: { REDIS_ALLOW_NO_AUTH: '1' } });
    try {
      expect((await fetch(`${s.appUrl}/healthz`)).status).toBe(200);
      expect(s.logs()).toContain('REDIS_ALLOW_NO_AUTH=1: the app runs on a Redis without a password');
    } finally {
      await s.stop();
    }
  }, 90_000);
});
