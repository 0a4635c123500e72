import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { KeyedSerial } from '../util/keyed-serial.js';

export interface InboxItemBase {
  /** When the web pushed it (ms since the epoch). */
  at: number;
}

/** How a drainer runs; see `InboxOptions`. */
export interface DrainOptions {
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

/** What one drainer needs of its inbox: the connection, the keys, and the reclaim scripts. */
export interface DrainPort<T> {
  redis: Redis;
  schema: z.ZodType<T>;
  opts: DrainOptions;
  id: string;
  keys: {
    inbox: string;
    dead: string;
    drainers: string;
    reclaims: string;
    again: string;
    /** This drainer's own list: the items it took and has not finished. */
    mine: string;
    /** This drainer's heartbeat. */
    alive: string;
  };
  /** Puts back what dead drainers held; answers how many items went back. */
  reclaimDead(): Promise<number>;
  /** Puts back, uncounted, whatever this drainer still holds; answers how many. */
  putBackMine(): Promise<number>;
}

/**
 * One drainer of an inbox (see `Inbox.drain`): takes items into its own list, handles
 * them (in order per thread, a few at once), removes the done ones, and beats so that
 * others put back what it held if it dies.
 */
export class InboxDrain<T extends InboxItemBase> {
  readonly #log: Logger;
  readonly #heartbeatMs: number;
  readonly #concurrency: number;
  readonly #delays: number[];
  readonly #blocking: Redis;
  #timer: NodeJS.Timeout | undefined;
  #loop: Promise<void> | undefined;
  // Items in the "again" list wait: until it is empty, this drainer handles them one at a
  // time and nothing else. Set when a beat sees some, or when it put some there itself.
  #again = false;
  #stopping = false;
  // An item in this drainer's own list that it does not hold: taken by a command whose
  // answer a reconnect lost (ioredis sends it again, and the second takes the next item).
  // Seen at two beats in a row, it is started, so a reply still on its way is not raced.
  #suspects = new Set<string>();
  // Retry waits in progress: stopping ends them at once.
  readonly #sleepers = new Set<() => void>();
  readonly #threads = new KeyedSerial();
  // Items in hand by their text (the same text may be in the list twice: a redelivery).
  readonly #held = new Map<string, number>();
  // Done work leaves the list; if Redis refuses now, the next beats try again (`adopt`
  // skips items whose removal is pending), so the work itself never runs again for it.
  readonly #removing = new Map<string, number>();
  #inHand = 0;
  #freed: (() => void) | undefined;

  constructor(
    private readonly port: DrainPort<T>,
    private readonly handle: (item: T) => Promise<void>,
    private readonly threadOf: (item: T) => string,
  ) {
    const { opts, redis } = port;
    this.#log = opts.log;
    this.#heartbeatMs = opts.heartbeatMs ?? 30_000;
    this.#concurrency = opts.concurrency ?? 8;
    this.#delays = opts.retryDelaysMs ?? [1_000, 4_000, 15_000, 60_000];
    this.#blocking = redis.duplicate();
    this.#blocking.on('error', (err) => this.#log.warn({ err: err.message }, 'inbox: redis connection error'));
  }

