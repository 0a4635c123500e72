import { createHash } from 'node:crypto';
import type { ApplicationFunction, Context } from 'probot';
import type { Logger } from 'pino';
import { LABEL_WORKING } from '../github/facade.js';
import type { Inbox } from '../queue/inbox.js';
import { APP_BRANCH, issueDigest, issueOfBranch, type IssueSnapshot } from '../queue/jobs.js';
import { CONFIG_TTL_MS } from './actions.js';
import { repoKeyOf, type NewEvent, type WebEvent } from './inbox-item.js';
import { parseCommand } from './commands.js';
import { hasText, isBot, isStateLabel, type Sender } from './triggers.js';
import { healthHandler, type HealthDeps } from './health.js';

export interface WebDeps {
  /** Where a webhook's event is recorded before the answer (see `drain-thread.ts` for after). */
  inbox: Inbox<WebEvent>;
  /** What `/healthz`, `/readyz` and `/metrics` answer from. */
  health: HealthDeps;
  log: Logger;
  /**
   * The label that does anything in a repository, as the inbox thread last read its config
   * (see `ActingLabels`): other labels there are dropped without being recorded.
   */
  actingLabels?: ActingLabels;
}

/**
 * Per repository, the one label that does anything, kept for as long as the inbox thread
 * keeps the config it came from: a changed trigger label takes effect within that time,
 * as it did when the web read the config itself.
 */
export class ActingLabels {
  private readonly labels = new Map<string, { label: string; until: number }>();

  constructor(private readonly ttlMs = CONFIG_TTL_MS) {}

  set(repoKey: string, label: string): void {
    this.labels.set(repoKey, { label: label.toLowerCase(), until: Date.now() + this.ttlMs });
  }

  /** False only when the repository's acting label is known and is another one. */
  mayAct(repoKey: string, label: string): boolean {
    const known = this.labels.get(repoKey);
    if (!known) return true;
    if (known.until <= Date.now()) {
      this.labels.delete(repoKey);
      return true;
    }
    return known.label === label.toLowerCase();
  }
}

interface Repository {
  name: string;
  default_branch: string;
  html_url: string;
  owner: { login: string };
}

/** How long a delivered body is remembered against replays: as long as a delivery id is (the queue's 7 days). */
export const REPLAY_WINDOW_S = 7 * 24 * 3600;

/**
 * The issue's text as this payload shows it, which the job later compares with the issue
 * as it then is: the task is what the writer who triggered saw.
 */
function snapshotOf(issue: { title: string; body?: string | null; updated_at: string }): IssueSnapshot | undefined {
  return Number.isNaN(Date.parse(issue.updated_at))
    ? undefined
    : { digest: issueDigest(issue), updatedAt: issue.updated_at };
}

/** Whether a login is an app's (`name[bot]`): only those can be the author of the app's PRs. */
const isAppLogin = (login: string | undefined) => (login ?? '').toLowerCase().endsWith('[bot]');

/**
 * The Probot app: read the event, drop what the payload alone shows asks nothing, record
 * the rest in the inbox, answer. The answer waits on one Redis write and nothing else: no
 * GitHub call, no model call, no clone. Who sent it and the repository's config are
 * checked from the inbox right after the answer, in order per thread, and that survives
 * a crash of this process (see `eventHandler`).
 */
export function agentApp(deps: WebDeps): ApplicationFunction {
  return (app, { addHandler }) => {
    addHandler(healthHandler(deps.health));
    const record = recorder(deps);
    app.on('issues.labeled', onIssueLabeled(deps, record));
    app.on('issue_comment.created', onIssueComment(deps, record));
    app.on('pull_request_review.submitted', onReviewSubmitted(deps, record));
    app.on(
      'check_suite.completed',
      onCiResult(deps, record, 'check_suite', (p) => ({
        sha: p.check_suite.head_sha,
        branches: [p.check_suite.head_branch, ...p.check_suite.pull_requests.map((pr) => pr.head.ref)],
      })),
    );
    app.on(
      'check_run.completed',
      onCiResult(deps, record, 'check_run', (p) => ({
        sha: p.check_run.head_sha,
        branches: [p.check_run.check_suite?.head_branch, ...p.check_run.pull_requests.map((pr) => pr.head.ref)],
      })),
    );
    app.on(
      'workflow_run.completed',
      onCiResult(deps, record, 'workflow_run', (p) => ({
        sha: p.workflow_run.head_sha,
        branches: [p.workflow_run.head_branch, ...(p.workflow_run.pull_requests ?? []).map((pr) => pr?.head.ref)],
      })),
    );
    // A pending status says nothing has completed.
    app.on(
      'status',
      onCiResult(deps, record, 'status', (p) => ({
        sha: p.sha,
        branches: p.state === 'pending' ? [] : p.branches.map((b) => b.name),
      })),
    );
  };
}

