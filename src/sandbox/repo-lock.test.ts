import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/git-fixtures.js';
import { withFileLock } from './repo-lock.js';

describe('the mirror lock across processes', () => {
  it('makes another process wait until the holder is done, and frees the lock when the holder dies', async () => {
    const tmp = tempDir('lock');
    try {
      const lock = path.join(tmp.dir, 'm.git.lock');
      const order: string[] = [];
      // Another process takes the lock first and holds it until told to exit.
      const other = spawn('flock', ['-x', lock, 'sh', '-c', 'echo held; exec cat >/dev/null'], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      await new Promise<void>((r) => other.stdout.on('data', () => r()));
      const ours = withFileLock(lock, async () => {
        order.push('ours');
      });
      await new Promise((r) => setTimeout(r, 300));
      order.push('other still holds it');
      // The holder dies without releasing: the kernel frees the lock.
      other.kill('SIGKILL');
      await ours;
      expect(order).toEqual(['other still holds it', 'ours']);
      // And it is free again for the next one.
      expect(await withFileLock(lock, async () => 'again')).toBe('again');
    } finally {
      tmp.cleanup();
    }
  });

  it('names the lock when it cannot be taken in time', async () => {
    const tmp = tempDir('lock2');
    try {
      const lock = path.join(tmp.dir, 'busy.lock');
      const other = spawn('flock', ['-x', lock, 'sh', '-c', 'echo held; exec cat >/dev/null'], {
        stdio: ['pipe', 'pipe', 'ignore'],
      });
      await new Promise<void>((r) => other.stdout.on('data', () => r()));
      await expect(withFileLock(lock, async () => 'never', 1)).rejects.toThrow(/could not lock .*busy\.lock within 1s/);
      other.kill('SIGKILL');
    } finally {
      tmp.cleanup();
    }
  });
});
