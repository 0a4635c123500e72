import { describe, expect, it } from 'vitest';
import { Limiter } from './limiter.js';

describe('Limiter', () => {
  it('runs at most max tasks at once, the rest in order as turns free up, past failures', async () => {
    const limit = new Limiter(2);
    const started: number[] = [];
    const release = new Map<number, () => void>();
    const task =
      (n: number, fail = false) =>
      () =>
        new Promise<number>((resolve, reject) => {
          started.push(n);
          release.set(n, () => (fail ? reject(new Error(`task ${n} fails`)) : resolve(n)));
        });
    const runs = [limit.run(task(1, true)), limit.run(task(2)), limit.run(task(3)), limit.run(task(4))];
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2]);
    expect(limit.size).toEqual({ running: 2, waiting: 2 });
    release.get(1)!();
    await expect(runs[0]).rejects.toThrow('task 1 fails');
    await new Promise((r) => setImmediate(r));
    // The failed task's turn went to the next one: still two at once, never three.
    expect(started).toEqual([1, 2, 3]);
    expect(limit.size).toEqual({ running: 2, waiting: 1 });
    release.get(2)!();
    release.get(3)!();
    await Promise.all(runs.slice(1, 3));
    await new Promise((r) => setImmediate(r));
    expect(started).toEqual([1, 2, 3, 4]);
    release.get(4)!();
    expect(await runs[3]).toBe(4);
    expect(limit.size).toEqual({ running: 0, waiting: 0 });
  });
});