/** Records an event in the inbox (once per signed body). */
type RecordEvent = (event: NewEvent, payload: unknown, log: Logger) => Promise<void>;

/**
 * Records an event; the webhook is answered once it is in Redis. The signature covers
 * only the body, so a captured body could be sent again under a new delivery id: the
 * same payload is recorded once per REPLAY_WINDOW_S, whatever the delivery id says.
 */
function recorder(deps: WebDeps): RecordEvent {
  return async (event, payload, log) => {
    const digest = createHash('sha256').update(JSON.stringify(payload)).digest('hex');
    if (
      !(await deps.inbox.pushOnce({ ...event, at: Date.now() } as WebEvent, digest, event.deliveryId, REPLAY_WINDOW_S))
    ) {
      log.warn(
        { op: event.op, body: digest },
        'skipped: this signed body was already delivered under another delivery id (a replay)',
      );
      return;
    }
    log.debug({ op: event.op }, 'recorded for after the answer');
  };
}

/** Who, where and which delivery, as every recorded event says them. */
function whereOf(
  installationId: number,
  repository: Repository,
  issueNumber: number,
  deliveryId: string,
  sender: string,
) {
  return {
    installationId,
    owner: repository.owner.login,
    repo: repository.name,
    issueNumber,
    deliveryId,
    sender,
    defaultBranch: repository.default_branch,
    htmlUrl: repository.html_url,
  };
}

/** A label added to an issue: recorded unless it is a state label, a bot's, or not the repository's acting label. */
function onIssueLabeled(deps: WebDeps, record: RecordEvent) {
  return async (context: Context<'issues.labeled'>) => {
    const { payload } = context;
    const log = deps.log.child({
      delivery: context.id,
      repo: payload.repository.full_name,
      issue: payload.issue.number,
    });
    const label = payload.label?.name;
    if (isStateLabel(label) || !label) return;
    const sender = payload.sender as Sender;
    if (isBot(sender)) return log.debug('skipped: sender is a bot');
    if (payload.issue.pull_request) return log.info('skipped: the label is on a pull request, not an issue');
    if (!payload.installation) return log.warn('skipped: event carries no installation');
    const repoKey = repoKeyOf({
      owner: payload.repository.owner.login,
      repo: payload.repository.name,
      defaultBranch: payload.repository.default_branch,
    });
    if (deps.actingLabels && !deps.actingLabels.mayAct(repoKey, label))
      return log.debug({ label }, 'skipped: not the label that acts in this repository');
    const snapshot = snapshotOf(payload.issue);
    await record(
      {
        op: 'label',
        ...whereOf(payload.installation.id, payload.repository, payload.issue.number, context.id, sender.login),
        label,
        ...(snapshot ? { snapshot } : {}),
      },
      payload,
      log,
    );
  };
}

