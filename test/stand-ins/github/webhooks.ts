// Real webhook payloads from @octokit/webhooks-examples, signed and delivered the way GitHub does.
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { sign } from '@octokit/webhooks-methods';
import { nodeId, userId, userObject } from './users.js';

type Payload = Record<string, unknown> & { action?: string };

interface ExampleGroup {
  name: string;
  examples: Payload[];
}

let examples: ExampleGroup[] | undefined;

function allExamples(): ExampleGroup[] {
  if (!examples) {
    // The package has no `exports`; its main entry is the JSON list of {name, examples[]}.
    examples = createRequire(import.meta.url)('@octokit/webhooks-examples') as ExampleGroup[];
  }
  return examples;
}

/** A deep copy of the first real example payload for `event` (and `action`, when given). */
export function loadExample(event: string, action?: string): Payload {
  const group = allExamples().find((g) => g.name === event);
  if (!group) throw new Error(`@octokit/webhooks-examples has no event "${event}"`);
  const example = group.examples.find((e) => action === undefined || e.action === action);
  if (!example) {
    const actions = [...new Set(group.examples.map((e) => e.action))].join(', ');
    throw new Error(`@octokit/webhooks-examples has no "${event}" example with action "${action}" (has: ${actions})`);
  }
  return structuredClone(example);
}

export interface WebhookDelivery {
  url: string;
  secret: string;
  event: string;
  payload: unknown;
  deliveryId?: string;
}

/** POSTs a payload signed with X-Hub-Signature-256 exactly as GitHub's Hookshot sends it. */
export async function sendWebhook(d: WebhookDelivery): Promise<{ status: number; body: string; deliveryId: string }> {
  const body = JSON.stringify(d.payload);
  const deliveryId = d.deliveryId ?? randomUUID();
  const response = await fetch(d.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'GitHub-Hookshot/7d4c5a1',
      'x-github-event': d.event,
      'x-github-delivery': deliveryId,
      'x-hub-signature-256': await sign(d.secret, body),
      'x-github-hook-id': '424242',
      'x-github-hook-installation-target-type': 'integration',
      'x-github-hook-installation-target-id': '4242',
    },
    body,
  });
  return { status: response.status, body: await response.text(), deliveryId };
}

export interface Actor {
  login: string;
  type: 'User' | 'Bot' | 'Organization';
}

/** Which stand-in repository a payload describes, and where the stand-in lives. */
export interface RepoTarget {
  owner: string;
  repo: string;
  /** The stand-in's base URL (`standIn.url`); repository URLs and clone_url point there. */
  url?: string;
  defaultBranch?: string;
}

interface Rewritten {
  payload: Payload & { repository: Record<string, unknown> };
  /** `${url}/api/v3`, or api.github.com when no url was given. */
  api: string;
  web: string;
  fullName: string;
  actor: (a: Actor) => Record<string, unknown>;
}

/**
 * The real example for `event`/`action`, with every URL of the example repository pointed at
 * the stand-in repository, and repository, sender and installation set. Callers then set the
 * fields that describe their issue, comment or review.
 */
