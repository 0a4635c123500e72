import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../test/helpers/redis.js';
import { redisAnswers, startRedisServer } from './redis.js';

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
