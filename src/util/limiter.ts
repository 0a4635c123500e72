/**
 * Runs at most `max` tasks at once; the rest wait, in order, as plain closures. Cheaper
 * than starting every task at once and letting a rate limiter further down hold them:
 * nothing is built for a task until it is its turn.
 */
export class Limiter {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running < this.max) this.running++;
    // A finishing task hands its turn straight to the first waiting one.
    else await new Promise<void>((resolve) => this.waiting.push(resolve));
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  /** Tasks started and not finished, and tasks waiting for a turn. */
  get size(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }
}