function exampleFor(
  event: string,
  action: string | undefined,
  o: RepoTarget & { sender: Actor; installationId: number },
): Rewritten {
  const web = o.url ?? 'https://github.com';
  const api = o.url ? `${o.url}/api/v3` : 'https://api.github.com';
  const fullName = `${o.owner}/${o.repo}`;
  // Rewrite every URL of the example repository first, then set the fields that matter.
  const payload = JSON.parse(
    JSON.stringify(loadExample(event, action))
      .replaceAll('https://api.github.com/repos/Codertocat/Hello-World', `${api}/repos/${fullName}`)
      .replaceAll('https://github.com/Codertocat/Hello-World', `${web}/${fullName}`)
      .replaceAll('git://github.com/Codertocat/Hello-World', `git://${web.replace(/^https?:\/\//, '')}/${fullName}`)
      .replaceAll(
        'git@github.com:Codertocat/Hello-World',
        `git@${web.replace(/^https?:\/\//, '').replace(/:\d+$/, '')}:${fullName}`,
      )
      .replaceAll('https://api.github.com', api),
  ) as Rewritten['payload'];

  const actor = (a: Actor): Record<string, unknown> => {
    const u = userObject(a.login, web);
    return { ...u, type: a.type, node_id: nodeId(a.type, userId(a.login)) };
  };
  const repository = payload.repository;
  repository.name = o.repo;
  repository.full_name = fullName;
  repository.owner = actor({ login: o.owner, type: 'User' });
  repository.html_url = `${web}/${fullName}`;
  repository.clone_url = `${web}/${fullName}.git`;
  repository.default_branch = o.defaultBranch ?? 'main';
  repository.private = true;
  // Fields today's GitHub sends that the (older) examples lack.
  repository.visibility = 'private';
  repository.topics ??= [];
  repository.has_discussions ??= false;

  payload.sender = actor(o.sender);
  payload.installation = { id: o.installationId, node_id: nodeId('Installation', o.installationId) };
  return { payload, api, web, fullName, actor };
}

/** Sets the fields of a webhook `issue` object that describe one stand-in issue or pull request. */
function describeIssue(
  w: Rewritten,
  issue: Record<string, unknown>,
  o: { owner: string; issueNumber: number; title: string; body: string; author: Actor; isPullRequest: boolean },
): void {
  const url = `${w.api}/repos/${w.fullName}/issues/${o.issueNumber}`;
  const html = `${w.web}/${w.fullName}/${o.isPullRequest ? 'pull' : 'issues'}/${o.issueNumber}`;
  issue.number = o.issueNumber;
  issue.title = o.title;
  issue.body = o.body;
  issue.user = w.actor(o.author);
  issue.url = url;
  issue.repository_url = `${w.api}/repos/${w.fullName}`;
  issue.html_url = html;
  issue.comments_url = `${url}/comments`;
  issue.events_url = `${url}/events`;
  issue.labels_url = `${url}/labels{/name}`;
  issue.assignee = null;
  issue.assignees = [];
  issue.milestone = null;
  issue.active_lock_reason ??= null;
  issue.reactions = reactionRollup(`${url}/reactions`);
  // Only ownership is knowable here; the app must ask the permission API, not trust this field.
  issue.author_association = association(o.author, o.owner);
  if (o.isPullRequest) {
    const pull = `${w.web}/${w.fullName}/pull/${o.issueNumber}`;
    issue.pull_request = {
      url: `${w.api}/repos/${w.fullName}/pulls/${o.issueNumber}`,
      html_url: pull,
      diff_url: `${pull}.diff`,
      patch_url: `${pull}.patch`,
      merged_at: null,
    };
  } else {
    delete issue.pull_request;
  }
}

function association(a: Actor, owner: string): string {
  return a.login.toLowerCase() === owner.toLowerCase() ? 'OWNER' : 'NONE';
}

function reactionRollup(url: string): Record<string, unknown> {
  return { url, total_count: 0, '+1': 0, '-1': 0, laugh: 0, hooray: 0, confused: 0, heart: 0, rocket: 0, eyes: 0 };
}

export interface IssueLabeledOptions extends RepoTarget {
  issueNumber: number;
  title: string;
  body: string;
  label: string;
  sender: Actor;
  installationId: number;
  /** Who opened the issue; the sender when not given. */
  author?: Actor;
  /** The issue's `updated_at` after the label (the stand-in's `markLabeled`); a fresh stamp when not given. */
  updatedAt?: string;
}

let lastStamp = 0;
/**
 * GitHub's timestamp (whole seconds) of an event that changes the issue: a label bumps its
 * `updated_at`, so two label events never carry the same body. Strictly increasing here,
 * even for events sent within one second.
 */
