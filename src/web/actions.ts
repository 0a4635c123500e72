import type { Probot } from 'probot';
import type { Logger } from 'pino';
import { z } from 'zod';
import { GitHubRepo, LABEL_WORKING } from '../github/facade.js';
import { issueKey, JobFields } from '../queue/jobs.js';
import { FeedbackSchema, type AgentQueue } from '../queue/queue.js';
import { statusComment } from '../report/status.js';
import type { PendingWork } from './pending.js';
import { TtlCache } from './ttl-cache.js';
import { Limiter } from '../util/limiter.js';

// An installation's client for acknowledgements; its token renews itself when it expires.
const CLIENT_TTL_MS = 10 * 60_000;
// Acknowledgements started at once per installation. GitHub's write pacing (about one a
// second) holds the rest anyway; a burst of triggers waits here as closures rather than
// as thousands of requests built and parked in the client's rate limiter.
const ACKS_PER_INSTALLATION = 4;

// Who, where, and which delivery: `issueNumber` is the thread (an issue, or a PR of the app's).
const where = {
  ...JobFields.pick({ installationId: true, owner: true, repo: true, issueNumber: true, deliveryId: true, sender: true }).shape,
  /** When the web answered the webhook (ms since the epoch). */
  at: z.number(),
};
const commentId = z.number().int().positive();

/**
 * What a webhook asks of the queue, recorded in the inbox before the webhook is answered
 * and carried out after (see `Inbox`): small, validated, and free of secrets, like job data.
 * The web has already checked who sent it and the repository's config.
 */
export const WebActionSchema = z.discriminatedUnion('op', [
  /** The trigger label (no `commentId`), or a writer's `/agent retry` on an issue. */
  z.strictObject({ op: z.literal('trigger'), ...where, commentId: commentId.optional(), instructions: JobFields.shape.instructions }),
  /** A review of the app's PR (no `commentId`), or a writer's `/agent retry` on it. */
  z.strictObject({ op: z.literal('revise'), ...where, commentId: commentId.optional(), feedback: FeedbackSchema }),
  /** `/agent stop`; `working` says whether the thread carried `agent:working` when it was sent. */
  z.strictObject({ op: z.literal('stop'), ...where, kind: JobFields.shape.kind, commentId, working: z.boolean() }),
]);
export type WebAction = z.infer<typeof WebActionSchema>;
/** An action before the web stamps it with the time. */
export type NewAction = WebAction extends infer A ? (A extends WebAction ? Omit<A, 'at'> : never) : never;

/** The thread an action is about: actions on one thread are carried out in order. */
export function threadOf(a: WebAction): string {
  return issueKey(a);
}

export interface ActionDeps {
  queue: AgentQueue;
  /** Authenticates as an installation for the acknowledgements. */
  probot: Pick<Probot, 'auth'>;
  log: Logger;
  /** Acknowledgements in flight; shutdown waits for them. */
  pending: PendingWork;
}

/**
 * Carries out an action from the inbox: the queue work (enqueue, batch a review, stop),
 * then, without waiting for it, what people see: a reaction, the job's status comment,
 * or an answer. Doing an action twice does the queue work once (per delivery id).
 */
