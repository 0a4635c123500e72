import { REPO_CONFIG_PATH, RepoConfigError, triggerLabelOf, type RepoConfig } from '../config/repo-config.js';
import type { AppNames } from '../github/app-identity.js';
import type { CiSnapshot } from '../github/ci.js';
import type { Permission, PullDetail } from '../github/facade.js';
import type { IssueSnapshot } from '../queue/jobs.js';
import type { InboxItem, LegacyAction, WebEvent } from './inbox-item.js';
import { checkLabelEvent, checkPermission, DEFAULT_TRIGGER_LABEL, isBot, reviewAsksForChanges } from './triggers.js';

/** What GitHub said about an event so far; the decision asks for each when it needs it. */
export interface Known {
  /** The app's slug and bot login. */
  app?: AppNames;
  /** The sender's permission on the repository. */
  permission?: Permission;
  /** The repository's config from its default branch, or why it cannot be used. */
  config?: RepoConfig | RepoConfigError;
  /** How many line comments the review has (asked only of a bodiless "commented" review). */
  lineComments?: number;
  /** For a CI result: the open pull request of its branch, or null when there is none. */
  pull?: PullDetail | null;
  /** For a CI result: how every check and status on the commit stands. */
  ci?: CiSnapshot;
}

export type Fact = keyof Known;

/**
 * What to do about an event, as plain data: read a fact first, skip it (with what to log),
 * or carry out one action. `level: 'silent'` skips without a word.
 */
export type Decision =
  | { do: 'read'; fact: Fact }
  | { do: 'skip'; level: 'silent' }
  | { do: 'skip'; level: 'debug' | 'info'; message: string; reason?: string }
  /** Answer an invalid config with a comment that explains it (the file at `ref`, `fileUrl`); nothing runs. */
  | { do: 'explain-config'; error: RepoConfigError; ref: string; fileUrl: string }
  /** Answer `/agent help`, or an unknown command (`word`), on the comment. */
  | { do: 'answer'; commentId: number; word?: string }
  /** Enqueue an issue job (the trigger label, or `/agent retry` on an issue). */
  | { do: 'trigger'; commentId?: number; instructions?: string; snapshot?: IssueSnapshot }
  /** Batch review feedback for a pull request of the app's (a review, or `/agent retry` on it). */
  | { do: 'revise'; commentId?: number; reviewId?: number; text?: string }
  /** Stop the thread's job; `working`: whether the thread carried `agent:working`. */
  | { do: 'stop'; kind: 'issue' | 'revise'; commentId: number; working: boolean }
  /** Every check on the head of the app's pull request passed. */
  | { do: 'ci-green'; pull: PullDetail; passed: number; readyForReview: boolean }
  /** A check on the head of the app's pull request failed: a CI-fix job for that commit. */
  | { do: 'ci-fix'; pull: PullDetail; failed: string[] };
export type Action = Exclude<Decision, { do: 'read' } | { do: 'skip' }>;

const read = (fact: Fact): Decision => ({ do: 'read', fact });
const explainConfig = (e: WebEvent, error: RepoConfigError): Decision => ({
  do: 'explain-config',
  error,
  ref: e.defaultBranch,
  fileUrl: `${e.htmlUrl}/blob/${e.defaultBranch}/${REPO_CONFIG_PATH}`,
});

/**
 * Decides what an inbox item asks, from the item and what is known so far: who sent it
 * (bots and the app itself ask nothing; only people with write access trigger), whether a
 * pull request is the app's, and what the repository's config says. Asks for one fact at a
 * time, in the order the checks need them, so an event dropped early costs no more reads.
 */
export function decideEvent(e: InboxItem, known: Known): Decision {
  if (e.op === 'trigger' || e.op === 'revise' || e.op === 'stop') return legacyAction(e);
  if (!known.app) return read('app');
  if (e.op === 'ci') return decideCi(e, known);
  // The web dropped bot accounts; an account named like the app is dropped here.
  if (isBot({ login: e.sender, type: 'User' }, known.app.slug))
    return { do: 'skip', level: 'debug', message: 'skipped: the app itself' };
  // On a pull request, only the app's own ones take commands and reviews: they are the ones it revises.
  const pullAuthor = e.op === 'label' ? null : e.pullAuthor;
  if (pullAuthor !== null && pullAuthor.toLowerCase() !== known.app.login.toLowerCase())
    return { do: 'skip', level: 'info', message: `skipped: a ${e.op} on a pull request the app did not open` };
  if (!known.permission) return read('permission');
  const allowed = checkPermission(e.sender, known.permission);
  if (!allowed.run) return { do: 'skip', level: 'info', message: 'skipped', reason: allowed.reason };
  if (e.op === 'label') return decideLabel(e, known);
  if (e.op === 'review') return decideReview(e, known);
  return decideCommand(e, known);
}

