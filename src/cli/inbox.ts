import { Redis } from 'ioredis';
import { pino } from 'pino';
import { Inbox } from '../queue/inbox.js';
import { sanitise } from '../util/sanitise.js';
import { InboxItemSchema, type InboxItem } from '../web/inbox-item.js';

/** One line for a dead item: what it asked, where, which delivery, when; or why it does not parse. */
function describe(raw: string): string {
  const parsed = InboxItemSchema.safeParse(
    (() => {
      try {
        return JSON.parse(raw) as unknown;
      } catch {
        return undefined;
      }
    })(),
  );
  if (!parsed.success) return `  (does not parse) ${raw.slice(0, 120)}`;
  const a = parsed.data;
  return `  ${a.op.padEnd(7)} ${a.owner}/${a.repo}#${a.issueNumber}  by ${a.sender}  delivery ${a.deliveryId}  at ${new Date(a.at).toISOString()}`;
}

/**
 * `issue-agent inbox`: how much webhook work waits, runs and failed every try, the failed
 * items, and (`--requeue-dead`) puts them back for the web processes to do again.
 */
export async function inboxCommand(
  opts: { redis: string; requeueDead?: boolean },
  out: (text: string) => void,
): Promise<number> {
  // One try: an operator's command says at once that Redis is not there.
  const redis = new Redis(opts.redis, {
    maxRetriesPerRequest: 1,
    connectTimeout: 5_000,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  let lastError = '';
  redis.on('error', (err: Error) => (lastError = err.message));
  try {
    await redis.connect().catch((err: Error) => {
      throw new Error(`could not reach Redis at ${sanitise(opts.redis)}: ${lastError || err.message}`);
    });
    const inbox = new Inbox<InboxItem>(redis, InboxItemSchema, { log: pino({ level: 'silent' }) });
    if (opts.requeueDead)
      out(
        `moved ${await inbox.requeueDead()} dead item(s) back to the inbox; a running web process does them again (once per delivery)\n`,
      );
    const depth = await inbox.depth();
    out(`inbox: ${depth.waiting} waiting, ${depth.handling} being handled, ${depth.dead} dead\n`);
    const dead = await inbox.deadItems(20);
    if (dead.length > 0)
      out(
        `dead (failed every try; the web log says why)${depth.dead > dead.length ? `, the first ${dead.length}` : ''}:\n${dead.map(describe).join('\n')}\nrun with --requeue-dead to try them again\n`,
      );
    return 0;
  } finally {
    redis.disconnect();
  }
}
