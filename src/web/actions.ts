import type { Probot } from 'probot';
import type { Logger } from 'pino';
import { z } from 'zod';
import {
  parseRepoConfig,
  REPO_CONFIG_PATH,
  RepoConfigError,
  triggerLabelOf,
  type RepoConfig,
} from '../config/repo-config.js';
import { GitHubRepo, LABEL_WORKING, type Permission } from '../github/facade.js';
import { issueKey, IssueSnapshotSchema, JobFields, type IssueSnapshot } from '../queue/jobs.js';
import { FeedbackSchema, type AgentQueue } from '../queue/queue.js';
import { configErrorComment } from '../report/config-error.js';
import { statusComment } from '../report/status.js';
import { helpText } from './commands.js';
import type { PendingWork } from './pending.js';
import { checkLabelEvent, checkPermission, isBot, reviewAsksForChanges, DEFAULT_TRIGGER_LABEL } from './triggers.js';
import { TtlCache } from './ttl-cache.js';
import { Limiter } from '../util/limiter.js';

// An installation's client; its token renews itself when it expires.
const CLIENT_TTL_MS = 10 * 60_000;
// Kept briefly so a burst of events costs few API calls: a changed permission or config
// takes effect within these times (the worker reads the config afresh at job start).
const PERMISSION_TTL_MS = 60_000;
export const CONFIG_TTL_MS = 30_000;
// Acknowledgements started at once per installation. GitHub's write pacing (about one a
// second) holds the rest anyway; a burst of triggers waits here as closures rather than
// as thousands of requests built and parked in the client's rate limiter.
const ACKS_PER_INSTALLATION = 4;

// Who, where, and which delivery: `issueNumber` is the thread (an issue, or a PR of the app's).
const who = JobFields.pick({
  installationId: true,
  owner: true,
  repo: true,
  issueNumber: true,
  deliveryId: true,
  sender: true,
}).shape;
const where = {
  ...who,
  /** The repository's default branch, where its `.github/agent.yml` is read. */
  defaultBranch: z.string().min(1).max(255),
  /** The repository's page, for links in answers. */
  htmlUrl: z.url().max(500),
  /** When the web answered the webhook (ms since the epoch). */
  at: z.number(),
};
const id = z.number().int().positive();
const login = JobFields.shape.sender;

/** A command as `parseCommand` read it from the comment. */
const CommandSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('retry'), text: JobFields.shape.instructions }),
  z.strictObject({ kind: z.literal('stop') }),
  z.strictObject({ kind: z.literal('help') }),
  z.strictObject({ kind: z.literal('unknown'), word: z.string().max(40) }),
]);

/**
 * What a webhook said, recorded in the inbox before the webhook is answered and decided
 * and carried out after (see `Inbox`): small, validated, and free of secrets, like job
 * data. The web has dropped what it could tell from the payload alone (bots, the app's
 * own state labels, approvals, pull requests not opened by an app); who may trigger,
 * whether a pull request is this app's, and what the repository's config says are
 * decided here, after the answer, so an answer never waits on GitHub.
 */
export const WebEventSchema = z.discriminatedUnion('op', [
  /** A label added to an issue; `snapshot`, the issue's text as the payload showed it. */
  z.strictObject({
    op: z.literal('label'),
    ...where,
    label: z.string().min(1).max(100),
    snapshot: IssueSnapshotSchema.optional(),
  }),
  /**
   * An `/agent` command in a comment. `pullAuthor`: who opened the thread when it is a pull
   * request (commands there revise it, if it is the app's). `working`: whether the thread
   * carried `agent:working` when the comment was written. `snapshot`: on an issue, its text
   * as the payload showed it.
   */
  z.strictObject({
    op: z.literal('command'),
    ...where,
    commentId: id,
    command: CommandSchema,
    pullAuthor: login.nullable(),
    working: z.boolean(),
    snapshot: IssueSnapshotSchema.optional(),
  }),
  /** A review of an open pull request that is not an approval or a dismissal; `pullAuthor` opened it. */
  z.strictObject({
    op: z.literal('review'),
    ...where,
    reviewId: id,
    state: z.enum(['changes_requested', 'commented']),
    hasBody: z.boolean(),
    pullAuthor: login,
  }),
]);
export type WebEvent = z.infer<typeof WebEventSchema>;