function nextStamp(): string {
  lastStamp = Math.max(Math.floor(Date.now() / 1000), lastStamp + 1);
  return new Date(lastStamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The real `issues.labeled` example, rewritten to describe one issue in one stand-in repository. */
export function issueLabeledPayload(o: IssueLabeledOptions): Payload {
  const w = exampleFor('issues', 'labeled', o);
  const issue = w.payload.issue as Record<string, unknown>;
  describeIssue(w, issue, { ...o, author: o.author ?? o.sender, isPullRequest: false });
  const label = {
    ...(w.payload.label as Record<string, unknown>),
    name: o.label,
    url: `${w.api}/repos/${w.fullName}/labels/${encodeURIComponent(o.label)}`,
  };
  w.payload.label = label;
  issue.labels = [label];
  issue.updated_at = o.updatedAt ?? nextStamp();
  return w.payload;
}

export interface IssueCommentOptions extends RepoTarget {
  /** The issue or pull request the comment is on (they share numbers). */
  issueNumber: number;
  title: string;
  body: string;
  /** Adds `issue.pull_request`, as GitHub does for a comment on a pull request's conversation. */
  isPullRequest?: boolean;
  /** The comment's id, e.g. what `standIn.addComment` returned, so the app can react to it. */
  commentId: number;
  commentBody: string;
  /** Who wrote the comment. */
  sender: Actor;
  installationId: number;
  /** Who opened the issue or pull request; the sender when not given. */
  author?: Actor;
  /** Names of the labels the issue carries; none when not given. */
  labels?: string[];
  /** The issue's `updated_at` (the stand-in's `issueText`); the example's when not given. */
  updatedAt?: string;
}

/** The real `issue_comment.created` example, rewritten to describe one comment on a stand-in issue or pull request. */
export function issueCommentPayload(o: IssueCommentOptions): Payload {
  const w = exampleFor('issue_comment', 'created', o);
  const isPullRequest = o.isPullRequest === true;
  const issue = w.payload.issue as Record<string, unknown>;
  describeIssue(w, issue, { ...o, author: o.author ?? o.sender, isPullRequest });
  // Label ids only need to be stable here: the payload cannot know the stand-in's.
  issue.labels = (o.labels ?? []).map((name) => ({
    id: userId(`label:${name}`),
    node_id: nodeId('Label', userId(`label:${name}`)),
    url: `${w.api}/repos/${w.fullName}/labels/${encodeURIComponent(name)}`,
    name,
    color: 'ededed',
    default: false,
    description: null,
  }));

  const stamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  // A comment moves the issue's `updated_at` on, as on GitHub.
  issue.updated_at = o.updatedAt ?? stamp;
  const url = `${w.api}/repos/${w.fullName}/issues/comments/${o.commentId}`;
  w.payload.comment = {
    ...(w.payload.comment as Record<string, unknown>),
    id: o.commentId,
    node_id: nodeId('IssueComment', o.commentId),
    url,
    html_url: `${issue.html_url as string}#issuecomment-${o.commentId}`,
    issue_url: issue.url,
    body: o.commentBody,
    user: w.actor(o.sender),
    created_at: stamp,
    updated_at: stamp,
    author_association: association(o.sender, o.owner),
    performed_via_github_app: null,
    reactions: reactionRollup(`${url}/reactions`),
  };
  return w.payload;
}

/** The parts of a REST review (`standIn.addReview(...).review`) a review webhook carries. */
export interface RestReviewLike {
  id: number;
  node_id: string;
  user: unknown;
  body: string | null;
  state: string;
  commit_id: string | null;
  submitted_at?: string;
  html_url: string;
  pull_request_url: string;
  author_association: string;
  _links: unknown;
}

/** The parts of a REST pull request (`standIn.addReview(...).pullRequest`) a review webhook carries. */
export interface RestPullLike extends Record<string, unknown> {
  number: number;
  head: { ref: string; sha: string; label?: string };
  base: { ref: string; sha: string; label?: string };
}

export interface PullRequestReviewOptions extends RepoTarget {
  installationId: number;
  /** Who submitted the review (the review's user, normally). */
  sender: Actor;
  review: RestReviewLike;
  pullRequest: RestPullLike;
}

// The fields of a pull request that review webhooks carry (GitHub's "simple pull request").
const SIMPLE_PULL_FIELDS = [
  'url',
  'id',
  'node_id',
  'html_url',
  'diff_url',
  'patch_url',
  'issue_url',
  'number',
  'state',
  'locked',
  'title',
  'user',
  'body',
  'created_at',
  'updated_at',
  'closed_at',
  'merged_at',
  'merge_commit_sha',
  'assignee',
  'assignees',
  'requested_reviewers',
  'requested_teams',
  'labels',
  'milestone',
  'draft',
  'commits_url',
  'review_comments_url',
  'review_comment_url',
  'comments_url',
  'statuses_url',
  '_links',
  'author_association',
  'auto_merge',
  'active_lock_reason',
] as const;

/** The real `pull_request_review.submitted` example, rewritten to carry one review from the stand-in. */
export function pullRequestReviewPayload(o: PullRequestReviewOptions): Payload {
  const w = exampleFor('pull_request_review', 'submitted', o);
  const r = o.review;
  w.payload.review = {
    ...(w.payload.review as Record<string, unknown>),
    id: r.id,
    node_id: r.node_id,
    user: r.user,
    // GitHub sends null, not "", for a review submitted without a body.
    body: r.body === '' ? null : r.body,
    commit_id: r.commit_id,
    submitted_at: r.submitted_at ?? null,
    // Webhooks spell the state in lower case; the REST API in upper case.
    state: r.state.toLowerCase(),
    html_url: r.html_url,
    pull_request_url: r.pull_request_url,
    author_association: r.author_association,
    _links: r._links,
  };
  const p = o.pullRequest;
  const pull: Record<string, unknown> = {};
  for (const k of SIMPLE_PULL_FIELDS) if (k in p) pull[k] = p[k];
  const side = (ref: { ref: string; sha: string }): Record<string, unknown> => ({
    label: `${o.owner}:${ref.ref}`,
    ref: ref.ref,
    sha: ref.sha,
    user: w.actor({ login: o.owner, type: 'User' }),
    repo: w.payload.repository,
  });
  pull.head = side(p.head);
  pull.base = side(p.base);
  w.payload.pull_request = pull;
  return w.payload;
}

/** A pull request whose head is the commit a CI event is about (GitHub's minimal `pull_requests` entry). */
export interface CiPullRequest {
  number: number;
  /** The pull request's id (REST `id`); a stable stand-in value when not given. */
  id?: number;
  headRef: string;
  headSha: string;
  baseRef: string;
  baseSha: string;
}

/** The app that ran the checks; GitHub Actions when not given. */
export interface CiApp {
  id: number;
  slug: string;
  name: string;
}

const GITHUB_ACTIONS: CiApp = { id: 15368, slug: 'github-actions', name: 'GitHub Actions' };

export interface CiEventOptions extends RepoTarget {
  installationId: number;
  headSha: string;
  headBranch: string;
  conclusion: 'success' | 'failure' | 'neutral' | 'cancelled' | 'skipped' | 'timed_out' | 'action_required';
  /** Open pull requests whose head is `headSha`; none when not given. */
  pullRequests?: CiPullRequest[];
  app?: CiApp;
  /** Who pushed the commit; the repository owner when not given. */
  sender?: Actor;
}

/** The parts every completed CI event shares: the rewritten example and its pull_requests and app. */
function ciExample(event: string, action: string, o: CiEventOptions) {
  const w = exampleFor(event, action, { ...o, sender: o.sender ?? { login: o.owner, type: 'User' } });
  const repoRef = { id: w.payload.repository.id, url: `${w.api}/repos/${w.fullName}`, name: o.repo };
  const pullRequests = (o.pullRequests ?? []).map((p) => ({
    url: `${w.api}/repos/${w.fullName}/pulls/${p.number}`,
    id: p.id ?? userId(`pull:${w.fullName}#${p.number}`),
    number: p.number,
    head: { ref: p.headRef, sha: p.headSha, repo: repoRef },
    base: { ref: p.baseRef, sha: p.baseSha, repo: repoRef },
  }));
  const a = o.app ?? GITHUB_ACTIONS;
  const app = (example: Record<string, unknown>): Record<string, unknown> => ({
    ...example,
    id: a.id,
    slug: a.slug,
    name: a.name,
    node_id: nodeId('Integration', a.id),
    html_url: `${w.web}/apps/${a.slug}`,
  });
  return { w, pullRequests, app };
}

export interface CheckSuiteOptions extends CiEventOptions {
  checkSuiteId: number;
}

/** The real `check_suite.completed` example, rewritten to describe one suite on a stand-in commit. */
export function checkSuiteCompletedPayload(o: CheckSuiteOptions): Payload {
  const { w, pullRequests, app } = ciExample('check_suite', 'completed', o);
  const suite = w.payload.check_suite as Record<string, unknown>;
  Object.assign(suite, {
    id: o.checkSuiteId,
    node_id: nodeId('CheckSuite', o.checkSuiteId),
    head_branch: o.headBranch,
    head_sha: o.headSha,
    status: 'completed',
    conclusion: o.conclusion,
    url: `${w.api}/repos/${w.fullName}/check-suites/${o.checkSuiteId}`,
    after: o.headSha,
    pull_requests: pullRequests,
    app: app(suite.app as Record<string, unknown>),
    check_runs_url: `${w.api}/repos/${w.fullName}/check-suites/${o.checkSuiteId}/check-runs`,
    head_commit: { ...(suite.head_commit as Record<string, unknown>), id: o.headSha },
  });
  return w.payload;
}

export interface CheckRunOptions extends CheckSuiteOptions {
  checkRunId: number;
  name: string;
  /** The run's output; all null when not given, as for a job that wrote none. */
  output?: { title: string; summary: string; text?: string };
}

/** The real `check_run.completed` example, rewritten to describe one check run on a stand-in commit. */
export function checkRunCompletedPayload(o: CheckRunOptions): Payload {
  const { w, pullRequests, app } = ciExample('check_run', 'completed', o);
  const run = w.payload.check_run as Record<string, unknown>;
  const url = `${w.api}/repos/${w.fullName}/check-runs/${o.checkRunId}`;
  Object.assign(run, {
    id: o.checkRunId,
    node_id: nodeId('CheckRun', o.checkRunId),
    name: o.name,
    head_sha: o.headSha,
    url,
    html_url: `${w.web}/${w.fullName}/runs/${o.checkRunId}`,
    details_url: `${w.web}/${w.fullName}/runs/${o.checkRunId}`,
    status: 'completed',
    conclusion: o.conclusion,
    output: {
      title: o.output?.title ?? null,
      summary: o.output?.summary ?? null,
      text: o.output?.text ?? null,
      annotations_count: 0,
      annotations_url: `${url}/annotations`,
    },
    pull_requests: pullRequests,
    app: app(run.app as Record<string, unknown>),
  });
  const suite = run.check_suite as Record<string, unknown>;
  Object.assign(suite, {
    id: o.checkSuiteId,
    node_id: nodeId('CheckSuite', o.checkSuiteId),
    head_branch: o.headBranch,
    head_sha: o.headSha,
    url: `${w.api}/repos/${w.fullName}/check-suites/${o.checkSuiteId}`,
    after: o.headSha,
    pull_requests: pullRequests,
    app: app(suite.app as Record<string, unknown>),
  });
  return w.payload;
}

export interface WorkflowRunOptions extends CheckSuiteOptions {
  workflowRunId: number;
  /** The workflow's name, e.g. "CI". */
  name: string;
  runAttempt?: number;
}

/** The real `workflow_run.completed` example, rewritten to describe one run on a stand-in commit. */
export function workflowRunCompletedPayload(o: WorkflowRunOptions): Payload {
  const { w, pullRequests } = ciExample('workflow_run', 'completed', o);
  // The example's run lives in another organisation's repository: describe the stand-in's instead.
  delete w.payload.organization;
  const lite = (example: Record<string, unknown>): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(example)) out[k] = w.payload.repository[k] ?? example[k];
    return out;
  };
  const run = w.payload.workflow_run as Record<string, unknown>;
  const url = `${w.api}/repos/${w.fullName}/actions/runs/${o.workflowRunId}`;
  const attempt = o.runAttempt ?? 1;
  Object.assign(run, {
    id: o.workflowRunId,
    node_id: nodeId('WorkflowRun', o.workflowRunId),
    name: o.name,
    head_branch: o.headBranch,
    head_sha: o.headSha,
    status: 'completed',
    conclusion: o.conclusion,
    event: 'pull_request',
    run_attempt: attempt,
    url,
    html_url: `${w.web}/${w.fullName}/actions/runs/${o.workflowRunId}`,
    jobs_url: `${url}/jobs`,
    logs_url: `${url}/logs`,
    artifacts_url: `${url}/artifacts`,
    cancel_url: `${url}/cancel`,
    rerun_url: `${url}/rerun`,
    previous_attempt_url: attempt > 1 ? `${url}/attempts/${attempt - 1}` : null,
    check_suite_id: o.checkSuiteId,
    check_suite_node_id: nodeId('CheckSuite', o.checkSuiteId),
    check_suite_url: `${w.api}/repos/${w.fullName}/check-suites/${o.checkSuiteId}`,
    pull_requests: pullRequests,
    head_commit: { ...(run.head_commit as Record<string, unknown>), id: o.headSha },
    repository: lite(run.repository as Record<string, unknown>),
    head_repository: lite(run.head_repository as Record<string, unknown>),
  });
  const workflow = w.payload.workflow as Record<string, unknown>;
  Object.assign(workflow, {
    name: o.name,
    url: `${w.api}/repos/${w.fullName}/actions/workflows/${String(workflow.id)}`,
    html_url: `${w.web}/${w.fullName}/blob/${o.defaultBranch ?? 'main'}/${String(workflow.path)}`,
    badge_url: `${w.web}/${w.fullName}/workflows/${encodeURIComponent(o.name)}/badge.svg`,
  });
  run.workflow_id = workflow.id;
  run.workflow_url = workflow.url;
  // Fields today's GitHub sends that the (older) example lacks.
  run.path ??= workflow.path;
  run.actor ??= w.payload.sender;
  run.triggering_actor ??= w.payload.sender;
  return w.payload;
}