/** An `/agent` command in a comment: recorded unless a bot wrote it or it is on a pull request the app did not open. */
function onIssueComment(deps: WebDeps, record: RecordEvent) {
  return async (context: Context<'issue_comment.created'>) => {
    const { payload } = context;
    const command = parseCommand(payload.comment.body ?? '');
    if (!command) return;
    const thread = payload.issue.number;
    const log = deps.log.child({
      delivery: context.id,
      repo: payload.repository.full_name,
      issue: thread,
      command: command.kind,
    });
    const sender = payload.comment.user as Sender;
    if (isBot(sender) || isBot(payload.sender as Sender)) return log.debug('skipped: a bot wrote the command');
    if (!payload.installation) return log.warn('skipped: event carries no installation');
    const onPull = payload.issue.pull_request !== undefined && payload.issue.pull_request !== null;
    const pullAuthor = onPull ? (payload.issue.user?.login ?? '') : null;
    // Only the app's own pull requests take commands; a person's is dropped at once.
    if (pullAuthor !== null && !isAppLogin(pullAuthor))
      return log.info('skipped: a command on a pull request the app did not open');
    const working = payload.issue.labels?.some((l) => l.name === LABEL_WORKING) ?? false;
    const snapshot = pullAuthor === null ? snapshotOf(payload.issue) : undefined;
    await record(
      {
        op: 'command',
        ...whereOf(payload.installation.id, payload.repository, thread, context.id, sender.login),
        commentId: payload.comment.id,
        command,
        pullAuthor,
        working,
        ...(snapshot ? { snapshot } : {}),
      },
      payload,
      log,
    );
  };
}

type CiEvent = 'check_suite' | 'check_run' | 'workflow_run' | 'status';

/**
 * A CI result on a commit: recorded once per branch of the app's (`agent/issue-<n>…`) it is
 * on, and dropped at once for any other branch. Whether the branch's pull request is the
 * app's, whether the commit is its head and whether every check has completed are read
 * after the answer. Bots are not dropped here: CI results come from apps, and from the
 * app's own pushes.
 */
function onCiResult<E extends CiEvent>(
  deps: WebDeps,
  record: RecordEvent,
  event: E,
  read: (payload: Context<E>['payload']) => { sha: string; branches: Array<string | null | undefined> },
) {
  return async (context: Context<E>) => {
    const payload = context.payload as Context<E>['payload'] & {
      repository: Repository & { full_name: string };
      installation?: { id: number };
      sender: { login: string };
    };
    const { sha, branches } = read(context.payload);
    const ours = [...new Set(branches.filter((b): b is string => typeof b === 'string' && APP_BRANCH.test(b)))];
    if (ours.length === 0) return;
    const log = deps.log.child({
      delivery: context.id,
      repo: payload.repository.full_name,
      event,
      sha: sha.slice(0, 12),
    });
    if (!payload.installation) return log.warn('skipped: event carries no installation');
    if (!/^[0-9a-f]{40}$/.test(sha)) return log.warn('skipped: the event names no commit');
    for (const branch of ours.slice(0, 5)) {
      await record(
        {
          op: 'ci',
          ...whereOf(
            payload.installation.id,
            payload.repository,
            issueOfBranch(branch)!,
            context.id,
            payload.sender.login,
          ),
          event,
          branch,
          sha,
        },
        { branch, payload },
        log,
      );
    }
  };
}

/** A review of an open pull request of the app's that asks for something: recorded. */
function onReviewSubmitted(deps: WebDeps, record: RecordEvent) {
  return async (context: Context<'pull_request_review.submitted'>) => {
    const { payload } = context;
    const { review, pull_request: pull } = payload;
    const log = deps.log.child({
      delivery: context.id,
      repo: payload.repository.full_name,
      pull: pull.number,
      review: review.id,
    });
    const reviewer = (review.user ?? payload.sender) as Sender;
    if (isBot(reviewer) || isBot(payload.sender as Sender)) return log.debug('skipped: a bot reviewed');
    const state = review.state.toLowerCase();
    if (state !== 'changes_requested' && state !== 'commented')
      return log.debug({ state: review.state }, 'skipped: the review asks for nothing');
    if (pull.state !== 'open') return log.info('skipped: the pull request is not open');
    if (!payload.installation) return log.warn('skipped: event carries no installation');
    if (!isAppLogin(pull.user?.login)) return log.debug('skipped: a pull request the app did not open');
    await record(
      {
        op: 'review',
        ...whereOf(payload.installation.id, payload.repository, pull.number, context.id, reviewer.login),
        reviewId: review.id,
        state,
        hasBody: hasText(review.body),
        pullAuthor: pull.user!.login,
      },
      payload,
      log,
    );
  };
}
