import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { useTestRedis } from '../../test/helpers/redis.js';
import { Inbox, type Drainer } from './inbox.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const Item = z.strictObject({ at: z.number(), thread: z.string(), n: z.number() });
type Item = z.infer<typeof Item>;
const log = pino({ level: 'silent' });

const t = useTestRedis();

const until = async (check: () => boolean | Promise<boolean>, what: string, ms = 10_000) => {
  for (const end = Date.now() + ms; !(await check()); ) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('inbox', () => {
  it('handles the items of one thread in order, and other threads meanwhile', async () => {
    const inbox = new Inbox<Item>(t.redis, Item, { prefix: 'order', log });
    const seen: string[] = [];
    let releaseA!: () => void;
    const aHeld = new Promise<void>((r) => (releaseA = r));
    const drainer = await inbox.drain(
      async (item) => {
        if (item.thread === 'a' && item.n === 1) await aHeld;
        seen.push(`${item.thread}${item.n}`);
      },
      (item) => item.thread,
    );
    for (const [thread, n] of [
      ['a', 1],
      ['a', 2],
      ['b', 1],
      ['a', 3],
      ['b', 2],
    ] as const)
      await inbox.push({ at: Date.now(), thread, n });
    // Thread a is held at its first item: b goes on, a waits in order.
    await until(() => seen.length === 2, 'thread b');
    expect(seen).toEqual(['b1', 'b2']);
    releaseA();
    await until(() => seen.length === 5, 'thread a');
    expect(seen).toEqual(['b1', 'b2', 'a1', 'a2', 'a3']);
    expect(await inbox.depth()).toEqual({ waiting: 0, handling: 0, dead: 0 });
    await drainer.stop();
  });

  it('tries a failing item again, then moves it to the dead list', async () => {
    const outcomes: string[] = [];
    const inbox = new Inbox<Item>(t.redis, Item, {
      prefix: 'dead',
      log,
      retryDelaysMs: [10, 10],
      onHandled: (o) => outcomes.push(o),
    });
    let tries = 0;
    const drainer = await inbox.drain(
      async (item) => {
        if (item.thread === 'bad') {
          tries++;
          throw new Error('GitHub is down');
        }
      },
      (item) => item.thread,
    );
    await inbox.push({ at: Date.now(), thread: 'bad', n: 1 });
    await t.redis.rpush('dead:inbox', '{"not": "an item"}');
    await inbox.push({ at: Date.now(), thread: 'good', n: 1 });
    await until(async () => (await inbox.depth()).dead === 2 && outcomes.length === 2, 'the dead list');
    expect(tries).toBe(3);
    expect(outcomes.sort()).toEqual(['dead', 'done']);
    expect(await inbox.depth()).toEqual({ waiting: 0, handling: 0, dead: 2 });
    await drainer.stop();
  });

  it('puts back what a stopping drainer could not finish, without another try', async () => {
    const lines: string[] = [];
    const captured = pino({ level: 'warn' }, { write: (l: string) => void lines.push(l) });
    const inbox = new Inbox<Item>(t.redis, Item, { prefix: 'stop', log: captured, retryDelaysMs: [60_000] });
    let calls = 0;
    const drainer = await inbox.drain(
      async () => {
        if (++calls === 1) throw new Error('Redis blip');
      },
      (item) => item.thread,
    );
    await inbox.push({ at: Date.now(), thread: 'a', n: 1 });
    // The item waits for its next try, a minute away: stopping ends the wait, tries no more,
    // and puts it back.
    await until(() => lines.some((l) => l.includes('trying again')), 'the retry wait');
    await drainer.stop();
    expect(calls).toBe(1);
    expect(await inbox.depth()).toEqual({ waiting: 1, handling: 0, dead: 0 });
    // A stop is not a death: it counts nothing against the item.
    expect(await t.redis.hlen('stop:inbox:reclaims')).toBe(0);
    const seen: number[] = [];
    const next = await inbox.drain(
      async (item) => void seen.push(item.n),
      (item) => item.thread,
    );
    await until(() => seen.length === 1, 'the item again');
    await next.stop();
    expect(await t.redis.smembers('stop:inbox:drainers')).toEqual([]);
  });

  it('hands the items of a drainer that died to another', async () => {
    // A real process takes an item and is killed (SIGKILL) while it handles it.
    const script = `
      import { Redis } from 'ioredis';
      import { pino } from 'pino';
      import { z } from 'zod';
      import { Inbox } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/queue/inbox.ts')).href)};
      const redis = new Redis(process.env.URL, { maxRetriesPerRequest: null });
      const inbox = new Inbox(redis, z.object({ at: z.number(), thread: z.string(), n: z.number() }), { prefix: 'crash', log: pino({ level: 'silent' }), heartbeatMs: 300 });
      await inbox.drain(async () => { console.log('holding'); await new Promise(() => {}); }, (i) => i.thread);
    `;
    const inbox = new Inbox<Item>(t.redis, Item, { prefix: 'crash', log, heartbeatMs: 300 });
    await inbox.push({ at: Date.now(), thread: 'a', n: 1 });
    const child = spawn(
      process.execPath,
      [
        '--import',
        pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
        '--input-type=module',
        '-e',
        script,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, URL: t.server.url },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => d.toString().includes('holding') && resolve());
      child.once('exit', (code) => reject(new Error(`the drainer exited early (${code})`)));
    });
    const seen: Item[] = [];
    let drainer: Drainer | undefined;
    try {
      expect(await inbox.depth()).toEqual({ waiting: 0, handling: 1, dead: 0 });
      child.kill('SIGKILL');
      drainer = await inbox.drain(
        async (item) => void seen.push(item),
        (item) => item.thread,
      );
      await until(() => seen.length === 1, "the dead drainer's item");
      expect(seen[0]!.n).toBe(1);
      await until(async () => (await t.redis.scard('crash:inbox:drainers')) === 1, 'the dead drainer forgotten');
      expect(await inbox.depth()).toEqual({ waiting: 0, handling: 0, dead: 0 });
    } finally {
      child.kill('SIGKILL');
      await drainer?.stop();
    }
  });

  it('an item whose work kills its drainer goes to the dead list after three more drainers died on it; one held with it is done', async () => {
    // Real processes, one at a time, each killing itself (SIGKILL) when it handles the item.
    const script = `
      import { Redis } from 'ioredis';
      import { pino } from 'pino';
      import { z } from 'zod';
      import { Inbox } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/queue/inbox.ts')).href)};
      const redis = new Redis(process.env.URL, { maxRetriesPerRequest: null });
      const inbox = new Inbox(redis, z.object({ at: z.number(), thread: z.string(), n: z.number() }), { prefix: 'poison', log: pino({ level: 'silent' }), heartbeatMs: 300 });
      await inbox.drain(async (item) => {
        if (item.n === 1) process.kill(process.pid, 'SIGKILL');
        await new Promise((r) => setTimeout(r, 300));
        await redis.rpush('poison:handled', String(item.n));
      }, (i) => i.thread);
      console.log('draining');
    `;
    const inbox = new Inbox<Item>(t.redis, Item, { prefix: 'poison', log });
    const poison = { at: Date.now(), thread: 'a', n: 1 };
    // Another thread's item, still in hand when the first drainer dies: it is done, not dead-listed.
    await inbox.push({ at: Date.now(), thread: 'b', n: 2 });
    await inbox.push(poison);
    let died = 0;
    let survivor: ReturnType<typeof spawn> | undefined;
    try {
      for (let started = 0; started < 6 && (await inbox.depth()).dead === 0; started++) {
        const child = spawn(
          process.execPath,
          [
            '--import',
            pathToFileURL(path.join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href,
            '--input-type=module',
            '-e',
            script,
          ],
          {
            cwd: ROOT,
            env: { ...process.env, URL: t.server.url },
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
        survivor = child;
        // Each one either dies on the item or, once the item is dead, drains on.
        const signal = await new Promise<NodeJS.Signals | null>((resolve) => {
          child.once('exit', (_code, sig) => resolve(sig));
          void until(async () => (await inbox.depth()).dead === 1, 'the item in the dead list', 20_000).then(
            () => resolve(null),
            () => resolve(null),
          );
        });
        if (signal === 'SIGKILL') died++;
      }
      expect(await inbox.deadItems()).toEqual([JSON.stringify(poison)]);
      expect(await t.redis.lrange('poison:handled', 0, -1)).toEqual(['2']);
      // The first drainer took it from the inbox; three more got it back and died; the fifth sent it to the dead list.
      expect(died).toBe(4);
      expect(await inbox.depth()).toEqual({ waiting: 0, handling: 0, dead: 1 });
      expect(await t.redis.hlen('poison:inbox:reclaims')).toBe(0);
    } finally {
      survivor?.kill('SIGKILL');
    }
  });

  it('a drainer given up for dead while alive registers again, and what it takes later stays known', async () => {
    const inbox = new Inbox<Item>(t.redis, Item, { prefix: 'lapse', log, heartbeatMs: 300 });
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const seen: number[] = [];
    const drainer = await inbox.drain(
      async (item) => {
        if (item.n === 2) await held;
        seen.push(item.n);
      },
      (item) => item.thread,
    );
    try {
      const [id] = await t.redis.smembers('lapse:inbox:drainers');
      // A pause past its heartbeat (a long GC, a blocked loop): another process gives it up.
      await t.redis.del(`lapse:inbox:alive:${id}`);
      expect(await new Inbox<Item>(t.redis, Item, { prefix: 'lapse', log }).reclaim()).toBe(0);
      expect(await t.redis.smembers('lapse:inbox:drainers')).toEqual([]);
      await until(
        async () => (await t.redis.sismember('lapse:inbox:drainers', id!)) === 1,
        'the drainer registered again',
      );
      // An item it takes now is counted as handled by a known drainer, so a crash would give it back.
      await inbox.push({ at: Date.now(), thread: 'a', n: 2 });
      await until(async () => (await inbox.depth()).handling === 1, 'the item in hand');
      // An item in its own list that it never got the answer for (a reconnect lost the reply).
      await t.redis.rpush(`lapse:inbox:processing:${id}`, JSON.stringify({ at: Date.now(), thread: 'b', n: 3 }));
      await until(() => seen.includes(3), 'the orphaned item handled');
      release();
      await until(() => seen.length === 2, 'both items');
      expect(seen.sort()).toEqual([2, 3]);
      expect(await inbox.depth()).toEqual({ waiting: 0, handling: 0, dead: 0 });
    } finally {
      release();
      await drainer.stop();
    }
  });
});
