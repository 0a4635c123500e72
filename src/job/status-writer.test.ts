import { describe, expect, it } from 'vitest';
import { StatusWriter, type StatusWriterDeps } from './status-writer.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface Call {
  op: 'create' | 'update';
  id: number;
  body: string;
}

/**
 * The GitHub edge as the writer sees it: records every write, counts how many are in flight
 * at once, and can hold a write open or fail it.
 */
function fakeComments(opts: { id?: number; delayMs?: () => number } = {}) {
  const calls: Call[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  let held: Array<() => void> | undefined;
  let failures: Error[] = [];
  const id = opts.id ?? 41;
  const write = async (call: Call) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      if (held) await new Promise<void>((resolve) => held!.push(resolve));
      const delay = opts.delayMs?.() ?? 0;
      if (delay > 0) await sleep(delay);
      const failure = failures.shift();
      if (failure) throw failure;
      calls.push(call);
    } finally {
      inFlight--;
    }
  };
  const deps: Pick<StatusWriterDeps, 'create' | 'update'> = {
    create: async (body) => {
      await write({ op: 'create', id, body });
      return id;
    },
    update: (commentId, body) => write({ op: 'update', id: commentId, body }),
  };
  return {
    deps,
    calls,
    bodies: () => calls.map((c) => c.body),
    maxInFlight: () => maxInFlight,
    /** Holds every write until `release()`. */
    hold: () => {
      held = [];
    },
    release: () => {
      const waiting = held ?? [];
      held = undefined;
      for (const go of waiting) go();
    },
    failNext: (...errors: Error[]) => {
      failures = [...failures, ...errors];
    },
  };
}

describe('StatusWriter', () => {
  it('creates the comment once, then edits that comment', async () => {
    const gh = fakeComments({ id: 7 });
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 5 });
    expect(w.commentId).toBeUndefined();
    w.update('scoping');
    await w.idle();
    w.update('planning');
    await w.idle();
    await w.flush('done');
    expect(gh.calls).toEqual([
      { op: 'create', id: 7, body: 'scoping' },
      { op: 'update', id: 7, body: 'planning' },
      { op: 'update', id: 7, body: 'done' },
    ]);
    expect(w.commentId).toBe(7);
    expect(w.writes).toBe(3);
  });

  it('edits an existing comment without making one', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, existingId: 99, minIntervalMs: 5 });
    w.update('coding');
    await w.idle();
    expect(gh.calls).toEqual([{ op: 'update', id: 99, body: 'coding' }]);
    expect(w.commentId).toBe(99);
  });

  it('writes the first body at once and coalesces rapid updates into the latest', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 50 });
    for (let i = 1; i <= 10; i++) w.update(`body ${i}`);
    await w.idle();
    const bodies = gh.bodies();
    expect(bodies[0]).toBe('body 1');
    expect(bodies.at(-1)).toBe('body 10');
    expect(bodies.length).toBeLessThanOrEqual(3);
    expect(w.writes).toBe(bodies.length);
  });

  it('does not send a body GitHub already holds', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 5 });
    w.update('a');
    await w.idle();
    w.update('a');
    await w.idle();
    // A change and its undo between two writes cost nothing either.
    w.update('b');
    w.update('a');
    await w.idle();
    await w.flush('a');
    await w.flush();
    expect(gh.bodies()).toEqual(['a']);
    expect(w.writes).toBe(1);
  });

  it('never has two writes in flight and never sends an older body after a newer one', async () => {
    const gh = fakeComments({ delayMs: () => Math.floor(Math.random() * 4) });
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 2 });
    for (let i = 0; i < 40; i++) {
      w.update(`body ${i}`);
      if (i % 7 === 0) await sleep(Math.floor(Math.random() * 6));
      if (i === 25) await w.flush(`body ${i}`);
    }
    await w.idle();
    const order = gh.bodies().map((b) => Number(b.split(' ')[1]));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(new Set(order).size).toBe(order.length);
    expect(order.at(-1)).toBe(39);
    expect(gh.maxInFlight()).toBe(1);
  });

  it('flushes after the write in flight, and before a scheduled one', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 40 });
    gh.hold();
    w.update('validating');
    w.update('delivering'); // waits for the interval
    let flushed = false;
    const flush = w.flush('done').then(() => {
      flushed = true;
    });
    await sleep(5);
    expect(flushed).toBe(false);
    expect(gh.bodies()).toEqual([]);
    gh.release();
    await flush;
    expect(gh.bodies()).toEqual(['validating', 'done']);
    // The scheduled body was dropped: the terminal one is newer.
    await sleep(60);
    await w.idle();
    expect(gh.bodies()).toEqual(['validating', 'done']);
    expect(gh.maxInFlight()).toBe(1);
  });

  it('cancels the pending timer on flush', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 30 });
    w.update('a');
    await sleep(1);
    w.update('b');
    await w.flush();
    expect(gh.bodies()).toEqual(['a', 'b']);
    // Nothing is left scheduled: idle answers on the next microtask, not after the interval.
    let idle = false;
    void w.idle().then(() => {
      idle = true;
    });
    await Promise.resolve();
    expect(idle).toBe(true);
    await sleep(45);
    expect(gh.bodies()).toEqual(['a', 'b']);
  });

  it('resolves each of two overlapping flushes once the later body is written', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 1000 });
    const first = w.flush('stuck');
    const second = w.flush('stuck, with the report link');
    await Promise.all([first, second]);
    expect(gh.bodies()).toEqual(['stuck', 'stuck, with the report link']);
  });

  it('reports a failed scheduled write to onError and goes on', async () => {
    const gh = fakeComments();
    const errors: unknown[] = [];
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 5, onError: (err) => errors.push(err) });
    gh.failNext(new Error('502 from GitHub'));
    expect(() => w.update('scoping')).not.toThrow();
    await w.idle();
    expect(errors).toHaveLength(1);
    expect((errors[0] as Error).message).toBe('502 from GitHub');
    expect(w.commentId).toBeUndefined();
    expect(w.writes).toBe(0);
    // The same body again is sent: it never reached GitHub.
    w.update('scoping');
    await w.idle();
    expect(gh.calls).toEqual([{ op: 'create', id: 41, body: 'scoping' }]);
    expect(w.writes).toBe(1);
  });

  it('survives an onError that throws', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({
      ...gh.deps,
      minIntervalMs: 5,
      onError: () => {
        throw new Error('logger broke');
      },
    });
    gh.failNext(new Error('boom'));
    w.update('a');
    await w.idle();
    w.update('b');
    await w.idle();
    expect(gh.bodies()).toEqual(['b']);
  });

  it('rejects a failed flush, without calling onError', async () => {
    const gh = fakeComments();
    const errors: unknown[] = [];
    const w = new StatusWriter({ ...gh.deps, existingId: 3, minIntervalMs: 5, onError: (err) => errors.push(err) });
    gh.failNext(new Error('403 rate limited'));
    await expect(w.flush('done')).rejects.toThrow('403 rate limited');
    expect(errors).toEqual([]);
    // A flush without a body retries the latest one.
    await w.flush();
    expect(gh.calls).toEqual([{ op: 'update', id: 3, body: 'done' }]);
  });

  it('ignores updates after close and drops the scheduled one', async () => {
    const gh = fakeComments();
    const w = new StatusWriter({ ...gh.deps, minIntervalMs: 20 });
    w.update('a');
    await sleep(1);
    w.update('b');
    w.close();
    w.update('c');
    await w.idle();
    await sleep(30);
    expect(gh.bodies()).toEqual(['a']);
  });
});
