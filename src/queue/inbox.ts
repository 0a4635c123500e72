import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { z } from 'zod';
import { type DrainOptions, InboxDrain, type InboxItemBase } from './inbox-drain.js';

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

export interface InboxOptions extends DrainOptions {
  /** Key prefix, the app's (`issue-agent`) unless a test keeps its own. */
  prefix?: string;
}

export type { InboxItemBase } from './inbox-drain.js';

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
    const id = `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const mine = this.processingKey(id);
    const drain = new InboxDrain<T>(
      {
        redis: this.redis,
        schema: this.schema,
        opts: this.opts,
        id,
        keys: {
          inbox: this.inboxKey,
          dead: this.deadKey,
          drainers: this.drainersKey,
          reclaims: this.reclaimsKey,
          again: this.againKey,
          mine,
          alive: this.aliveKey(id),
        },
        reclaimDead: () => this.reclaim(),
        putBackMine: async () => (await this.reclaimOf(id, `${mine}:none`, 0))[0],
      },
      handle,
      threadOf,
    );
    await drain.begin();
    return { stop: () => drain.stop() };
  }
}
