import type { ChainableCommander, Redis } from 'ioredis';

const TTL_S = 30 * 24 * 3600;
const PENDING = 'pending';
const CREATING = 'creating';
/** How long a worker waits for a comment the web is writing before giving up on it. */
const CREATING_LIMIT_MS = 60_000;

// Records a comment id unless another one is already recorded; answers the id that holds.
const SETTLE = `local v = redis.call('get', KEYS[1]) if v and v ~= '${PENDING}' and v ~= '${CREATING}' then return tonumber(v) end redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) return tonumber(ARGV[1])`;
// Moves pending → creating for exactly one caller.
const CLAIM = `if redis.call('get', KEYS[1]) == '${PENDING}' then redis.call('set', KEYS[1], '${CREATING}', 'EX', ARGV[1]) return 1 end return 0`;

/** The Lua commands above, defined on the connection so they travel as EVALSHA. */
interface StatusCommands {
  statusClaim(key: string, ttlS: string): Promise<number>;
  statusSettle(key: string, commentId: string, ttlS: string): Promise<number>;
}

/**
 * Where a job's one status comment is. The web marks it pending when it enqueues; whoever
 * claims it first (the web right after answering the webhook, or a worker that waited long
 * enough) creates the comment and records its id, so there is never a second one.
 */
export class StatusRefs {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'issue-agent',
  ) {
    redis.defineCommand('statusClaim', { numberOfKeys: 1, lua: CLAIM });
    redis.defineCommand('statusSettle', { numberOfKeys: 1, lua: SETTLE });
  }

  private get commands(): StatusCommands {
    return this.redis as unknown as StatusCommands;
  }

  private key(jobId: string): string {
    return `${this.prefix}:status:${jobId}`;
  }

  async markPending(jobId: string): Promise<void> {
    await this.markPendingIn(this.redis.multi(), jobId).exec();
  }

  /** `markPending` as part of a transaction the caller runs. */
  markPendingIn(m: ChainableCommander, jobId: string): ChainableCommander {
    return m.set(this.key(jobId), PENDING, 'EX', TTL_S, 'NX');
  }

  /** True for the one caller that may create the comment. */
  async claim(jobId: string): Promise<boolean> {
    return (await this.commands.statusClaim(this.key(jobId), String(TTL_S))) === 1;
  }

  /**
   * Records the comment the caller made and answers the job's one status comment: the
   * caller's, or one recorded first by someone else, when a worker gave up waiting for
   * the web's and both made one. A caller that gets another id deletes its own.
   */
  async set(jobId: string, commentId: number): Promise<number> {
    return Number(await this.commands.statusSettle(this.key(jobId), String(commentId), String(TTL_S)));
  }

  /**
   * The comment id. While the web's comment is pending, waits up to `timeoutMs`; then
   * claims it for the caller and answers undefined: the caller creates the comment.
   */
  async get(jobId: string, timeoutMs = 15_000): Promise<number | undefined> {
    const started = Date.now();
    for (;;) {
      const v = await this.redis.get(this.key(jobId));
      if (v === null) return undefined;
      if (v !== PENDING && v !== CREATING) return Number(v);
      const waited = Date.now() - started;
      if (v === PENDING && waited >= timeoutMs && (await this.claim(jobId))) return undefined;
      if (v === CREATING && waited >= Math.max(timeoutMs, CREATING_LIMIT_MS)) return undefined;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