  /** Registers, puts back what dead drainers held, then starts beating and taking items. */
  async begin(): Promise<void> {
    await this.beat();
    await this.reclaim();
    this.#timer = setInterval(
      () => {
        this.beat()
          .then(() => this.reclaim())
          .then(() => this.adopt())
          .catch((err: unknown) => this.#log.warn({ err }, 'inbox: heartbeat failed'));
      },
      Math.max(50, Math.floor(this.#heartbeatMs / 3)),
    );
    this.#timer.unref();
    this.#loop = this.takeItems();
  }

  /** Stops taking items, waits for the ones in hand, and puts back any left. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const wake of [...this.#sleepers]) wake();
    this.#freed?.();
    // Ends a blocking wait at once; an item it took meanwhile is put back below.
    this.#blocking.disconnect();
    await this.#loop;
    await this.#threads.idle();
    clearInterval(this.#timer);
    // Whatever is left (a try cut short, an item taken as the loop ended) goes back.
    // A stop is not a death: nothing is counted against the items.
    const back = await this.port.putBackMine();
    await this.port.redis.del(this.port.keys.alive);
    if (back > 0) this.#log.info({ items: back }, 'inbox: items not finished go back to the inbox');
  }

  // Registers again on each beat: a drainer that was paused past its heartbeat (and given
  // up by another) is known again, so what it takes later is not lost if it dies.
  private async beat(): Promise<void> {
    const { redis, keys, id } = this.port;
    const [, , waiting] = (await redis
      .multi()
      .set(keys.alive, '1', 'PX', this.#heartbeatMs)
      .sadd(keys.drainers, id)
      .llen(keys.again)
      .exec())!;
    if (Number(waiting?.[1]) > 0) this.#again = true;
  }

  private async reclaim(): Promise<void> {
    if ((await this.port.reclaimDead()) > 0) this.#again = true;
  }

  private async adopt(): Promise<void> {
    const counts = new Map<string, number>();
    for (const raw of await this.port.redis.lrange(this.port.keys.mine, 0, -1))
      counts.set(raw, (counts.get(raw) ?? 0) + 1);
    const orphans = new Set<string>();
    for (const [raw, n] of counts)
      if (n > (this.#held.get(raw) ?? 0) + (this.#removing.get(raw) ?? 0)) orphans.add(raw);
    for (const raw of orphans) {
      if (!this.#suspects.has(raw) || this.#stopping) continue;
      this.#log.warn('inbox: an item taken without its answer is handled now');
      this.start(raw);
    }
    this.#suspects = orphans;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const wake = () => {
        clearTimeout(t);
        this.#sleepers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.#sleepers.add(wake);
    });
  }

  private toDead(raw: string) {
    const { redis, keys } = this.port;
    return redis.multi().lrem(keys.mine, 1, raw).hdel(keys.reclaims, raw).rpush(keys.dead, raw).exec();
  }

  private async remove(raw: string): Promise<void> {
    const { redis, keys } = this.port;
    this.#removing.set(raw, (this.#removing.get(raw) ?? 0) + 1);
    for (let tries = 0; ; tries++) {
      try {
        // A command that fails inside MULTI does not reject EXEC: each reply is checked.
        for (const [err] of (await redis.multi().lrem(keys.mine, 1, raw).hdel(keys.reclaims, raw).exec()) ?? [])
          if (err) throw err;
        break;
      } catch (err) {
        if (this.#stopping || tries >= 5)
          return void this.#log.warn(
            { err },
            'inbox: could not remove a done item; if it comes back, its work is done again (once per delivery)',
          );
        await this.sleep(1_000);
      }
    }
    decrement(this.#removing, raw);
  }

  private async handleItem(raw: string, item: T): Promise<void> {
    const log = this.#log;
    const delays = this.#delays;
    for (let tries = 0; ; tries++) {
      try {
        await this.handle(item);
      } catch (err) {
        // A stopping drainer leaves the item where it is: `stop` puts it back.
        if (this.#stopping)
          return void log.warn({ err }, 'inbox: handling failed while stopping; the item goes back to the inbox');
        if (tries >= delays.length) {
          log.error(
            { err, thread: this.threadOf(item), tries: tries + 1 },
            'inbox: an item failed every try and goes to the dead list',
          );
          await this.toDead(raw);
          this.port.opts.onHandled?.('dead', (Date.now() - item.at) / 1000);
          return;
        }
        log.warn(
          { err, thread: this.threadOf(item), retryInMs: delays[tries] },
          'inbox: handling failed; trying again',
        );
        await this.sleep(delays[tries]!);
        if (this.#stopping) return;
        continue;
      }
      await this.remove(raw);
      this.port.opts.onHandled?.('done', (Date.now() - item.at) / 1000);
      return;
    }
  }

  private start(raw: string): void {
    const log = this.#log;
    let item: T;
    try {
      item = this.port.schema.parse(JSON.parse(raw));
    } catch (err) {
      log.error({ err, item: raw.slice(0, 500) }, 'inbox: an item that does not parse goes to the dead list');
      void this.toDead(raw).catch((e: unknown) =>
        log.error({ err: e }, 'inbox: could not move an item to the dead list'),
      );
      return;
    }
    this.#inHand++;
    this.#held.set(raw, (this.#held.get(raw) ?? 0) + 1);
    const run = this.#threads
      .run(this.threadOf(item), () => this.handleItem(raw, item))
      .catch((err: unknown) => log.error({ err }, 'inbox: could not finish an item'));
    void run.finally(() => {
      decrement(this.#held, raw);
      this.#inHand--;
      this.#freed?.();
    });
  }

  private async takeItems(): Promise<void> {
    const { redis, keys } = this.port;
    let idle = false;
    while (!this.#stopping) {
      // An item from the "again" list is handled alone: wait for the ones in hand first.
      if (this.#inHand >= (this.#again ? 1 : this.#concurrency)) {
        await new Promise<void>((resolve) => (this.#freed = resolve));
        this.#freed = undefined;
        continue;
      }
      try {
        if (this.#again) {
          const raw = await redis.lmove(keys.again, keys.mine, 'LEFT', 'RIGHT');
          if (raw === null) this.#again = false;
          else this.start(raw);
          continue;
        }
        // Non-blocking while there is work; blocking (on a connection of its own) when the inbox is empty.
        const raw: string | null = idle
          ? await this.#blocking.blmove(keys.inbox, keys.mine, 'LEFT', 'RIGHT', 1)
          : await redis.lmove(keys.inbox, keys.mine, 'LEFT', 'RIGHT');
        idle = raw === null;
        if (raw !== null) this.start(raw);
      } catch (err) {
        if (this.#stopping) break;
        this.#log.warn({ err }, 'inbox: could not take an item; trying again');
        await this.sleep(1_000);
      }
    }
  }
}

/** One fewer of `key`; the key goes at zero. */
function decrement(counts: Map<string, number>, key: string): void {
  const n = counts.get(key)! - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}