export interface StatusOptions extends RepoTarget {
  installationId: number;
  sha: string;
  /** Branches whose tip is `sha`. */
  branches: string[];
  context: string;
  state: 'error' | 'failure' | 'pending' | 'success';
  description?: string;
  targetUrl?: string;
  /** The integration that set the status; the repository owner when not given. */
  sender?: Actor;
}

/** The real `status` example, rewritten to describe one commit status on a stand-in commit. */
export function statusPayload(o: StatusOptions): Payload {
  // `status` events have no action.
  const w = exampleFor('status', undefined, { ...o, sender: o.sender ?? { login: o.owner, type: 'User' } });
  const commitUrl = `${w.api}/repos/${w.fullName}/commits/${o.sha}`;
  Object.assign(w.payload, {
    sha: o.sha,
    name: w.fullName,
    context: o.context,
    state: o.state,
    description: o.description ?? null,
    target_url: o.targetUrl ?? null,
    commit: {
      ...(w.payload.commit as Record<string, unknown>),
      sha: o.sha,
      url: commitUrl,
      html_url: `${w.web}/${w.fullName}/commit/${o.sha}`,
      comments_url: `${commitUrl}/comments`,
    },
    branches: o.branches.map((name) => ({ name, commit: { sha: o.sha, url: commitUrl }, protected: false })),
  });
  // A field today's GitHub sends that the (older) example lacks.
  const verification = (w.payload.commit as { commit: { verification: Record<string, unknown> } }).commit.verification;
  verification.verified_at ??= null;
  return w.payload;
}
