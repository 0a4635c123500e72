export interface StatusWriterDeps {
  /** Makes the comment; answers its id. */
  create(body: string): Promise<number>;
  update(id: number, body: string): Promise<void>;
  /** The comment to edit when one exists already (made by the web, or an earlier attempt). */
  existingId?: number;
  /** The least time between the starts of two scheduled writes. */
  minIntervalMs: number;
  now?: () => number;
  /** A scheduled write failed; the job goes on. */
  onError?: (err: unknown) => void;
}

/**
 * Owns writing a job's one status comment. Writes are serialised and throttled: the first
 * at once, then at most one per `minIntervalMs`, only the latest body, never the same body
 * twice. A long job then costs a handful of API calls, not one per step.
 */
export class StatusWriter {
  private id: number | undefined;
  /** The latest body asked for, numbered so a flush can tell whether it (or a newer one) is written. */
  private latest: { body: string; seq: number } | undefined;
  private seq = 0;
  /** `latest` waits for a write. */
  private pending = false;
  /** The body GitHub holds, as far as we know, and the number of the request it answered. */
  private sent: string | undefined;
  private sentSeq = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The write under way; it never rejects. */
  private inFlight: Promise<void> | undefined;
  private lastStart = Number.NEGATIVE_INFINITY;
  private flushing = 0;
  private closed = false;
  private written = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly now: () => number;

  constructor(private readonly deps: StatusWriterDeps) {
    this.id = deps.existingId;
    this.now = deps.now ?? Date.now;
  }

  get commentId(): number | undefined {
    return this.id;
  }

  /** How many writes reached GitHub. */
  get writes(): number {
    return this.written;
  }

  /** Schedules `body`; never throws (a failed write goes to `onError`). Ignored after `close()`. */
  update(body: string): void {
    if (this.closed) return;
    this.request(body);
    this.schedule();
  }

  /**
   * Writes at once, after any write under way, ignoring the interval: for terminal states.
   * Without `body`, makes sure the latest body asked for is written. Rejects when that fails.
   */
  async flush(body?: string): Promise<void> {
    if (body !== undefined) this.request(body);
    const target = this.seq;
    this.clearTimer();
    this.flushing++;
    try {
      for (;;) {
        while (this.inFlight) await this.inFlight;
        if (this.sentSeq >= target || !this.latest) return;
        const next = this.latest;
        this.pending = false;
        if (next.body === this.sent) {
          this.sentSeq = next.seq;
          return;
        }
        await this.start(next);
      }
    } finally {
      this.flushing--;
      this.schedule();
    }
  }

  /** Resolves once nothing is pending, scheduled or under way. */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Cancels the scheduled write; later `update`s are ignored. A write under way, or a `flush`, still finishes. */
  close(): void {
    this.closed = true;
    this.clearTimer();
    this.pending = false;
    this.notifyIfIdle();
  }

  private request(body: string): void {
    this.latest = { body, seq: ++this.seq };
    this.pending = true;
  }

  private schedule(): void {
    if (this.flushing > 0 || this.inFlight || this.timer) return;
    if (this.pending && this.latest && this.latest.body === this.sent) {
      this.sentSeq = this.latest.seq;
      this.pending = false;
    }
    if (!this.pending || !this.latest) {
      this.notifyIfIdle();
      return;
    }
    const wait = this.lastStart + this.deps.minIntervalMs - this.now();
    if (wait > 0) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, wait);
      return;
    }
    this.pending = false;
    this.start(this.latest).catch((err: unknown) => this.report(err));
  }

  /** Starts one write; the returned promise carries its failure, `inFlight` never does. */
  private start(entry: { body: string; seq: number }): Promise<void> {
    this.lastStart = this.now();
    const sent = this.send(entry);
    const settled: Promise<void> = sent
      .then(
        () => undefined,
        () => undefined,
      )
      .finally(() => {
        if (this.inFlight === settled) this.inFlight = undefined;
        this.schedule();
      });
    this.inFlight = settled;
    return sent;
  }

  private async send(entry: { body: string; seq: number }): Promise<void> {
    if (this.id === undefined) this.id = await this.deps.create(entry.body);
    else await this.deps.update(this.id, entry.body);
    this.sent = entry.body;
    this.sentSeq = Math.max(this.sentSeq, entry.seq);
    this.written++;
  }

  private report(err: unknown): void {
    try {
      this.deps.onError?.(err);
    } catch {
      // A failing error handler must not take the job down either.
    }
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private isIdle(): boolean {
    return !this.inFlight && !this.timer && this.flushing === 0 && !this.pending;
  }

  private notifyIfIdle(): void {
    if (!this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
