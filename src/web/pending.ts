import type { Logger } from 'pino';

/**
 * Work that outlives a webhook's answer (reactions, comments): a set of in-flight promises
 * that removes each one as it settles, so shutdown can wait for what is left.
 */
export class PendingWork {
  private readonly inFlight = new Set<Promise<unknown>>();

  add(p: Promise<unknown>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  /** Starts `work` now; a failure is logged as "could not <what>", never thrown. */
  later(log: Logger, what: string, work: () => Promise<unknown>): void {
    this.add(work().catch((err: unknown) => log.warn({ err }, `could not ${what}`)));
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }
}
