import type { Logger } from 'pino';
import { REPO_CONFIG_PATH } from '../config/repo-config.js';
import type { GitHubRepo } from '../github/facade.js';
import { Thread } from '../job/thread.js';
import type { AgentQueue } from '../queue/queue.js';
import { configErrorComment } from '../report/config-error.js';
import { statusComment } from '../report/status.js';
import { ciStatusKey } from '../queue/jobs.js';
import { Limiter } from '../util/limiter.js';
import { helpText } from './commands.js';
import type { Action } from './decide-event.js';
import type { Where } from './inbox-item.js';
import type { PendingWork } from './pending.js';

// Acknowledgements started at once per installation. GitHub's write pacing (about one a
// second) holds the rest anyway; a burst of triggers waits here as closures rather than
// as thousands of requests built and parked in the client's rate limiter.
const ACKS_PER_INSTALLATION = 4;

/**
 * Carries out what `decideEvent` decided: first the queue work (enqueue, batch a review,
 * stop, claim an answer), awaited; then, without waiting for it, what people see: a
 * reaction, the job's status comment, or an answer, a few at a time per installation.
 * Doing an action twice does the queue work once (per delivery id).
 */
export class EventEffects {
  readonly #ackLimits = new Map<number, Limiter>();

  constructor(
    private readonly deps: {
      queue: AgentQueue;
      pending: PendingWork;
      onCiGreen?: (outcome: 'fixed' | 'rerun_green', rounds: number) => void;
    },
  ) {}

  /** Carries out one action for the event `e` on its repository `gh`. */
  carryOut(action: Action, e: Where, gh: GitHubRepo, log: Logger): Promise<void> {
    switch (action.do) {
      case 'trigger':
        return this.trigger(e, gh, log, action);
      case 'revise':
        return this.revise(e, gh, log, action);
      case 'stop':
        return this.stop(e, gh, log, action);
      case 'answer':
        return this.answer(e, gh, log, action);
      case 'explain-config':
        return this.explainConfig(e, gh, log, action);
      case 'ci-fix':
        return this.ciFix(e, log, action);
      case 'ci-green':
        return this.ciGreen(e, gh, log, action);
    }
  }

  /** Runs an acknowledgement later, when its installation has a turn free. */
  private acknowledge(e: Where, log: Logger, what: string, work: () => Promise<unknown>): void {
    let limit = this.#ackLimits.get(e.installationId);
    if (!limit) {
      limit = new Limiter(ACKS_PER_INSTALLATION);
      this.#ackLimits.set(e.installationId, limit);
    }
    const turn = limit;
    this.deps.pending.later(log, what, () => turn.run(work));
  }

  /** The status comment of a new job, unless a worker that waited already made it. */
  private async statusFor(gh: GitHubRepo, threadNumber: number, jobId: string, kind: 'issue' | 'revise') {
    const { statusRefs } = this.deps.queue;
    if (await statusRefs.claim(jobId)) {
      const commentId = await gh.comment(threadNumber, statusComment({ phase: 'queued', kind }));
      // A worker that waited too long made the job's comment meanwhile: this one goes.
      if ((await statusRefs.set(jobId, commentId)) !== commentId) await gh.deleteComment(commentId);
    }
  }

  private async trigger(e: Where, gh: GitHubRepo, log: Logger, from: Extract<Action, { do: 'trigger' }>) {
    const result = await this.deps.queue.enqueue({
      ...who(e),
      ...(from.instructions ? { instructions: from.instructions } : {}),
      ...(from.snapshot ? { snapshot: from.snapshot } : {}),
    });
    log.info({ result }, from.commentId ? 'retry handled' : 'trigger handled');
    if (result.kind === 'duplicate-delivery') return;
    this.acknowledge(e, log, 'acknowledge the trigger', async () => {
      if (result.kind === 'already-active') {
        // Answered, not queued twice.
        await reactTo(gh, from.commentId, true);
        const what = from.commentId
          ? 'Comment `/agent stop` first, then `/agent retry`.'
          : 'The label started nothing new. Comment `/agent stop` to stop it.';
        await gh.comment(
          e.issueNumber,
          `@${e.sender} attempt ${result.attempt} is still running on this issue. ${what}`,
        );
        return;
      }
      if (from.commentId) await reactTo(gh, from.commentId, false);
      else await gh.react(e.issueNumber, 'eyes');
      await this.statusFor(gh, e.issueNumber, result.jobId, 'issue');
    });
  }

  private async revise(e: Where, gh: GitHubRepo, log: Logger, from: Extract<Action, { do: 'revise' }>) {
    const feedback = {
      sender: e.sender,
      ...(from.reviewId ? { reviewId: from.reviewId } : {}),
      ...(from.text ? { text: from.text } : {}),
    };
    const result = await this.deps.queue.enqueueRevise({ ...who(e), feedback });
    log.info({ result }, from.commentId ? 'retry handled' : 'review handled');
    if (result.kind === 'duplicate-delivery') return;
    this.acknowledge(e, log, 'acknowledge the revision request', async () => {
      await reactTo(gh, from.commentId, false);
      if (result.kind === 'enqueued') await this.statusFor(gh, e.issueNumber, result.jobId, 'revise');
    });
  }