export function actionRunner(deps: ActionDeps): (a: WebAction) => Promise<void> {
  const clients = new TtlCache<Awaited<ReturnType<Probot['auth']>>>(CLIENT_TTL_MS);
  const ackLimits = new Map<number, Limiter>();
  /** Runs an acknowledgement after the answer, when its installation has a turn free. */
  const acknowledge = (a: WebAction, log: Logger, what: string, work: () => Promise<unknown>) => {
    let limit = ackLimits.get(a.installationId);
    if (!limit) ackLimits.set(a.installationId, (limit = new Limiter(ACKS_PER_INSTALLATION)));
    deps.pending.later(log, what, () => limit.run(work));
  };
  /** The status comment of a new job, unless a worker that waited already made it. */
  const statusFor = async (gh: GitHubRepo, threadNumber: number, jobId: string, kind: 'issue' | 'revise') => {
    if (await deps.queue.statusRefs.claim(jobId)) {
      const id = await gh.comment(threadNumber, statusComment({ phase: 'queued', kind }));
      // A worker that waited too long made the job's comment meanwhile: this one goes.
      if ((await deps.queue.statusRefs.set(jobId, id)) !== id) await gh.deleteComment(id);
    }
  };

  /** An installation's client for the acknowledgements, made only when one is written. */
  const repoOf = async (a: WebAction) => new GitHubRepo(await clients.get(String(a.installationId), () => deps.probot.auth(a.installationId)), { owner: a.owner, repo: a.repo });

  /** Carries out an action from the inbox: the queue work, then (after) what people see. */
  const act = async (a: WebAction): Promise<void> => {
    const log = deps.log.child({ delivery: a.deliveryId, repo: `${a.owner}/${a.repo}`, issue: a.issueNumber, op: a.op });
    const thread = a.issueNumber;
    const ref = { owner: a.owner, repo: a.repo, issueNumber: thread };
    const common = { installationId: a.installationId, ...ref, deliveryId: a.deliveryId, sender: a.sender };
    const reactTo = (gh: GitHubRepo, id: number | undefined, confused: boolean) => (id ? gh.reactToComment(id, confused ? 'confused' : '+1') : Promise.resolve());

    if (a.op === 'stop') {
      const stopped = await deps.queue.requestStop(a.kind, ref, a.sender, a.deliveryId);
      log.info({ stopped }, 'stop handled');
      if (stopped.kind === 'duplicate-delivery') return;
      acknowledge(a, log, 'answer the stop', async () => {
        const gh = await repoOf(a);
        await reactTo(gh, a.commentId, stopped.kind === 'nothing-running');
        if (stopped.kind === 'nothing-running') {
          await gh.comment(thread, `@${a.sender} nothing is running here, so there is nothing to stop.`);
        } else if (stopped.kind === 'removed') {
          // It never started: say so in its status comment; a running job says so itself.
          const body = statusComment({ phase: 'stopped', stoppedBy: a.sender, kind: a.kind });
          const id = await deps.queue.statusRefs.get(stopped.jobId, 0);
          await (id ? gh.updateComment(id, body) : gh.comment(thread, body));
          // A job sent back to the queue (a retry's backoff, a drained worker) had started.
          if (a.working) await gh.removeLabel(thread, LABEL_WORKING);
        }
      });
      return;
    }

    if (a.op === 'revise') {
      const result = await deps.queue.enqueueRevise({ ...common, feedback: a.feedback });
      log.info({ result }, a.commentId ? 'retry handled' : 'review handled');
      if (result.kind === 'duplicate-delivery') return;
      acknowledge(a, log, 'acknowledge the revision request', async () => {
        const gh = await repoOf(a);
        await reactTo(gh, a.commentId, false);
        if (result.kind === 'enqueued') await statusFor(gh, thread, result.jobId, 'revise');
      });
      return;
    }

    const result = await deps.queue.enqueue({ ...common, ...(a.instructions ? { instructions: a.instructions } : {}) });
    log.info({ result }, a.commentId ? 'retry handled' : 'trigger handled');
    if (result.kind === 'duplicate-delivery') return;
    acknowledge(a, log, 'acknowledge the trigger', async () => {
      const gh = await repoOf(a);
      if (result.kind === 'already-active') {
        // Answered, not queued twice.
        await reactTo(gh, a.commentId, true);
        const what = a.commentId ? 'Comment `/agent stop` first, then `/agent retry`.' : 'The label started nothing new. Comment `/agent stop` to stop it.';
        await gh.comment(thread, `@${a.sender} attempt ${result.attempt} is still running on this issue. ${what}`);
        return;
      }
      if (a.commentId) await reactTo(gh, a.commentId, false);
      else await gh.react(thread, 'eyes');
      await statusFor(gh, thread, result.jobId, 'issue');
    });
  };

  return act;
}