// Items recorded by the web before events (stop 12): already checked by the web that
// recorded them, so they are carried out as they say. Kept so that an upgrade carries out
// what was waiting, or held by a process that died, instead of dead-listing it.
const legacyWhere = { ...who, at: where.at };
const LegacyActionSchema = z.discriminatedUnion('op', [
  z.strictObject({
    op: z.literal('trigger'),
    ...legacyWhere,
    commentId: id.optional(),
    instructions: JobFields.shape.instructions,
  }),
  z.strictObject({ op: z.literal('revise'), ...legacyWhere, commentId: id.optional(), feedback: FeedbackSchema }),
  z.strictObject({
    op: z.literal('stop'),
    ...legacyWhere,
    kind: JobFields.shape.kind,
    commentId: id,
    working: z.boolean(),
  }),
]);
type LegacyAction = z.infer<typeof LegacyActionSchema>;

/** What the inbox holds: events, and actions an earlier version recorded. */
export const InboxItemSchema = z.discriminatedUnion('op', [...WebEventSchema.options, ...LegacyActionSchema.options]);
export type InboxItem = WebEvent | LegacyAction;
/** Who, where and which delivery: what every inbox item says. */
type Where = Pick<InboxItem, 'installationId' | 'owner' | 'repo' | 'issueNumber' | 'deliveryId' | 'sender'>;
/** An event before the web stamps it with the time. */
export type NewEvent = WebEvent extends infer A ? (A extends WebEvent ? Omit<A, 'at'> : never) : never;

/** The thread an event is about: events on one thread are carried out in order. */
export function threadOf(e: InboxItem): string {
  return issueKey(e);
}

export interface EventDeps {
  queue: AgentQueue;
  /** Authenticates as the app (who it is) and as an installation (checks, acknowledgements). */
  probot: Pick<Probot, 'auth'>;
  log: Logger;
  /** Acknowledgements in flight; shutdown waits for them. */
  pending: PendingWork;
  /** SANDBOX_ALLOW_HOST_NETWORK: whether a config's `install_network: full` is valid here. */
  allowHostNetwork?: boolean;
  /**
   * Told, each time a repository's config is read, the one label that does anything there
   * (its trigger label; the default one, answered with an explanation, while the config
   * is invalid), so the web can drop other labels without recording them.
   */
  onLabelRead?: (repoKey: string, label: string) => void;
}

/** The key under which a repository's config (and its acting label) is kept. */
export function repoKeyOf(r: { owner: string; repo: string; defaultBranch: string }): string {
  return `${r.owner}/${r.repo}@${r.defaultBranch}`.toLowerCase();
}

/**
 * Carries out an event from the inbox: who sent it and the repository's config decide
 * whether it asks anything; then the queue work (enqueue, batch a review, stop); then,
 * without waiting for it, what people see: a reaction, the job's status comment, or an
 * answer. Doing an event twice does the queue work once (per delivery id). A GitHub read
 * that fails throws, and the inbox tries the event again.
 */