  private async stop(
    e: Where,
    gh: GitHubRepo,
    log: Logger,
    { kind, commentId, working }: Extract<Action, { do: 'stop' }>,
  ) {
    const { queue } = this.deps;
    const ref = { owner: e.owner, repo: e.repo, issueNumber: e.issueNumber };
    let stopped = await queue.requestStop(kind, ref, e.sender, e.deliveryId);
    if (kind === 'revise' && stopped.kind !== 'duplicate-delivery') {
      // On the app's PR a stop ends its CI watch and stops a CI fix too.
      await queue.recordCi(ref, { kind: 'stopped', why: `stopped by ${e.sender} with /agent stop` });
      const ci = await queue.requestStop('ci-fix', ref, e.sender);
      if (stopped.kind === 'nothing-running') stopped = ci;
    }
    log.info({ stopped }, 'stop handled');
    if (stopped.kind === 'duplicate-delivery') return;
    this.acknowledge(e, log, 'answer the stop', async () => {
      await reactTo(gh, commentId, stopped.kind === 'nothing-running');
      if (stopped.kind === 'nothing-running') {
        await gh.comment(e.issueNumber, `@${e.sender} nothing is running here, so there is nothing to stop.`);
      } else if (stopped.kind === 'removed') {
        // It never started: say so in its status comment; a running job says so itself.
        // A CI fix keeps its status in the PR's CI comment.
        const ciFix = stopped.jobId.includes('/ci-fix-');
        const body = statusComment({ phase: 'stopped', stoppedBy: e.sender, kind: ciFix ? 'ci-fix' : kind });
        const statusKey = ciFix ? ciStatusKey(ref) : stopped.jobId;
        const statusId = await queue.statusRefs.get(statusKey, 0);
        // A job sent back to the queue (a retry's backoff, a drained worker) had started: it has agent:working.
        await new Thread(gh, e.issueNumber, log).endFromOutside(undefined, body, statusId, { working });
      }
    });
  }

  /** Failing checks on the head of the app's PR: a CI-fix job for that commit, within the queue's rules. */
  private async ciFix(e: Where, log: Logger, { pull, failed }: Extract<Action, { do: 'ci-fix' }>) {
    const result = await this.deps.queue.enqueueCiFix({ ...who(e), issueNumber: pull.number }, pull.headSha);
    log.info({ result, pull: pull.number, failed: failed.slice(0, 10) }, 'failing CI handled');
  }

  /**
   * Every check on the head of the app's PR passed: said once per commit on the PR's CI
   * comment, and a draft the repository asked to keep until green is marked ready.
   */
  private async ciGreen(e: Where, gh: GitHubRepo, log: Logger, action: Extract<Action, { do: 'ci-green' }>) {
    const { pull, passed, readyForReview } = action;
    const ref = { owner: e.owner, repo: e.repo, issueNumber: pull.number };
    // Before green is recorded: a failed mutation throws, and the inbox tries the event again.
    if (readyForReview) await gh.markReadyForReview(pull.nodeId);
    const before = await this.deps.queue.ciGreen(ref, pull.headSha);
    if (!before) return log.debug({ pull: pull.number }, 'all checks passed: already said');
    log.info({ pull: pull.number, passed, rounds: before.jobs }, 'all checks passed');
    if (before.last) this.deps.onCiGreen?.(before.last === 'fixed' ? 'fixed' : 'rerun_green', before.jobs);
    const body = statusComment({
      phase: 'done',
      kind: 'ci-fix',
      ci: { sha: pull.headSha, failing: [], green: { passed, fixes: before.fixes, rounds: before.jobs } },
    });
    const { statusRefs } = this.deps.queue;
    const key = ciStatusKey(ref);
    this.acknowledge(e, log, 'say that every check passed', async () => {
      const existing = await statusRefs.get(key, 0);
      if (existing !== undefined) return gh.updateComment(existing, body);
      // The PR's first CI comment; should a CI-fix job have made one meanwhile, that one is kept.
      const id = await gh.comment(pull.number, body);
      const kept = await statusRefs.set(key, id);
      if (kept !== id) {
        await gh.deleteComment(id);
        await gh.updateComment(kept, body);
      }
    });
  }

  /** `/agent help`, or a word it does not know: the help text, once per delivery. */
  private async answer(e: Where, gh: GitHubRepo, log: Logger, { commentId, word }: Extract<Action, { do: 'answer' }>) {
    if (!(await this.deps.queue.claimAnswer(e.deliveryId))) return;
    this.acknowledge(e, log, 'answer the command', async () => {
      await gh.reactToComment(commentId, word === undefined ? '+1' : 'confused');
      await gh.comment(e.issueNumber, helpText(word));
    });
  }

  /** An invalid config is answered with a comment that explains it, and nothing runs. */
  private async explainConfig(e: Where, gh: GitHubRepo, log: Logger, how: Extract<Action, { do: 'explain-config' }>) {
    log.info({ problems: how.error.problems }, `skipped: ${REPO_CONFIG_PATH} is invalid`);
    if (!(await this.deps.queue.claimAnswer(e.deliveryId))) return;
    this.acknowledge(e, log, 'explain the invalid config', () =>
      gh.comment(e.issueNumber, configErrorComment(how.error, { ref: how.ref, fileUrl: how.fileUrl })),
    );
  }
}

/** The fields a queued job takes from the event. */
function who(e: Where): Where {
  return {
    installationId: e.installationId,
    owner: e.owner,
    repo: e.repo,
    issueNumber: e.issueNumber,
    deliveryId: e.deliveryId,
    sender: e.sender,
  };
}

function reactTo(gh: GitHubRepo, commentId: number | undefined, confused: boolean): Promise<void> {
  return commentId ? gh.reactToComment(commentId, confused ? 'confused' : '+1') : Promise.resolve();
}
