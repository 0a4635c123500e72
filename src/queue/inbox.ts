import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { KeyedSerial } from '../util/keyed-serial.js';

// Puts every item a dead drainer held back (oldest first), unless its heartbeat came back
// meanwhile; then forgets the drainer. Without a limit (ARGV[2] = 0: a drainer that
// stopped) they go to the head of the inbox. With one, each item's reclaims are counted:
// it goes to the "again" list, whose items drainers handle one at a time (so the one whose
// work kills the process is found, and the others held with it are done), or, held by
// more dead drainers than the limit, to the dead list. Answers how many went back, then
// the items that went to the dead list; -1 when the drainer is alive.
// Records an item unless the same content was recorded under another owner (a delivery id)
// within the TTL: a signed body replayed under a new delivery id is recorded once.
const PUSH_ONCE = `
local set = redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[3])
if not set and redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
return 1
`;

const RECLAIM = `
if redis.call('exists', KEYS[3]) == 1 then return {-1} end
local limit = tonumber(ARGV[2])
local back, dead = 0, {}
while true do
  local raw = redis.call('rpop', KEYS[1])
  if not raw then break end
  if limit == 0 then
    redis.call('lpush', KEYS[2], raw)
    back = back + 1
  elseif redis.call('hincrby', KEYS[6], raw, 1) > limit then
    redis.call('hdel', KEYS[6], raw)
    redis.call('rpush', KEYS[5], raw)
    table.insert(dead, raw)
  else
    redis.call('lpush', KEYS[7], raw)
    back = back + 1
  end
end
redis.call('srem', KEYS[4], ARGV[1])
return {back, unpack(dead)}`;

/** Dead drainers an item may outlive; the next one that dies holding it sends it to the dead list. */
const MAX_RECLAIMS = 3;

interface InboxCommands {
  agentInboxPushOnce(inbox: string, seen: string, item: string, owner: string, ttlS: number): Promise<number>;
  agentInboxReclaim(
    processing: string,
    inbox: string,
    alive: string,
    drainers: string,
    dead: string,
    reclaims: string,
    again: string,
    id: string,
    limit: number,
  ): Promise<[number, ...string[]]>;
}

export interface InboxOptions {
  /** Key prefix, the app's (`issue-agent`) unless a test keeps its own. */
  prefix?: string;
  log: Logger;
  /** A drainer whose heartbeat is older than this is dead, and the items it held go back (default 30 s). */
  heartbeatMs?: number;
  /** Items handled at once by one drainer; items of one thread always run in order (default 8). */
  concurrency?: number;
  /** Waits before each new try of an item whose handling threw; after the last, it goes to the dead list. */
  retryDelaysMs?: number[];
  /** Called when an item is done, with how long it waited since it was pushed. */
  onHandled?: (outcome: 'done' | 'dead', seconds: number) => void;
}

export interface InboxItemBase {
  /** When the web pushed it (ms since the epoch). */
  at: number;
}

export interface Drainer {
  /** Stops taking items, waits (bounded by the caller) for the ones in hand, and puts back any left. */
  stop(): Promise<void>;
}

/**
 * A durable hand-off from the webhook's answer to the work behind it. The web answers once
 * its item is in Redis (one RPUSH), so the answer waits on nothing slower than that; a
 * drainer in each web process then moves items one at a time into a list of its own
 * (LMOVE), does the work, and removes them. A drainer that dies keeps its heartbeat no
 * longer: its items go back to the inbox for another (or its own restart) to do. The
 * work must therefore be safe to do twice; the queue's is, per delivery id.
 */
export class Inbox<T extends InboxItemBase> {
  private readonly inboxKey: string;
  private readonly deadKey: string;
  private readonly drainersKey: string;
  /** How many dead drainers held each item (by its text), for items that outlived one. */
  private readonly reclaimsKey: string;
  /** Items a dead drainer held, to be handled one at a time before the inbox's. */
  private readonly againKey: string;
  private readonly seenPrefix: string;

