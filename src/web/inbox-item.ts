/**
 * What the web records in the inbox: the events webhooks said, and the actions an earlier
 * version recorded. The web writes them; the drain thread reads them back and carries them out.
 */
import { z } from 'zod';
import { APP_BRANCH, issueKey, IssueSnapshotSchema, JobFields } from '../queue/jobs.js';
import { FeedbackSchema } from '../queue/queue.js';

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
  /**
   * A CI result on a commit of one of the app's branches (`agent/issue-<n>…`): a check suite,
   * check run or workflow run completed, or a commit status set. `issueNumber` is the issue
   * the branch was made for; the pull request is found by its branch when carried out.
   */
  z.strictObject({
    op: z.literal('ci'),
    ...where,
    event: z.enum(['check_suite', 'check_run', 'workflow_run', 'status']),
    branch: z.string().max(255).regex(APP_BRANCH, "one of the app's branches"),
    sha: z.string().regex(/^[0-9a-f]{40}$/, 'a commit SHA'),
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
    kind: z.enum(['issue', 'revise']),
    commentId: id,
    working: z.boolean(),
  }),
]);
export type LegacyAction = z.infer<typeof LegacyActionSchema>;

/** What the inbox holds: events, and actions an earlier version recorded. */
export const InboxItemSchema = z.discriminatedUnion('op', [...WebEventSchema.options, ...LegacyActionSchema.options]);
export type InboxItem = WebEvent | LegacyAction;
/** Who, where and which delivery: what every inbox item says. */
export type Where = Pick<InboxItem, 'installationId' | 'owner' | 'repo' | 'issueNumber' | 'deliveryId' | 'sender'>;
/** An event before the web stamps it with the time. */
export type NewEvent = WebEvent extends infer A ? (A extends WebEvent ? Omit<A, 'at'> : never) : never;

/** The thread an event is about: events on one thread are carried out in order; CI results, per branch. */
export function threadOf(e: InboxItem): string {
  return e.op === 'ci' ? `${e.owner}/${e.repo}@${e.branch}`.toLowerCase() : issueKey(e);
}

/** The key under which a repository's config (and its acting label) is kept. */
export function repoKeyOf(r: { owner: string; repo: string; defaultBranch: string }): string {
  return `${r.owner}/${r.repo}@${r.defaultBranch}`.toLowerCase();
}