/** A label: whether it triggers is the repository's choice. */
function decideLabel(e: Extract<WebEvent, { op: 'label' }>, known: Known): Decision {
  if (!known.config) return read('config');
  // An unreadable config is only reported for a label that would have triggered by default.
  if (known.config instanceof RepoConfigError)
    return e.label.toLowerCase() === DEFAULT_TRIGGER_LABEL
      ? explainConfig(e, known.config)
      : { do: 'skip', level: 'silent' };
  const gate = checkLabelEvent({
    label: e.label,
    sender: { login: e.sender, type: 'User' },
    triggerLabel: triggerLabelOf(known.config),
  });
  if (!gate.run) return { do: 'skip', level: 'debug', message: 'skipped', reason: gate.reason };
  return { do: 'trigger', ...(e.snapshot ? { snapshot: e.snapshot } : {}) };
}

/** A review of the app's pull request: a revision request unless it says nothing. */
function decideReview(e: Extract<WebEvent, { op: 'review' }>, known: Known): Decision {
  // A "commented" review without a body is a revision request only if it has line comments.
  const needsLineComments = !e.hasBody && e.state === 'commented';
  if (needsLineComments && known.lineComments === undefined) return read('lineComments');
  const lineComments = needsLineComments ? (known.lineComments ?? 0) : 1;
  if (!reviewAsksForChanges(e.state, e.hasBody, lineComments))
    return { do: 'skip', level: 'debug', message: 'skipped: an empty review' };
  if (!known.config) return read('config');
  if (known.config instanceof RepoConfigError) return explainConfig(e, known.config);
  return { do: 'revise', reviewId: e.reviewId };
}

/** An `/agent` command: help and unknown words are answered, stop stops, retry runs again. */
function decideCommand(e: Extract<WebEvent, { op: 'command' }>, known: Known): Decision {
  const { command } = e;
  if (command.kind === 'help') return { do: 'answer', commentId: e.commentId };
  if (command.kind === 'unknown') return { do: 'answer', commentId: e.commentId, word: command.word };
  if (command.kind === 'stop')
    return { do: 'stop', kind: e.pullAuthor !== null ? 'revise' : 'issue', commentId: e.commentId, working: e.working };
  if (!known.config) return read('config');
  if (known.config instanceof RepoConfigError) return explainConfig(e, known.config);
  if (e.pullAuthor !== null)
    return { do: 'revise', commentId: e.commentId, ...(command.text ? { text: command.text } : {}) };
  return {
    do: 'trigger',
    commentId: e.commentId,
    ...(command.text ? { instructions: command.text } : {}),
    ...(e.snapshot ? { snapshot: e.snapshot } : {}),
  };
}

/**
 * A CI result: acted on only for the head commit of an open pull request the app opened
 * from its own branch, and only once every check and status on it has completed. Who sent
 * the event asks nothing (it is GitHub, a CI app, or the app's own push).
 */
function decideCi(e: Extract<WebEvent, { op: 'ci' }>, known: Known): Decision {
  if (known.pull === undefined) return read('pull');
  const { pull } = known;
  if (pull === null)
    return { do: 'skip', level: 'debug', message: 'skipped: CI on a branch with no open pull request' };
  if (pull.author.toLowerCase() !== known.app!.login.toLowerCase() || !pull.sameRepo)
    return { do: 'skip', level: 'info', message: 'skipped: CI on a pull request the app did not open' };
  if (pull.headSha !== e.sha)
    return { do: 'skip', level: 'debug', message: 'skipped: CI on a commit that is no longer the head' };
  if (!known.config) return read('config');
  if (known.config instanceof RepoConfigError)
    return { do: 'skip', level: 'info', message: `skipped: CI result, but ${REPO_CONFIG_PATH} is invalid` };
  if (!known.ci) return read('ci');
  const { pending, failed, passed } = known.ci;
  if (pending.length > 0)
    return {
      do: 'skip',
      level: 'debug',
      message: `waiting: ${pending.length} check${pending.length === 1 ? '' : 's'} still running`,
    };
  if (failed.length > 0) return { do: 'ci-fix', pull, failed };
  if (passed === 0) return { do: 'skip', level: 'debug', message: 'skipped: the commit has no checks' };
  return {
    do: 'ci-green',
    pull,
    passed,
    readyForReview: pull.draft && known.config.pull_request?.draft_until_green === true,
  };
}

/** An action an earlier version recorded: it was checked before it was recorded. */
function legacyAction(a: LegacyAction): Action {
  if (a.op === 'stop') return { do: 'stop', kind: a.kind, commentId: a.commentId, working: a.working };
  if (a.op === 'revise')
    return {
      do: 'revise',
      ...(a.commentId ? { commentId: a.commentId } : {}),
      ...(a.feedback.reviewId ? { reviewId: a.feedback.reviewId } : {}),
      ...(a.feedback.text ? { text: a.feedback.text } : {}),
    };
  return {
    do: 'trigger',
    ...(a.commentId ? { commentId: a.commentId } : {}),
    ...(a.instructions ? { instructions: a.instructions } : {}),
  };
}