  constructor(
    private readonly redis: Redis,
    private readonly schema: z.ZodType<T>,
    private readonly opts: InboxOptions,
  ) {
    const prefix = opts.prefix ?? 'issue-agent';
    this.inboxKey = `${prefix}:inbox`;
    this.deadKey = `${prefix}:inbox:dead`;
    this.drainersKey = `${prefix}:inbox:drainers`;
    this.reclaimsKey = `${prefix}:inbox:reclaims`;
    this.againKey = `${prefix}:inbox:again`;
    redis.defineCommand('agentInboxReclaim', { numberOfKeys: 7, lua: RECLAIM });
    redis.defineCommand('agentInboxPushOnce', { numberOfKeys: 2, lua: PUSH_ONCE });
    this.seenPrefix = `${prefix}:inbox:seen:`;
  }

  private processingKey(id: string): string {
    return `${this.inboxKey}:processing:${id}`;
  }

  private aliveKey(id: string): string {
    return `${this.inboxKey}:alive:${id}`;
  }

  /** Records an item; once this resolves, the item will be handled even if this process dies. */
  async push(item: T): Promise<void> {
    await this.redis.rpush(this.inboxKey, JSON.stringify(item));
  }

  /**
   * Records an item unless content with the same `digest` was recorded for another `owner`
   * in the last `ttlS` seconds (one round trip, like push). False when it was not recorded.
   * The same owner again (a webhook GitHub redelivers keeps its delivery id) is recorded.
   */
  async pushOnce(item: T, digest: string, owner: string, ttlS: number): Promise<boolean> {
    const done = await (this.redis as unknown as InboxCommands).agentInboxPushOnce(
      this.inboxKey,
      this.seenPrefix + digest,
      JSON.stringify(item),
      owner,
      ttlS,
    );
    return done === 1;
  }

  /** Items waiting, items being handled, and items that failed every try. */
  async depth(): Promise<{ waiting: number; handling: number; dead: number }> {
    const ids = await this.redis.smembers(this.drainersKey);
    const m = this.redis.multi().llen(this.inboxKey).llen(this.againKey).llen(this.deadKey);
    for (const id of ids) m.llen(this.processingKey(id));
    const counts = (await m.exec())!.map(([err, n]) => {
      if (err) throw err;
      return n as number;
    });
    return { waiting: counts[0]! + counts[1]!, dead: counts[2]!, handling: counts.slice(3).reduce((a, b) => a + b, 0) };
  }

  /** The items that failed every try, oldest first (at most `limit`). */
  async deadItems(limit = 100): Promise<string[]> {
    return this.redis.lrange(this.deadKey, 0, limit - 1);
  }

  /** Moves every item of the dead list back to the inbox, to be tried afresh. Answers how many. */
  async requeueDead(): Promise<number> {
    let n = 0;
    while ((await this.redis.lmove(this.deadKey, this.inboxKey, 'LEFT', 'RIGHT')) !== null) n++;
    return n;
  }

  /** Puts back what dead drainers held. Answers how many items went back. */
  async reclaim(): Promise<number> {
    let moved = 0;
    for (const id of await this.redis.smembers(this.drainersKey)) {
      if ((await this.redis.exists(this.aliveKey(id))) === 1) continue;
      const [n, ...dead] = await this.reclaimOf(id, this.aliveKey(id), MAX_RECLAIMS);
      if (n > 0)
        this.opts.log.warn(
          { drainer: id, items: n },
          'inbox: a drainer stopped answering; its items go back to the inbox',
        );
      for (const raw of dead) {
        this.opts.log.error(
          { drainer: id, item: raw.slice(0, 500), drainers: MAX_RECLAIMS + 1 },
          'inbox: an item whose drainer died every time it was handled goes to the dead list',
        );
        this.opts.onHandled?.('dead', this.ageOf(raw));
      }
      moved += Math.max(0, n);
    }
    return moved;
  }

  /** Seconds since an item was pushed (0 when it does not say). */
  private ageOf(raw: string): number {
    try {
      const at = (JSON.parse(raw) as { at?: unknown }).at;
      return typeof at === 'number' ? Math.max(0, (Date.now() - at) / 1000) : 0;
    } catch {
      return 0;
    }
  }

