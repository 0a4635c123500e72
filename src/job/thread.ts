import type { Logger } from 'pino';
import { LABEL_NEEDS_INFO, LABEL_STUCK, LABEL_WORKING } from '../github/facade.js';
import type { RepoHost } from '../github/repo-host.js';
import { type StatusState, statusComment } from '../report/status.js';
import { StatusWriter } from './status-writer.js';

/** Besides taking `agent:working` off, the label a job's end leaves: stuck, needs-info, or none (done, stopped). */
export type EndLabel = typeof LABEL_STUCK | typeof LABEL_NEEDS_INFO | undefined;

/** Where the job's one status comment is: made by the web, or by the job when it did not. */
export interface StatusRef {
  get(): Promise<number | undefined>;
  /** Records `commentId` unless another was recorded first; answers the one kept. */
  set(commentId: number): Promise<number>;
}

export interface LiveStatusOptions {
  statusRef: StatusRef;
  /** Least time between two edits of the status comment (the last word is written at once). */
  minIntervalMs: number;
  /** Each change of the status, unthrottled (the CLI prints progress from it). */
  onStatus?: (status: Readonly<StatusState>) => void;
  /** Runs once before the last word is written; a failure is logged, not the job's. */
  onEnding?: () => Promise<void>;
}

/**
 * What people see of a job on its issue or pull request: the labels, the one status comment
 * and the replies in review threads. The lifecycle, the worker and the web all write them
 * through here, so a job ends the same way wherever its end is decided: the labels first,
 * the status last, and once the status says the job ended everything else is in place.
 */
export class Thread {
  private writer: StatusWriter | undefined;
  private onStatus: LiveStatusOptions['onStatus'];
  private onEnding: LiveStatusOptions['onEnding'];

  constructor(
    readonly gh: RepoHost,
    readonly number: number,
    private readonly log: Logger,
  ) {}

  /** A running job's status comment: edited as the job goes, throttled, a failed edit logged. */
  async openStatus(options: LiveStatusOptions): Promise<void> {
    const { statusRef } = options;
    const { log } = this;
    this.onStatus = options.onStatus;
    this.onEnding = options.onEnding;
    this.writer = new StatusWriter({
      existingId: await statusRef.get(),
      create: async (body) => {
        const id = await this.gh.comment(this.number, body);
        const kept = await statusRef.set(id);
        if (kept === id) return id;
        // The web's comment landed after this worker gave up waiting for it: keep that one.
        // A failed edit is left to the writer's next edit, which goes to `kept` all the same.
        await this.gh
          .deleteComment(id)
          .catch((err: unknown) => log.warn({ err, commentId: id }, 'could not delete a second status comment'));
        await this.gh
          .updateComment(kept, body)
          .catch((err: unknown) => log.warn({ err, commentId: kept }, 'could not edit the status comment'));
        return kept;
      },
      update: (id, body) => this.gh.updateComment(id, body),
      minIntervalMs: options.minIntervalMs,
      onError: (err) => log.warn({ err }, 'could not edit the status comment'),
    });
  }

  /** Live progress; a failed edit does not end the job. */
  show(status: Readonly<StatusState>): void {
    this.onStatus?.(status);
    this.writer?.update(statusComment(status));
  }

  /** A new attempt starts clean: `agent:working` on, an earlier attempt's ending label off. */
  async begin(): Promise<void> {
    // A pull request is an issue too: its labels are read the same way.
    const { labels } = await this.gh.issue(this.number);
    await this.gh.addLabels(this.number, [LABEL_WORKING]);
    // Writes are throttled a second apart, so only what is there.
    for (const stale of [LABEL_STUCK, LABEL_NEEDS_INFO])
      if (labels.includes(stale)) await this.gh.removeLabel(this.number, stale);
  }

  /**
   * The job's last word: the labels swapped, then the status written at once; a failure is
   * the job's. `beforeLastWord` runs between the two (the job's trace summary).
   */
  async end(label: EndLabel, body: string, beforeLastWord?: () => void): Promise<void> {
    await this.swapLabels(label);
    beforeLastWord?.();
    // Before people can read the last word: a trigger they send on reading it starts the
    // next attempt even though this job is still finishing in the queue.
    await this.onEnding?.().catch((err: unknown) => this.log.warn({ err }, 'could not mark the job as ending'));
    await this.writer?.flush(body);
  }

  /**
   * A job's end written from outside the job (the worker after the job failed, the web for a
   * job stopped before it ran): the status first (in the job's comment when it has one), then
   * the labels, each step best-effort. `working: false` says the thread has no `agent:working`.
   */
  async endFromOutside(
    label: EndLabel,
    body: string,
    commentId: number | undefined,
    { working = true }: { working?: boolean } = {},
  ): Promise<void> {
    await (commentId ? this.gh.updateComment(commentId, body) : this.gh.comment(this.number, body)).catch(
      (err: unknown) => this.log.warn({ err }, 'could not write the status comment'),
    );
    const unlabelled = (err: unknown) => this.log.warn({ err }, 'could not change the labels');
    if (label) await this.gh.addLabels(this.number, [label]).catch(unlabelled);
    if (working) await this.gh.removeLabel(this.number, LABEL_WORKING).catch(unlabelled);
  }

  /** One reply in a review thread of a pull request. */
  async reply(pull: number, commentId: number, body: string): Promise<void> {
    await this.gh.replyToReviewComment(pull, commentId, body);
  }

  /** No more edits after this: the job is over. */
  close(): void {
    this.writer?.close();
  }

  private async swapLabels(label: EndLabel): Promise<void> {
    if (label) await this.gh.addLabels(this.number, [label]);
    await this.gh.removeLabel(this.number, LABEL_WORKING);
  }
}