export function eventHandler(deps: EventDeps): (e: InboxItem) => Promise<void> {
  const clients = new TtlCache<Awaited<ReturnType<Probot['auth']>>>(CLIENT_TTL_MS);
  const permissions = new TtlCache<Permission>(PERMISSION_TTL_MS);
  const configs = new TtlCache<RepoConfig | RepoConfigError>(CONFIG_TTL_MS);
  const identity = appIdentity(deps.probot);
  const ackLimits = new Map<number, Limiter>();

  /** Runs an acknowledgement later, when its installation has a turn free. */
  const acknowledge = (e: Where, log: Logger, what: string, work: () => Promise<unknown>) => {
    let limit = ackLimits.get(e.installationId);
    if (!limit) {
      limit = new Limiter(ACKS_PER_INSTALLATION);
      ackLimits.set(e.installationId, limit);
    }
    deps.pending.later(log, what, () => limit.run(work));
  };
  /** The status comment of a new job, unless a worker that waited already made it. */
  const statusFor = async (gh: GitHubRepo, threadNumber: number, jobId: string, kind: 'issue' | 'revise') => {
    if (await deps.queue.statusRefs.claim(jobId)) {
      const commentId = await gh.comment(threadNumber, statusComment({ phase: 'queued', kind }));
      // A worker that waited too long made the job's comment meanwhile: this one goes.
      if ((await deps.queue.statusRefs.set(jobId, commentId)) !== commentId) await gh.deleteComment(commentId);
    }
  };
  const repoOf = async (e: Where) =>
    new GitHubRepo(await clients.get(String(e.installationId), () => deps.probot.auth(e.installationId)), {
      owner: e.owner,
      repo: e.repo,
    });

  /** Who may trigger: a person (not this app) with write access. */
  const mayTrigger = async (gh: GitHubRepo, sender: string, log: Logger): Promise<boolean> => {
    const permission = await permissions.get(`${gh.ref.owner}/${gh.ref.repo}:${sender}`.toLowerCase(), () =>
      gh.permission(sender),
    );
    const allowed = checkPermission(sender, permission);
    if (!allowed.run) log.info({ reason: allowed.reason }, 'skipped');
    return allowed.run;
  };
  /** The repository's config from its default branch, or why it cannot be used. */
  const readConfig = (gh: GitHubRepo, e: WebEvent): Promise<RepoConfig | RepoConfigError> =>
    configs.get(repoKeyOf(e), async () => {
      let config: RepoConfig | RepoConfigError;
      try {
        config = parseRepoConfig(await gh.fileText(REPO_CONFIG_PATH, e.defaultBranch), {
          allowHostNetwork: deps.allowHostNetwork ?? false,
        });
      } catch (err) {
        if (!(err instanceof RepoConfigError)) throw err;
        config = err;
      }
      deps.onLabelRead?.(
        repoKeyOf(e),
        config instanceof RepoConfigError ? DEFAULT_TRIGGER_LABEL : triggerLabelOf(config),
      );
      return config;
    });
  /** An invalid config is answered with a comment that explains it, and nothing runs. */
  const explainConfig = async (gh: GitHubRepo, e: WebEvent, err: RepoConfigError, log: Logger) => {
    log.info({ problems: err.problems }, `skipped: ${REPO_CONFIG_PATH} is invalid`);
    if (!(await deps.queue.claimAnswer(e.deliveryId))) return;
    const fileUrl = `${e.htmlUrl}/blob/${e.defaultBranch}/${REPO_CONFIG_PATH}`;
    acknowledge(e, log, 'explain the invalid config', () =>
      gh.comment(e.issueNumber, configErrorComment(err, { ref: e.defaultBranch, fileUrl })),
    );
  };
  const reactTo = (gh: GitHubRepo, commentId: number | undefined, confused: boolean) =>
    commentId ? gh.reactToComment(commentId, confused ? 'confused' : '+1') : Promise.resolve();

  /** Enqueues an issue job (the trigger label, or `/agent retry` on an issue) and acknowledges it. */
  const trigger = async (
    e: Where,
    gh: GitHubRepo,
    log: Logger,
    from: { commentId?: number; instructions?: string; snapshot?: IssueSnapshot },
  ) => {
    const result = await deps.queue.enqueue({
      installationId: e.installationId,
      owner: e.owner,
      repo: e.repo,
      issueNumber: e.issueNumber,
      deliveryId: e.deliveryId,
      sender: e.sender,
      ...(from.instructions ? { instructions: from.instructions } : {}),
      ...(from.snapshot ? { snapshot: from.snapshot } : {}),
    });
    log.info({ result }, from.commentId ? 'retry handled' : 'trigger handled');
    if (result.kind === 'duplicate-delivery') return;
    acknowledge(e, log, 'acknowledge the trigger', async () => {
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
      await statusFor(gh, e.issueNumber, result.jobId, 'issue');
    });
  };

  /** Batches review feedback for a PR of the app's (a review, or `/agent retry` on it) and acknowledges it. */
  const revise = async (
    e: Where,
    gh: GitHubRepo,
    log: Logger,
    from: { commentId?: number; reviewId?: number; text?: string },
  ) => {
    const feedback = {
      sender: e.sender,
      ...(from.reviewId ? { reviewId: from.reviewId } : {}),
      ...(from.text ? { text: from.text } : {}),
    };
    const result = await deps.queue.enqueueRevise({
      installationId: e.installationId,
      owner: e.owner,
      repo: e.repo,
      issueNumber: e.issueNumber,
      deliveryId: e.deliveryId,
      sender: e.sender,
      feedback,
    });
    log.info({ result }, from.commentId ? 'retry handled' : 'review handled');
    if (result.kind === 'duplicate-delivery') return;
    acknowledge(e, log, 'acknowledge the revision request', async () => {
      await reactTo(gh, from.commentId, false);
      if (result.kind === 'enqueued') await statusFor(gh, e.issueNumber, result.jobId, 'revise');
    });
  };

  const stop = async (
    e: Where,
    gh: GitHubRepo,
    log: Logger,
    { kind, commentId: fromComment, working }: { kind: 'issue' | 'revise'; commentId: number; working: boolean },
  ) => {
    const ref = { owner: e.owner, repo: e.repo, issueNumber: e.issueNumber };
    const stopped = await deps.queue.requestStop(kind, ref, e.sender, e.deliveryId);
    log.info({ stopped }, 'stop handled');
    if (stopped.kind === 'duplicate-delivery') return;
    acknowledge(e, log, 'answer the stop', async () => {
      await reactTo(gh, fromComment, stopped.kind === 'nothing-running');
      if (stopped.kind === 'nothing-running') {
        await gh.comment(e.issueNumber, `@${e.sender} nothing is running here, so there is nothing to stop.`);
      } else if (stopped.kind === 'removed') {
        // It never started: say so in its status comment; a running job says so itself.
        const body = statusComment({ phase: 'stopped', stoppedBy: e.sender, kind });
        const commentId = await deps.queue.statusRefs.get(stopped.jobId, 0);
        await (commentId ? gh.updateComment(commentId, body) : gh.comment(e.issueNumber, body));
        // A job sent back to the queue (a retry's backoff, a drained worker) had started.
        if (working) await gh.removeLabel(e.issueNumber, LABEL_WORKING);
      }
    });
  };

  /** An action an earlier version recorded: it was checked before it was recorded. */
  const legacy = async (a: LegacyAction, log: Logger): Promise<void> => {
    const gh = await repoOf(a);
    if (a.op === 'stop') return stop(a, gh, log, { kind: a.kind, commentId: a.commentId, working: a.working });
    if (a.op === 'revise')
      return revise(a, gh, log, {
        ...(a.commentId ? { commentId: a.commentId } : {}),
        ...(a.feedback.reviewId ? { reviewId: a.feedback.reviewId } : {}),
        ...(a.feedback.text ? { text: a.feedback.text } : {}),
      });
    return trigger(a, gh, log, {
      ...(a.commentId ? { commentId: a.commentId } : {}),
      ...(a.instructions ? { instructions: a.instructions } : {}),
    });
  };

  return async (e: InboxItem): Promise<void> => {
    const log = deps.log.child({
      delivery: e.deliveryId,
      repo: `${e.owner}/${e.repo}`,
      issue: e.issueNumber,
      op: e.op,
      ...(e.op === 'command' ? { command: e.command.kind } : {}),
    });
    if (e.op === 'trigger' || e.op === 'revise' || e.op === 'stop') return legacy(e, log);
    const me = await identity();
    // The web dropped bot accounts; an account named like the app is dropped here.
    if (isBot({ login: e.sender, type: 'User' }, me.slug)) return log.debug('skipped: the app itself');
    // On a pull request, only the app's own ones take commands and reviews: they are the ones it revises.
    const pullAuthor = e.op === 'label' ? null : e.pullAuthor;
    if (pullAuthor !== null && pullAuthor.toLowerCase() !== me.botLogin.toLowerCase())
      return log.info(`skipped: a ${e.op} on a pull request the app did not open`);
    const gh = await repoOf(e);
    if (!(await mayTrigger(gh, e.sender, log))) return;

    if (e.op === 'label') {
      // Which label triggers is the repository's choice; an unreadable config is only
      // reported for a label that would have triggered by default.
      const config = await readConfig(gh, e);
      if (config instanceof RepoConfigError) {
        if (e.label.toLowerCase() === DEFAULT_TRIGGER_LABEL) await explainConfig(gh, e, config, log);
        return;
      }
      const gate = checkLabelEvent({
        label: e.label,
        sender: { login: e.sender, type: 'User' },
        triggerLabel: triggerLabelOf(config),
      });
      if (!gate.run) return log.debug({ reason: gate.reason }, 'skipped');
      return trigger(e, gh, log, e.snapshot ? { snapshot: e.snapshot } : {});
    }

    if (e.op === 'review') {
      // A "commented" review without a body is a revision request only if it has line comments.
      const lineComments =
        !e.hasBody && e.state === 'commented' ? (await gh.reviewComments(e.issueNumber, e.reviewId)).length : 1;
      if (!reviewAsksForChanges(e.state, e.hasBody, lineComments)) return log.debug('skipped: an empty review');
      const config = await readConfig(gh, e);
      if (config instanceof RepoConfigError) return explainConfig(gh, e, config, log);
      return revise(e, gh, log, { reviewId: e.reviewId });
    }

    const { command } = e;
    if (command.kind === 'help' || command.kind === 'unknown') {
      if (!(await deps.queue.claimAnswer(e.deliveryId))) return;
      acknowledge(e, log, 'answer the command', async () => {
        await gh.reactToComment(e.commentId, command.kind === 'help' ? '+1' : 'confused');
        await gh.comment(e.issueNumber, helpText(command.kind === 'unknown' ? command.word : undefined));
      });
      return;
    }
    if (command.kind === 'stop')
      return stop(e, gh, log, {
        kind: e.pullAuthor !== null ? 'revise' : 'issue',
        commentId: e.commentId,
        working: e.working,
      });
    const config = await readConfig(gh, e);
    if (config instanceof RepoConfigError) return explainConfig(gh, e, config, log);
    if (e.pullAuthor !== null)
      return revise(e, gh, log, { commentId: e.commentId, ...(command.text ? { text: command.text } : {}) });
    return trigger(e, gh, log, {
      commentId: e.commentId,
      ...(command.text ? { instructions: command.text } : {}),
      ...(e.snapshot ? { snapshot: e.snapshot } : {}),
    });
  };
}

/** The app's slug and bot login, read once from `GET /app` (again after a failure). */
function appIdentity(probot: Pick<Probot, 'auth'>): () => Promise<{ slug: string; botLogin: string }> {
  let cached: Promise<{ slug: string; botLogin: string }> | undefined;
  return () => {
    cached ??= probot
      .auth()
      .then(async (octokit) => {
        const { data } = await octokit.rest.apps.getAuthenticated();
        const slug = data?.slug ?? '';
        if (!slug) throw new Error('GET /app answered without a slug');
        return { slug, botLogin: `${slug}[bot]` };
      })
      .catch((err: unknown) => {
        cached = undefined;
        throw err;
      });
    return cached;
  };
}