  /** Runs the reclaim script for one drainer; `limit` 0 puts everything back without counting. */
  private reclaimOf(id: string, alive: string, limit: number): Promise<[number, ...string[]]> {
    return (this.redis as unknown as InboxCommands).agentInboxReclaim(
      this.processingKey(id),
      this.inboxKey,
      alive,
      this.drainersKey,
      this.deadKey,
      this.reclaimsKey,
      this.againKey,
      id,
      limit,
    );
  }

  /**
   * Starts a drainer: `handle` runs for every item, in order for items with the same
   * `threadOf`, up to `concurrency` at once. An item whose handling throws is tried again
   * after each of `retryDelaysMs`, then moved to the dead list with the error logged.
   */
  async drain(handle: (item: T) => Promise<void>, threadOf: (item: T) => string): Promise<Drainer> {
    const { log } = this.opts;
    const heartbeatMs = this.opts.heartbeatMs ?? 30_000;
    const concurrency = this.opts.concurrency ?? 8;
    const delays = this.opts.retryDelaysMs ?? [1_000, 4_000, 15_000, 60_000];
    const id = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const mine = this.processingKey(id);
    const blocking = this.redis.duplicate();
    blocking.on('error', (err) => log.warn({ err: err.message }, 'inbox: redis connection error'));

    // Registers again on each beat: a drainer that was paused past its heartbeat (and given
    // up by another) is known again, so what it takes later is not lost if it dies.
    // Items in the "again" list wait: until it is empty, this drainer handles them one at a
    // time and nothing else. Set when a beat sees some, or when it put some there itself.
    let again = false;
    const beat = async () => {
      const [, , waiting] = (await this.redis
        .multi()
        .set(this.aliveKey(id), '1', 'PX', heartbeatMs)
        .sadd(this.drainersKey, id)
        .llen(this.againKey)
        .exec())!;
      if (Number(waiting?.[1]) > 0) again = true;
    };
    const reclaim = async () => {
      if ((await this.reclaim()) > 0) again = true;
    };
    await beat();
    await reclaim();
    // An item in this drainer's own list that it does not hold: taken by a command whose
    // answer a reconnect lost (ioredis sends it again, and the second takes the next item).
    // Seen at two beats in a row, it is started, so a reply still on its way is not raced.
    let suspects = new Set<string>();
    const adopt = async () => {
      const counts = new Map<string, number>();
      for (const raw of await this.redis.lrange(mine, 0, -1)) counts.set(raw, (counts.get(raw) ?? 0) + 1);
      const orphans = new Set<string>();
      for (const [raw, n] of counts) if (n > (held.get(raw) ?? 0) + (removing.get(raw) ?? 0)) orphans.add(raw);
      for (const raw of orphans) {
        if (!suspects.has(raw) || stopping) continue;
        log.warn('inbox: an item taken without its answer is handled now');
        start(raw);
      }
      suspects = orphans;
    };
    const timer = setInterval(
      () => {
        beat()
          .then(() => reclaim())
          .then(() => adopt())
          .catch((err: unknown) => log.warn({ err }, 'inbox: heartbeat failed'));
      },
      Math.max(50, Math.floor(heartbeatMs / 3)),
    );
    timer.unref();

    let stopping = false;
    // Retry waits in progress: stopping ends them at once.
    const sleepers = new Set<() => void>();
    const sleep = (ms: number) =>
      new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(t);
          sleepers.delete(wake);
          resolve();
        };
        const t = setTimeout(wake, ms);
        sleepers.add(wake);
      });
    const threads = new KeyedSerial();
    // Items in hand by their text (the same text may be in the list twice: a redelivery).
    const held = new Map<string, number>();
    let inHand = 0;
    let freed: (() => void) | undefined;

    const toDead = (raw: string) =>
      this.redis.multi().lrem(mine, 1, raw).hdel(this.reclaimsKey, raw).rpush(this.deadKey, raw).exec();

    // Done work leaves the list; if Redis refuses now, the next beats try again (`adopt`
    // skips items whose removal is pending), so the work itself never runs again for it.
    const removing = new Map<string, number>();
    const remove = async (raw: string) => {
      removing.set(raw, (removing.get(raw) ?? 0) + 1);
      for (let tries = 0; ; tries++) {
        try {
          // A command that fails inside MULTI does not reject EXEC: each reply is checked.
          for (const [err] of (await this.redis.multi().lrem(mine, 1, raw).hdel(this.reclaimsKey, raw).exec()) ?? [])
            if (err) throw err;
          break;
        } catch (err) {
          if (stopping || tries >= 5)
            return void log.warn(
              { err },
              'inbox: could not remove a done item; if it comes back, its work is done again (once per delivery)',
            );
          await sleep(1_000);
        }
      }
      const n = removing.get(raw)! - 1;
      if (n > 0) removing.set(raw, n);
      else removing.delete(raw);
    };

    const handleItem = async (raw: string, item: T): Promise<void> => {
      for (let tries = 0; ; tries++) {
        try {
          await handle(item);
        } catch (err) {
          // A stopping drainer leaves the item where it is: `stop` puts it back.
          if (stopping)
            return void log.warn({ err }, 'inbox: handling failed while stopping; the item goes back to the inbox');
          if (tries >= delays.length) {
            log.error(
              { err, thread: threadOf(item), tries: tries + 1 },
              'inbox: an item failed every try and goes to the dead list',
            );
            await toDead(raw);
            this.opts.onHandled?.('dead', (Date.now() - item.at) / 1000);
            return;
          }
          log.warn({ err, thread: threadOf(item), retryInMs: delays[tries] }, 'inbox: handling failed; trying again');
          await sleep(delays[tries]!);
          if (stopping) return;
          continue;
        }
        await remove(raw);
        this.opts.onHandled?.('done', (Date.now() - item.at) / 1000);
        return;
      }
    };

    const start = (raw: string) => {
      let item: T;
      try {
        item = this.schema.parse(JSON.parse(raw));
      } catch (err) {
        log.error({ err, item: raw.slice(0, 500) }, 'inbox: an item that does not parse goes to the dead list');
        void toDead(raw).catch((e: unknown) => log.error({ err: e }, 'inbox: could not move an item to the dead list'));
        return;
      }
      inHand++;
      held.set(raw, (held.get(raw) ?? 0) + 1);
      const run = threads
        .run(threadOf(item), () => handleItem(raw, item))
        .catch((err: unknown) => log.error({ err }, 'inbox: could not finish an item'));
      void run.finally(() => {
        const n = held.get(raw)! - 1;
        if (n > 0) held.set(raw, n);
        else held.delete(raw);
        inHand--;
        freed?.();
      });
    };

    const loop = (async () => {
      let idle = false;
      while (!stopping) {
        // An item from the "again" list is handled alone: wait for the ones in hand first.
        if (inHand >= (again ? 1 : concurrency)) {
          await new Promise<void>((resolve) => (freed = resolve));
          freed = undefined;
          continue;
        }
        try {
          if (again) {
            const raw = await this.redis.lmove(this.againKey, mine, 'LEFT', 'RIGHT');
            if (raw === null) again = false;
            else start(raw);
            continue;
          }
          // Non-blocking while there is work; blocking (on a connection of its own) when the inbox is empty.
          const raw: string | null = idle
            ? await blocking.blmove(this.inboxKey, mine, 'LEFT', 'RIGHT', 1)
            : await this.redis.lmove(this.inboxKey, mine, 'LEFT', 'RIGHT');
          idle = raw === null;
          if (raw !== null) start(raw);
        } catch (err) {
          if (stopping) break;
          log.warn({ err }, 'inbox: could not take an item; trying again');
          await sleep(1_000);
        }
      }
    })();

    return {
      stop: async () => {
        stopping = true;
        for (const wake of [...sleepers]) wake();
        freed?.();
        // Ends a blocking wait at once; an item it took meanwhile is put back below.
        blocking.disconnect();
        await loop;
        await threads.idle();
        clearInterval(timer);
        // Whatever is left (a try cut short, an item taken as the loop ended) goes back.
        // A stop is not a death: nothing is counted against the items.
        const [back] = await this.reclaimOf(id, `${mine}:none`, 0);
        await this.redis.del(this.aliveKey(id));
        if (back > 0) log.info({ items: back }, 'inbox: items not finished go back to the inbox');
      },
    };
  }
}
