// A GitHub Enterprise Server stand-in for end-to-end tests: a real HTTP server that the real
// Octokit/Probot clients (REST under /api/v3) and real `git` (smart HTTP) talk to. Requests are
// checked against GitHub's OpenAPI description; state is kept in memory and in real bare repos.
import { generateKeyPairSync, randomBytes, randomInt, verify, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Checks, type RerunRequest, type ScriptedCheck, type ScriptedCheckIds, type ScriptedStatus } from './checks.js';
import { gitOk, runGit, serveGitHttpBackend } from './git.js';
import { answerGraphql, GraphqlNotFound } from './graphql.js';
import { loadOpenApi, type GitHubFieldError, type RouteMatch } from './openapi.js';
import { isBotLogin, nodeId, userId, userObject } from './users.js';

export type { RerunRequest, ScriptedCheck, ScriptedCheckIds, ScriptedStatus } from './checks.js';

export type Permission = 'admin' | 'maintain' | 'write' | 'triage' | 'read' | 'none';

export interface StandInComment {
  id: number;
  body: string;
  user: string;
  created_at: string;
  updated_at: string;
}

export interface StandInPull {
  number: number;
  title: string;
  body: string;
  head: string;
  base: string;
  state: 'open' | 'closed';
  user: string;
  draft: boolean;
}

export type ReviewState = 'CHANGES_REQUESTED' | 'COMMENTED' | 'APPROVED';

/** A review comment as tests see it; `inReplyTo` is the thread's first comment. */
export interface StandInReviewComment {
  id: number;
  path: string;
  line: number;
  body: string;
  user: string;
  inReplyTo?: number;
}

/** A pull request review as the REST API returns it (GitHub's `pull-request-review`). */
export interface RestReview extends Record<string, unknown> {
  id: number;
  node_id: string;
  user: Record<string, unknown>;
  body: string;
  state: ReviewState;
  commit_id: string;
  submitted_at: string;
  html_url: string;
  pull_request_url: string;
  author_association: string;
  _links: { html: { href: string }; pull_request: { href: string } };
}

/** A pull request as the REST API returns it (GitHub's `pull-request`). */
export interface RestPull extends Record<string, unknown> {
  number: number;
  title: string;
  state: 'open' | 'closed';
  html_url: string;
  user: Record<string, unknown>;
  head: { ref: string; sha: string; label: string } & Record<string, unknown>;
  base: { ref: string; sha: string; label: string } & Record<string, unknown>;
}

export interface StandInRequest {
  method: string;
  path: string;
  query?: string;
  status: number;
  body?: unknown;
}

/** Which REST requests a fault answers: an operationId (`pulls/create`) or a regex on the path after `/api/v3`. */
export interface FaultMatch {
  method?: string;
  route?: string | RegExp;
}

/** What a fault answers instead of the real handler. */
export interface FaultReply {
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

/**
 * GitHub's answer to a secondary rate limit: 403 (or 429) with retry-after and the message
 * Octokit's throttling plugin recognises ("secondary rate").
 */
export function secondaryRateLimit(retryAfterSeconds = 1, status: 403 | 429 = 403): FaultReply {
  return {
    status,
    headers: { 'retry-after': String(retryAfterSeconds) },
    body: {
      message:
        'You have exceeded a secondary rate limit. Please wait a few minutes before you try again. ' +
        `If you reach out to GitHub Support for help, please include the request ID ${randomBytes(4).toString('hex').toUpperCase()}:${randomBytes(6).toString('hex').toUpperCase()}.`,
      documentation_url:
        'https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits',
    },
  };
}

export interface GitHubStandInOptions {
  dataDir?: string;
  /** Lifetime of minted installation tokens (GitHub: one hour). After it, the token gets 401 Bad credentials. */
  tokenTtlMs?: number;
}

export interface GitHubStandIn {
  /** `http://127.0.0.1:PORT`; git lives at `${url}/${owner}/${repo}.git`. */
  url: string;
  /** `${url}/api/v3`. */
  apiUrl: string;
  /** `127.0.0.1:PORT`, for GHE_HOST (with GHE_PROTOCOL=http). */
  host: string;
  appId: number;
  /** The bot's login is `${appSlug}[bot]`. */
  appSlug: string;
  botLogin: string;
  /** PKCS#1 PEM (`RSA PRIVATE KEY`), the format GitHub hands out. */
  privateKey: string;
  installationId: number;
  /** Requests that GitHub's OpenAPI description would not accept, and routes the stand-in lacks. */
  violations: string[];
  requests: StandInRequest[];
  issuedTokens: string[];
  addRepo(p: {
    owner: string;
    repo: string;
    files: Record<string, string>;
    defaultBranch?: string;
  }): Promise<{ barePath: string }>;
  setPermission(owner: string, repo: string, login: string, permission: Permission): void;
  addIssue(owner: string, repo: string, issue: { number: number; title: string; body: string; user: string }): void;
  /**
   * `by` edits the issue's title or body, as on github.com (no webhook is sent): the edit
   * shows in GraphQL's `userContentEdits` (body) and `RenamedTitleEvent`s (title).
   */
  editIssue(
    owner: string,
    repo: string,
    issueNumber: number,
    edit: { title?: string; body?: string },
    by: string,
  ): void;
  /**
   * GitHub's side of a person adding a label, as far as the webhook shows it: the issue's
   * `updated_at` moves on. Returns the issue's text and that time for the payload, or
   * undefined when the stand-in has no such issue. (The label list is left to the app's calls.)
   */
  markLabeled(
    owner: string,
    repo: string,
    issueNumber: number,
  ): { title: string; body: string; updatedAt: string } | undefined;
  /** The issue's text and `updated_at` now, or undefined when the stand-in has no such issue. */
  issueText(
    owner: string,
    repo: string,
    issueNumber: number,
  ): { title: string; body: string; updatedAt: string } | undefined;
  /** A comment written by `user` (not the app), e.g. the issue author answering questions. */
  /**
   * A comment written by `user` (not the app), e.g. the issue author answering questions or a
   * command on a pull request (pull requests are issues: pass the PR's number). Returns its id.
   */
  addComment(owner: string, repo: string, issueNumber: number, comment: { user: string; body: string }): number;
  comments(owner: string, repo: string, issueNumber: number): StandInComment[];
  /** Reactions on the issue or pull request itself. */
  reactions(owner: string, repo: string, issueNumber: number): Array<{ content: string; user: string }>;
  /** Reactions on one issue comment or pull request review comment, by the comment's id. */
  commentReactions(owner: string, repo: string, commentId: number): Array<{ content: string; user: string }>;
  labels(owner: string, repo: string, issueNumber: number): string[];
  /** Every label the repository has (created through the API or on first use), with its colour. */
  repoLabels(owner: string, repo: string): Array<{ name: string; color: string; description: string | null }>;
  /**
   * A review submitted by `user` on the pull request's current head, with one line comment per
   * entry in `comments` (on the new side of the diff base...head; throws when `line` is not in it).
   */
  addReview(
    owner: string,
    repo: string,
    pullNumber: number,
    review: {
      user: string;
      state: ReviewState;
      body: string;
      comments?: Array<{ path: string; line: number; body: string }>;
    },
  ): Promise<{ reviewId: number; commentIds: number[]; review: RestReview; pullRequest: RestPull }>;
  /** Every review comment on the pull request, oldest first, replies included. */
  reviewComments(owner: string, repo: string, pullNumber: number): StandInReviewComment[];
  /** The commit a branch points at, or null when there is no such branch. */
  headSha(owner: string, repo: string, branch: string): Promise<string | null>;
  /** The repository's branch names, sorted. */
  branches(owner: string, repo: string): Promise<string[]>;
  /** Whether `older` (a sha or ref) is an ancestor of (or equal to) `newer`: false after a force push. */
  isAncestor(owner: string, repo: string, older: string, newer: string): Promise<boolean>;
  pulls(owner: string, repo: string): StandInPull[];
  readFile(owner: string, repo: string, ref: string, path: string): Promise<string | null>;
  /**
   * Replaces the check runs of commit `sha` (which must be pushed) with `checks`, served by the
   * checks and Actions routes; checks naming the same `workflow` form one workflow run.
   */
  setChecks(owner: string, repo: string, sha: string, checks: ScriptedCheck[]): Promise<ScriptedCheckIds[]>;
  /**
   * A pull request a person opened from `head` (a branch already pushed to the bare
   * repository) into `base`, as GitHub records one made on its web page.
   */
  openPullAs(
    owner: string,
    repo: string,
    p: { head: string; base: string; title: string; user: string },
  ): Promise<number>;
  /** Replaces the commit statuses of `sha`, served by `repos/get-combined-status-for-ref`. */
  setStatuses(owner: string, repo: string, sha: string, statuses: ScriptedStatus[]): void;
  /** The job re-runs the app requested in the repository, oldest first. */
  reruns(owner: string, repo: string): RerunRequest[];
  /**
   * The next `times` REST requests that match answer `reply` instead (recorded in `requests`
   * like any answer); e.g. a 502, `secondaryRateLimit(1)`, or a 429. Faults are checked in
   * the order they were added, before authentication.
   */
  failNext(match: FaultMatch, reply: FaultReply, times?: number): void;
  /** Forgets every fault not yet used. */
  clearFaults(): void;
  /**
   * Holds the next request that matches (a REST route, or `{ git: 'git-receive-pack' }` for
   * a push) until `release()`: `reached` resolves when it arrives. Crash tests use it to
   * stop the app at an exact point; a held request whose client died is simply dropped.
   */
  hold(match: FaultMatch & { git?: 'git-receive-pack' | 'git-upload-pack' }): {
    reached: Promise<void>;
    release(): void;
  };
  /** Lifetime of installation tokens minted from now on. */
  setTokenTtl(ms: number): void;
  close(): Promise<void>;
}

interface ReactionRec {
  id: number;
  content: string;
  user: string;
  createdAt: string;
}

interface CommentRec {
  id: number;
  repoKey: string;
  issueNumber: number;
  body: string;
  user: string;
  createdAt: string;
  updatedAt: string;
  reactions: ReactionRec[];
}

interface IssueRec {
  id: number;
  number: number;
  title: string;
  body: string;
  user: string;
  state: 'open' | 'closed';
  stateReason: string | null;
  labels: string[];
  comments: CommentRec[];
  reactions: ReactionRec[];
  createdAt: string;
  updatedAt: string;
  closedAt: string | null;
  isPull: boolean;
  /** Edits of the title or body, oldest first. */
  edits: EditRec[];
}

interface EditRec {
  what: 'title' | 'body';
  editor: string;
  at: string;
  from: string;
  to: string;
}

interface PullRec {
  id: number;
  number: number;
  head: string;
  base: string;
  headSha: string;
  draft: boolean;
  maintainerCanModify: boolean;
  reviews: ReviewRec[];
  reviewComments: ReviewCommentRec[];
}

interface ReviewRec {
  id: number;
  pullNumber: number;
  user: string;
  state: ReviewState;
  body: string;
  commitId: string;
  submittedAt: string;
}

interface ReviewCommentRec {
  id: number;
  repoKey: string;
  pullNumber: number;
  reviewId: number;
  user: string;
  body: string;
  path: string;
  /** Line on the new (RIGHT) side of the diff. */
  line: number;
  /** Lines below the file's first `@@` header in the diff, as GitHub counts them. */
  position: number;
  diffHunk: string;
  commitId: string;
  originalCommitId: string;
  inReplyTo?: number;
  createdAt: string;
  updatedAt: string;
  reactions: ReactionRec[];
}

/** One file of a pull request's diff, as `git diff` between the merge base and the head reports it. */
interface FileDiff {
  status: 'added' | 'removed' | 'modified' | 'renamed' | 'copied' | 'changed';
  filename: string;
  previousFilename?: string;
  /** Blob at the head (at the base for a removed file). */
  sha: string;
  additions: number;
  deletions: number;
  /** The diff text from the first `@@` header on; absent for binary files and pure renames. */
  patch?: string;
}

interface LabelRec {
  id: number;
  name: string;
  color: string;
  description: string | null;
}

interface RepoState {
  key: string;
  owner: string;
  name: string;
  id: number;
  defaultBranch: string;
  barePath: string;
  createdAt: string;
  pushedAt: string;
  permissions: Map<string, Permission>;
  issues: Map<number, IssueRec>;
  pulls: Map<number, PullRec>;
  labels: Map<string, LabelRec>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message ?? status));
  }
}

type Auth = { kind: 'jwt' } | { kind: 'installation'; token: string };

interface Ctx {
  match: RouteMatch;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, unknown> | unknown[] | string | undefined;
  actor: string;
  req: IncomingMessage;
  res: ServerResponse;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

const GHES_VERSION = '3.19';
const DOCS = `https://docs.github.com/enterprise-server@${GHES_VERSION}/rest`;
const JWT_OPERATIONS = new Set([
  'apps/get-authenticated',
  'apps/create-installation-access-token',
  'apps/get-repo-installation',
  'apps/get-installation',
  'apps/list-installations',
]);
const INSTALLATION_PERMISSIONS = { contents: 'write', issues: 'write', pull_requests: 'write', metadata: 'read' };
const INSTALLATION_EVENTS = ['issues', 'issue_comment', 'pull_request', 'pull_request_review'];
const REACTIONS = ['+1', '-1', 'laugh', 'confused', 'heart', 'hooray', 'rocket', 'eyes'] as const;

/** The boolean permission flags GitHub derives from a role. */
function permissionFlags(role: string): Record<'admin' | 'maintain' | 'push' | 'triage' | 'pull', boolean> {
  const rank = ['none', 'read', 'triage', 'write', 'maintain', 'admin'].indexOf(role);
  return { admin: rank >= 5, maintain: rank >= 4, push: rank >= 3, triage: rank >= 2, pull: rank >= 1 };
}

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

let lastTick = 0;
/**
 * A strictly increasing time in milliseconds, for what must order exactly against each
 * other: label events and edits. (GitHub's own stamps are whole seconds; a finer one is
 * still a valid date-time and keeps two quick labels from carrying one body.)
 */
function tick(): string {
  lastTick = Math.max(Date.now(), lastTick + 1);
  return new Date(lastTick).toISOString();
}

function repoKey(owner: string, repo: string): string {
  return `${owner.toLowerCase()}/${repo.toLowerCase()}`;
}

function notFound(): HttpError {
  return new HttpError(404, { message: 'Not Found', documentation_url: DOCS });
}

function validationFailed(errors: Array<GitHubFieldError | Record<string, unknown>>): HttpError {
  return new HttpError(422, { message: 'Validation Failed', errors, documentation_url: DOCS });
}

function b64url(s: string): Buffer {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

export async function startGitHubStandIn(opts: GitHubStandInOptions = {}): Promise<GitHubStandIn> {
  const spec = loadOpenApi();
  const ownsDataDir = !opts.dataDir;
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'github-stand-in-')));
  const reposRoot = join(dataDir, 'repos');
  await mkdir(reposRoot, { recursive: true });

  const { privateKey: keyObject, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKey = keyObject.export({ type: 'pkcs1', format: 'pem' }).toString();
  const appId = 4242;
  const appSlug = 'issue-agent-test';
  const botLogin = `${appSlug}[bot]`;
  const installationId = 4_242_001;
  const appCreatedAt = now();

  const violations: string[] = [];
  const requests: StandInRequest[] = [];
  const issuedTokens: string[] = [];
  const tokens = new Map<string, number>(); // token → expiry (ms)
  let tokenTtlMs = opts.tokenTtlMs ?? 3600_000;
  const faults: Array<{ match: FaultMatch; reply: FaultReply; remaining: number }> = [];
  const holds: Array<{ match: FaultMatch & { git?: string }; arrived: () => void; gate: Promise<void> }> = [];
  /** Waits at a hold that matches, once. */
  const passHold = async (test: (m: FaultMatch & { git?: string }) => boolean): Promise<void> => {
    const h = holds.find((x) => test(x.match));
    if (!h) return;
    holds.splice(holds.indexOf(h), 1);
    h.arrived();
    await h.gate;
  };
  const repos = new Map<string, RepoState>();
  const commentsById = new Map<number, CommentRec>();
  const reviewCommentsById = new Map<number, ReviewCommentRec>();
  let nextId = 1000;
  const newId = (): number => nextId++;

  let url = '';
  let apiUrl = '';

  // ---- object builders (shapes follow GitHub's REST answers) ----

  const user = (login: string): Record<string, unknown> => userObject(login, url);

  const repoApi = (r: RepoState): string => `${apiUrl}/repos/${r.owner}/${r.name}`;
  const repoHtml = (r: RepoState): string => `${url}/${r.owner}/${r.name}`;

  const appObject = (): Record<string, unknown> => ({
    id: appId,
    slug: appSlug,
    node_id: nodeId('Integration', appId),
    client_id: `Iv1.${appId.toString(16).padStart(16, '0')}`,
    owner: user('stand-in-owner'),
    name: 'Issue Agent (test)',
    description: 'GitHub App used by the issue-agent end-to-end tests',
    external_url: url,
    html_url: `${url}/apps/${appSlug}`,
    created_at: appCreatedAt,
    updated_at: appCreatedAt,
    permissions: INSTALLATION_PERMISSIONS,
    events: INSTALLATION_EVENTS,
    installations_count: 1,
  });

  const repoObject = (r: RepoState, viewer?: string): Record<string, unknown> => {
    const api = repoApi(r);
    const perm = viewer ? permissionOf(r, viewer) : 'admin';
    const openIssues = [...r.issues.values()].filter((i) => i.state === 'open').length;
    return {
      id: r.id,
      node_id: nodeId('Repository', r.id),
      name: r.name,
      full_name: `${r.owner}/${r.name}`,
      owner: user(r.owner),
      private: true,
      visibility: 'private',
      html_url: repoHtml(r),
      description: null,
      fork: false,
      url: api,
      archive_url: `${api}/{archive_format}{/ref}`,
      assignees_url: `${api}/assignees{/user}`,
      blobs_url: `${api}/git/blobs{/sha}`,
      branches_url: `${api}/branches{/branch}`,
      collaborators_url: `${api}/collaborators{/collaborator}`,
      comments_url: `${api}/comments{/number}`,
      commits_url: `${api}/commits{/sha}`,
      compare_url: `${api}/compare/{base}...{head}`,
      contents_url: `${api}/contents/{+path}`,
      contributors_url: `${api}/contributors`,
      deployments_url: `${api}/deployments`,
      downloads_url: `${api}/downloads`,
      events_url: `${api}/events`,
      forks_url: `${api}/forks`,
      git_commits_url: `${api}/git/commits{/sha}`,
      git_refs_url: `${api}/git/refs{/sha}`,
      git_tags_url: `${api}/git/tags{/sha}`,
      git_url: `git://${url.replace(/^https?:\/\//, '')}/${r.owner}/${r.name}.git`,
      issue_comment_url: `${api}/issues/comments{/number}`,
      issue_events_url: `${api}/issues/events{/number}`,
      issues_url: `${api}/issues{/number}`,
      keys_url: `${api}/keys{/key_id}`,
      labels_url: `${api}/labels{/name}`,
      languages_url: `${api}/languages`,
      merges_url: `${api}/merges`,
      milestones_url: `${api}/milestones{/number}`,
      notifications_url: `${api}/notifications{?since,all,participating}`,
      pulls_url: `${api}/pulls{/number}`,
      releases_url: `${api}/releases{/id}`,
      ssh_url: `git@${url.replace(/^https?:\/\//, '').replace(/:\d+$/, '')}:${r.owner}/${r.name}.git`,
      stargazers_url: `${api}/stargazers`,
      statuses_url: `${api}/statuses/{sha}`,
      subscribers_url: `${api}/subscribers`,
      subscription_url: `${api}/subscription`,
      tags_url: `${api}/tags`,
      teams_url: `${api}/teams`,
      trees_url: `${api}/git/trees{/sha}`,
      clone_url: `${url}/${r.owner}/${r.name}.git`,
      mirror_url: null,
      hooks_url: `${api}/hooks`,
      svn_url: repoHtml(r),
      homepage: null,
      language: null,
      forks_count: 0,
      stargazers_count: 0,
      watchers_count: 0,
      size: 1,
      default_branch: r.defaultBranch,
      open_issues_count: openIssues,
      is_template: false,
      topics: [],
      has_issues: true,
      has_projects: true,
      has_wiki: true,
      has_pages: false,
      has_downloads: true,
      has_discussions: false,
      archived: false,
      disabled: false,
      pushed_at: r.pushedAt,
      created_at: r.createdAt,
      updated_at: r.pushedAt,
      permissions: permissionFlags(perm),
      allow_rebase_merge: true,
      allow_squash_merge: true,
      allow_merge_commit: true,
      allow_auto_merge: false,
      delete_branch_on_merge: false,
      allow_forking: true,
      web_commit_signoff_required: false,
      license: null,
      forks: 0,
      open_issues: openIssues,
      watchers: 0,
      network_count: 0,
      subscribers_count: 0,
    };
  };

  const labelObject = (r: RepoState, name: string): Record<string, unknown> => {
    const l = r.labels.get(name.toLowerCase()) ?? ensureLabel(r, name);
    return {
      id: l.id,
      node_id: nodeId('Label', l.id),
      url: `${repoApi(r)}/labels/${encodeURIComponent(l.name)}`,
      name: l.name,
      color: l.color,
      default: false,
      description: l.description,
    };
  };

  const reactionRollup = (url_: string, list: ReactionRec[]): Record<string, unknown> => {
    const rollup: Record<string, unknown> = { url: url_, total_count: list.length };
    for (const c of REACTIONS) rollup[c] = list.filter((x) => x.content === c).length;
    return rollup;
  };

  const association = (r: RepoState, login: string): string => {
    if (isBotLogin(login)) return 'NONE';
    if (login.toLowerCase() === r.owner.toLowerCase()) return 'OWNER';
    return permissionOf(r, login) === 'none' ? 'NONE' : 'COLLABORATOR';
  };

  const viaApp = (login: string): Record<string, unknown> | null => (login === botLogin ? appObject() : null);

  const issueObject = (r: RepoState, i: IssueRec): Record<string, unknown> => {
    const api = `${repoApi(r)}/issues/${i.number}`;
    return {
      id: i.id,
      node_id: nodeId(i.isPull ? 'PullRequest' : 'Issue', i.id),
      url: api,
      repository_url: repoApi(r),
      labels_url: `${api}/labels{/name}`,
      comments_url: `${api}/comments`,
      events_url: `${api}/events`,
      html_url: `${repoHtml(r)}/${i.isPull ? 'pull' : 'issues'}/${i.number}`,
      timeline_url: `${api}/timeline`,
      number: i.number,
      state: i.state,
      state_reason: i.stateReason,
      title: i.title,
      body: i.body,
      user: user(i.user),
      labels: i.labels.map((n) => labelObject(r, n)),
      assignee: null,
      assignees: [],
      milestone: null,
      locked: false,
      active_lock_reason: null,
      comments: i.comments.length,
      ...(i.isPull
        ? {
            pull_request: {
              url: `${repoApi(r)}/pulls/${i.number}`,
              html_url: `${repoHtml(r)}/pull/${i.number}`,
              diff_url: `${repoHtml(r)}/pull/${i.number}.diff`,
              patch_url: `${repoHtml(r)}/pull/${i.number}.patch`,
              merged_at: null,
            },
          }
        : {}),
      closed_at: i.closedAt,
      created_at: i.createdAt,
      updated_at: i.updatedAt,
      closed_by: null,
      author_association: association(r, i.user),
      reactions: reactionRollup(`${api}/reactions`, i.reactions),
      performed_via_github_app: viaApp(i.user),
    };
  };

  /** Changes an issue's title or body as `editor`, recording each change as GitHub's history does. */
  const editText = (i: IssueRec, edit: { title?: string; body?: string }, editor: string): void => {
    const at = tick();
    if (edit.title !== undefined && edit.title !== i.title) {
      i.edits.push({ what: 'title', editor, at, from: i.title, to: edit.title });
      i.title = edit.title;
    }
    if (edit.body !== undefined && edit.body !== i.body) {
      i.edits.push({ what: 'body', editor, at, from: i.body, to: edit.body });
      i.body = edit.body;
    }
    i.updatedAt = at;
  };

  /** GraphQL's `Actor` for a login: a `Bot` (whose login drops `[bot]`) or a `User`. */
  const actorNode = (login: string) =>
    isBotLogin(login) ? { __typename: 'Bot', login: login.slice(0, -'[bot]'.length) } : { __typename: 'User', login };

  /** A connection's `first`/`last` window over `all`, with the counts GitHub gives. */
  const connection = <T>(all: T[], args: { first?: number; last?: number }) => {
    const nodes =
      args.first !== undefined
        ? all.slice(0, args.first)
        : args.last !== undefined
          ? all.slice(Math.max(0, all.length - args.last))
          : all.slice(0, 100);
    return {
      totalCount: all.length,
      nodes,
      pageInfo: {
        hasNextPage: args.first !== undefined && all.length > nodes.length,
        hasPreviousPage: args.last !== undefined && all.length > nodes.length,
        startCursor: null,
        endCursor: null,
      },
    };
  };

  /** An issue as a GraphQL `Issue`: the fields the app reads (its edit history), more as needed. */
  const issueNode = (i: IssueRec) => {
    const bodyEdits = i.edits.filter((e) => e.what === 'body');
    return {
      __typename: 'Issue',
      number: i.number,
      title: i.title,
      body: i.body,
      createdAt: i.createdAt,
      updatedAt: i.updatedAt,
      lastEditedAt: i.edits.at(-1)?.at ?? null,
      // Newest first, as github.com lists them; once a body is edited, its first version shows
      // as an entry by the author at creation.
      userContentEdits: (args: { first?: number; last?: number }) =>
        connection(
          bodyEdits.length === 0
            ? []
            : [
                ...bodyEdits
                  .map((e) => ({
                    editedAt: e.at,
                    createdAt: e.at,
                    updatedAt: e.at,
                    editor: actorNode(e.editor),
                    diff: e.to,
                  }))
                  .reverse(),
                {
                  editedAt: i.createdAt,
                  createdAt: i.createdAt,
                  updatedAt: i.createdAt,
                  editor: actorNode(i.user),
                  diff: bodyEdits[0]!.from,
                },
              ],
          args,
        ),
      timelineItems: (args: { first?: number; last?: number; since?: string; itemTypes?: string[] }) => {
        // Only title renames are kept as timeline items here; asking for any other type gets none.
        const wanted = (t: string) => !args.itemTypes || args.itemTypes.includes(t);
        const renames = i.edits
          .filter(
            (e) =>
              e.what === 'title' &&
              wanted('RENAMED_TITLE_EVENT') &&
              (!args.since || Date.parse(e.at) >= Date.parse(args.since)),
          )
          .map((e) => ({
            __typename: 'RenamedTitleEvent',
            createdAt: e.at,
            actor: actorNode(e.editor),
            previousTitle: e.from,
            currentTitle: e.to,
          }));
        return { ...connection(renames, args), filteredCount: renames.length, pageCount: 1, updatedAt: i.updatedAt };
      },
    };
  };

  /** A pull request as a GraphQL `PullRequest`: the fields the app reads, more as needed. */
  const pullNode = (r: RepoState, p: PullRec) => {
    const i = r.issues.get(p.number)!;
    return {
      __typename: 'PullRequest',
      id: nodeId('PullRequest', p.id),
      number: p.number,
      title: i.title,
      isDraft: p.draft,
      state: i.state === 'open' ? 'OPEN' : 'CLOSED',
      headRefName: p.head,
      baseRefName: p.base,
    };
  };

  /** The top-level GraphQL fields (queries and mutations) the stand-in serves. */
  const graphqlRoot = {
    // GitHub has no REST route for this: a draft becomes ready only through GraphQL.
    markPullRequestReadyForReview: ({ input }: { input: { pullRequestId: string; clientMutationId?: string } }) => {
      for (const r of repos.values()) {
        const p = [...r.pulls.values()].find((x) => nodeId('PullRequest', x.id) === input.pullRequestId);
        if (!p) continue;
        if (p.draft) {
          p.draft = false;
          r.issues.get(p.number)!.updatedAt = now();
        }
        return { clientMutationId: input.clientMutationId ?? null, pullRequest: pullNode(r, p) };
      }
      throw new GraphqlNotFound(`Could not resolve to a node with the global id of '${input.pullRequestId}'`);
    },
    repository: ({ owner, name }: { owner: string; name: string }) => {
      const r = repos.get(repoKey(owner, name));
      if (!r) throw new GraphqlNotFound(`Could not resolve to a Repository with the name '${owner}/${name}'.`);
      return {
        __typename: 'Repository',
        name: r.name,
        issue: ({ number }: { number: number }) => {
          const i = r.issues.get(number);
          if (!i || i.isPull) throw new GraphqlNotFound(`Could not resolve to an Issue with the number of ${number}.`);
          return issueNode(i);
        },
      };
    },
  };

  const commentObject = (r: RepoState, c: CommentRec): Record<string, unknown> => ({
    id: c.id,
    node_id: nodeId('IssueComment', c.id),
    url: `${repoApi(r)}/issues/comments/${c.id}`,
    html_url: `${repoHtml(r)}/issues/${c.issueNumber}#issuecomment-${c.id}`,
    issue_url: `${repoApi(r)}/issues/${c.issueNumber}`,
    body: c.body,
    user: user(c.user),
    created_at: c.createdAt,
    updated_at: c.updatedAt,
    author_association: association(r, c.user),
    performed_via_github_app: viaApp(c.user),
    reactions: reactionRollup(`${repoApi(r)}/issues/comments/${c.id}/reactions`, c.reactions),
  });

  const reactionObject = (x: ReactionRec): Record<string, unknown> => ({
    id: x.id,
    node_id: nodeId('Reaction', x.id),
    user: user(x.user),
    content: x.content,
    created_at: x.createdAt,
  });

  const branchSha = async (r: RepoState, branch: string): Promise<string | null> => {
    const res = await runGit([
      '--git-dir',
      r.barePath,
      'rev-parse',
      '--verify',
      '--quiet',
      `refs/heads/${branch}^{commit}`,
    ]);
    return res.code === 0 ? res.stdout.toString().trim() : null;
  };

  const pullObject = async (r: RepoState, p: PullRec): Promise<Record<string, unknown>> => {
    const i = r.issues.get(p.number)!;
    const api = `${repoApi(r)}/pulls/${p.number}`;
    const html = `${repoHtml(r)}/pull/${p.number}`;
    const diff = await pullDiff(r, p);
    const baseSha = diff.baseSha ?? '0'.repeat(40);
    const ref = (branch: string, sha: string): Record<string, unknown> => ({
      label: `${r.owner}:${branch}`,
      ref: branch,
      sha,
      user: user(r.owner),
      repo: repoObject(r),
    });
    return {
      url: api,
      id: p.id,
      node_id: nodeId('PullRequest', p.id),
      html_url: html,
      diff_url: `${html}.diff`,
      patch_url: `${html}.patch`,
      issue_url: `${repoApi(r)}/issues/${p.number}`,
      commits_url: `${api}/commits`,
      review_comments_url: `${api}/comments`,
      review_comment_url: `${repoApi(r)}/pulls/comments{/number}`,
      comments_url: `${repoApi(r)}/issues/${p.number}/comments`,
      statuses_url: `${repoApi(r)}/statuses/${p.headSha}`,
      number: p.number,
      state: i.state,
      locked: false,
      title: i.title,
      user: user(i.user),
      body: i.body,
      labels: i.labels.map((n) => labelObject(r, n)),
      milestone: null,
      active_lock_reason: null,
      created_at: i.createdAt,
      updated_at: i.updatedAt,
      closed_at: i.closedAt,
      merged_at: null,
      merge_commit_sha: null,
      assignee: null,
      assignees: [],
      requested_reviewers: [],
      requested_teams: [],
      head: ref(p.head, p.headSha),
      base: ref(p.base, baseSha),
      _links: {
        self: { href: api },
        html: { href: html },
        issue: { href: `${repoApi(r)}/issues/${p.number}` },
        comments: { href: `${repoApi(r)}/issues/${p.number}/comments` },
        review_comments: { href: `${api}/comments` },
        review_comment: { href: `${repoApi(r)}/pulls/comments{/number}` },
        commits: { href: `${api}/commits` },
        statuses: { href: `${repoApi(r)}/statuses/${p.headSha}` },
      },
      author_association: association(r, i.user),
      auto_merge: null,
      draft: p.draft,
      merged: false,
      mergeable: null,
      rebaseable: null,
      mergeable_state: 'unknown',
      merged_by: null,
      comments: i.comments.length,
      review_comments: p.reviewComments.length,
      maintainer_can_modify: p.maintainerCanModify,
      commits: diff.commits,
      additions: diff.files.reduce((n, f) => n + f.additions, 0),
      deletions: diff.files.reduce((n, f) => n + f.deletions, 0),
      changed_files: diff.files.length,
    };
  };

  const reviewObject = (r: RepoState, v: ReviewRec): RestReview => {
    const html = `${repoHtml(r)}/pull/${v.pullNumber}#pullrequestreview-${v.id}`;
    const pull = `${repoApi(r)}/pulls/${v.pullNumber}`;
    return {
      id: v.id,
      node_id: nodeId('PullRequestReview', v.id),
      user: user(v.user),
      body: v.body,
      state: v.state,
      html_url: html,
      pull_request_url: pull,
      _links: { html: { href: html }, pull_request: { href: pull } },
      submitted_at: v.submittedAt,
      commit_id: v.commitId,
      author_association: association(r, v.user),
    };
  };

  const reviewCommentObject = (r: RepoState, c: ReviewCommentRec): Record<string, unknown> => {
    const api = `${repoApi(r)}/pulls/comments/${c.id}`;
    const html = `${repoHtml(r)}/pull/${c.pullNumber}#discussion_r${c.id}`;
    const pull = `${repoApi(r)}/pulls/${c.pullNumber}`;
    return {
      url: api,
      pull_request_review_id: c.reviewId,
      id: c.id,
      node_id: nodeId('PullRequestReviewComment', c.id),
      diff_hunk: c.diffHunk,
      path: c.path,
      position: c.position,
      original_position: c.position,
      commit_id: c.commitId,
      original_commit_id: c.originalCommitId,
      ...(c.inReplyTo !== undefined ? { in_reply_to_id: c.inReplyTo } : {}),
      user: user(c.user),
      body: c.body,
      created_at: c.createdAt,
      updated_at: c.updatedAt,
      html_url: html,
      pull_request_url: pull,
      author_association: association(r, c.user),
      _links: { self: { href: api }, html: { href: html }, pull_request: { href: pull } },
      start_line: null,
      original_start_line: null,
      start_side: null,
      line: c.line,
      original_line: c.line,
      side: 'RIGHT',
      subject_type: 'line',
      reactions: reactionRollup(`${api}/reactions`, c.reactions),
    };
  };

  const diffEntry = (r: RepoState, headSha: string, f: FileDiff): Record<string, unknown> => {
    const path = f.filename.split('/').map(encodeURIComponent).join('/');
    return {
      sha: f.sha,
      filename: f.filename,
      status: f.status,
      additions: f.additions,
      deletions: f.deletions,
      changes: f.additions + f.deletions,
      blob_url: `${repoHtml(r)}/blob/${headSha}/${path}`,
      raw_url: `${repoHtml(r)}/raw/${headSha}/${path}`,
      contents_url: `${repoApi(r)}/contents/${path}?ref=${headSha}`,
      ...(f.patch !== undefined ? { patch: f.patch } : {}),
      ...(f.previousFilename !== undefined ? { previous_filename: f.previousFilename } : {}),
    };
  };

  // ---- pull request diffs, computed by git from the bare repository ----

  /**
   * The pull request's diff as GitHub shows it: base...head, i.e. from the merge base of the two
   * branches to the head, with renames detected and three lines of context.
   */
  async function pullDiff(
    r: RepoState,
    p: PullRec,
  ): Promise<{ baseSha: string | null; headSha: string; commits: number; files: FileDiff[] }> {
    p.headSha = (await branchSha(r, p.head)) ?? p.headSha;
    const baseSha = await branchSha(r, p.base);
    const headSha = p.headSha;
    const empty = { baseSha, headSha, commits: 0, files: [] };
    if (!baseSha) return empty;
    const mb = await runGit(['--git-dir', r.barePath, 'merge-base', baseSha, headSha]);
    if (mb.code !== 0) return empty;
    const from = mb.stdout.toString().trim();
    const common = [
      '--git-dir',
      r.barePath,
      '-c',
      'core.quotePath=false',
      'diff',
      '-M',
      '--no-color',
      '--no-ext-diff',
      '--no-textconv',
    ];
    const [raw, numstat, patch, count] = await Promise.all([
      runGit([...common, '--raw', '-z', '--no-abbrev', from, headSha]),
      runGit([...common, '--numstat', '-z', from, headSha]),
      runGit([...common, '-U3', '--src-prefix=a/', '--dst-prefix=b/', from, headSha]),
      runGit(['--git-dir', r.barePath, 'rev-list', '--count', `${from}..${headSha}`]),
    ]);
    for (const res of [raw, numstat, patch, count]) {
      if (res.code !== 0)
        throw new Error(`stand-in: git diff for ${r.owner}/${r.name}#${p.number} failed: ${res.stderr.trim()}`);
    }
    // --raw -z: ":old new oldsha newsha STATUS\0path\0[newpath\0]"
    const files: FileDiff[] = [];
    const rawTokens = raw.stdout.toString('utf8').split('\0');
    for (let k = 0; k < rawTokens.length; k++) {
      const meta = rawTokens[k]!;
      if (!meta.startsWith(':')) continue;
      const [, , oldSha, newSha, code] = meta.slice(1).split(' ') as [string, string, string, string, string];
      const letter = code[0]!;
      const first = rawTokens[++k]!;
      const second = letter === 'R' || letter === 'C' ? rawTokens[++k]! : undefined;
      const status: FileDiff['status'] =
        letter === 'A'
          ? 'added'
          : letter === 'D'
            ? 'removed'
            : letter === 'R'
              ? 'renamed'
              : letter === 'C'
                ? 'copied'
                : letter === 'T'
                  ? 'changed'
                  : 'modified';
      files.push({
        status,
        filename: second ?? first,
        ...(second !== undefined ? { previousFilename: first } : {}),
        sha: letter === 'D' ? oldSha : newSha,
        additions: 0,
        deletions: 0,
      });
    }
    // --numstat -z: "added\tdeleted\tpath\0", or "added\tdeleted\t\0old\0new\0" for a rename; "-" for binary.
    const numTokens = numstat.stdout.toString('utf8').split('\0');
    let at = 0;
    for (let k = 0; k < numTokens.length && at < files.length; k++) {
      const m = /^(-|\d+)\t(-|\d+)\t(.*)$/s.exec(numTokens[k]!);
      if (!m) continue;
      if (m[3] === '') k += 2;
      files[at]!.additions = m[1] === '-' ? 0 : Number(m[1]);
      files[at]!.deletions = m[2] === '-' ? 0 : Number(m[2]);
      at++;
    }
    // The patch: one "diff --git" section per file, in the same order; GitHub's `patch` starts at the first "@@".
    const sections = patch.stdout
      .toString('utf8')
      .split(/^diff --git /m)
      .slice(1);
    sections.forEach((section, n) => {
      const lines = section.split('\n');
      if (lines[lines.length - 1] === '') lines.pop();
      const start = lines.findIndex((l) => l.startsWith('@@ '));
      if (start >= 0 && files[n]) files[n]!.patch = lines.slice(start).join('\n');
    });
    return { baseSha, headSha, commits: Number(count.stdout.toString().trim()) || 0, files };
  }

  /** Where a comment on `line` of the new side of `path` sits in the pull request's diff. */
  function locateLine(files: FileDiff[], path: string, line: number): { position: number; diffHunk: string } | null {
    const f = files.find((x) => x.filename === path);
    if (!f?.patch) return null;
    const lines = f.patch.split('\n');
    let hunkStart = 0;
    let newLine = 0;
    for (let k = 0; k < lines.length; k++) {
      const l = lines[k]!;
      const header = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(l);
      if (header) {
        hunkStart = k;
        newLine = Number(header[1]);
        continue;
      }
      if (l.startsWith('+') || l.startsWith(' ')) {
        // GitHub's diff_hunk runs from the hunk's header down to the commented line.
        if (newLine === line) return { position: k, diffHunk: lines.slice(hunkStart, k + 1).join('\n') };
        newLine++;
      }
    }
    return null;
  }

  // ---- state helpers ----

  function permissionOf(r: RepoState, login: string): Permission {
    const set = r.permissions.get(login.toLowerCase());
    if (set) return set;
    return login.toLowerCase() === r.owner.toLowerCase() ? 'admin' : 'none';
  }

  function ensureLabel(r: RepoState, name: string): LabelRec {
    let l = r.labels.get(name.toLowerCase());
    if (!l) {
      l = { id: newId(), name, color: 'ededed', description: null };
      r.labels.set(name.toLowerCase(), l);
    }
    return l;
  }

  function getRepo(owner: string, repo: string): RepoState {
    const r = repos.get(repoKey(owner, repo));
    if (!r) throw notFound();
    return r;
  }

  function mustRepo(owner: string, repo: string): RepoState {
    const r = repos.get(repoKey(owner, repo));
    if (!r) throw new Error(`stand-in has no repository ${owner}/${repo}; call addRepo first`);
    return r;
  }

  function getPull(r: RepoState, n: string | number): PullRec {
    const p = r.pulls.get(Number(n));
    if (!p) throw notFound();
    return p;
  }

  function getReviewComment(r: RepoState, id: string | number): ReviewCommentRec {
    const c = reviewCommentsById.get(Number(id));
    if (!c || c.repoKey !== r.key) throw notFound();
    return c;
  }

  function getIssue(r: RepoState, n: string | number): IssueRec {
    const i = r.issues.get(Number(n));
    if (!i) throw notFound();
    return i;
  }

  function nextNumber(r: RepoState): number {
    return Math.max(0, ...r.issues.keys()) + 1;
  }

  function objectBody(ctx: Ctx): Record<string, unknown> {
    return ctx.body && typeof ctx.body === 'object' && !Array.isArray(ctx.body) ? ctx.body : {};
  }

  function paginate<T>(ctx: Ctx, items: T[]): { items: T[]; headers: Record<string, string> } {
    const perPage = Math.min(100, Math.max(1, Number(ctx.query.get('per_page') ?? 30) || 30));
    const page = Math.max(1, Number(ctx.query.get('page') ?? 1) || 1);
    const last = Math.max(1, Math.ceil(items.length / perPage));
    const headers: Record<string, string> = {};
    const link = (p: number, rel: string): string => {
      const q = new URLSearchParams(ctx.query);
      q.set('page', String(p));
      q.set('per_page', String(perPage));
      return `<${url}${ctx.req.url?.split('?')[0]}?${q.toString()}>; rel="${rel}"`;
    };
    const links: string[] = [];
    if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
    if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
    if (links.length) headers.link = links.join(', ');
    return { items: items.slice((page - 1) * perPage, page * perPage), headers };
  }

  // ---- CI state of commits: check runs, Actions jobs and their logs, commit statuses ----

  const ci = new Checks<RepoState, Ctx>({
    baseUrl: () => url,
    getRepo,
    mustRepo,
    repoObject: (r) => repoObject(r),
    user,
    newId,
    httpError: (status, message) => new HttpError(status, { message, documentation_url: DOCS }),
    paginate,
    resolveRef: async (r, ref) => {
      if (ref.startsWith('-')) return null;
      const res = await runGit(['--git-dir', r.barePath, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
      return res.code === 0 ? res.stdout.toString().trim() : null;
    },
    headCommit: async (r, sha) => {
      const format = '%H%x00%T%x00%cI%x00%an%x00%ae%x00%cn%x00%ce%x00%B';
      const res = await runGit(['--git-dir', r.barePath, 'log', '-1', `--format=${format}`, `${sha}^{commit}`, '--']);
      if (res.code !== 0) return null;
      const [id, tree, at, an, ae, cn, ce, message] = res.stdout.toString('utf8').split('\0') as string[];
      return {
        id: id!,
        tree_id: tree!,
        message: message!.trimEnd(),
        timestamp: at!,
        author: { name: an!, email: ae! },
        committer: { name: cn!, email: ce! },
      };
    },
    branchAt: async (r, sha) => {
      const res = await runGit([
        '--git-dir',
        r.barePath,
        'for-each-ref',
        '--format=%(refname:lstrip=2)',
        '--points-at',
        sha,
        'refs/heads',
      ]);
      return res.code === 0 ? (res.stdout.toString('utf8').split('\n').find(Boolean) ?? null) : null;
    },
    pullsAt: async (r, sha) => {
      const open = [...r.pulls.values()].filter((p) => r.issues.get(p.number)!.state === 'open');
      const heads = await Promise.all(open.map(async (p) => ({ p, head: (await branchSha(r, p.head)) ?? p.headSha })));
      const repoRef = { id: r.id, url: repoApi(r), name: r.name };
      return Promise.all(
        heads
          .filter((x) => x.head === sha)
          .map(async ({ p }) => ({
            id: p.id,
            number: p.number,
            url: `${repoApi(r)}/pulls/${p.number}`,
            head: { ref: p.head, sha, repo: repoRef },
            base: { ref: p.base, sha: (await branchSha(r, p.base)) ?? '0'.repeat(40), repo: repoRef },
          })),
      );
    },
  });

  // ---- authentication ----

  function verifyJwt(jwt: string): void {
    const fail = (message: string): never => {
      throw new HttpError(401, { message, documentation_url: DOCS });
    };
    const parts = jwt.split('.');
    if (parts.length !== 3) fail('A JSON web token could not be decoded');
    const [h, p, s] = parts as [string, string, string];
    let header: { alg?: string };
    let payload: { iss?: unknown; exp?: unknown; iat?: unknown };
    try {
      header = JSON.parse(b64url(h).toString('utf8')) as typeof header;
      payload = JSON.parse(b64url(p).toString('utf8')) as typeof payload;
    } catch {
      throw new HttpError(401, { message: 'A JSON web token could not be decoded', documentation_url: DOCS });
    }
    if (header.alg !== 'RS256') fail(`JWT algorithm must be RS256, got ${String(header.alg)}`);
    const ok = verify('RSA-SHA256', Buffer.from(`${h}.${p}`), publicKey as KeyObject, b64url(s));
    if (!ok) fail('A JSON web token could not be decoded');
    if (String(payload.iss) !== String(appId)) fail(`'Issuer' claim ('iss') must be an Integer (the app id ${appId})`);
    const t = Math.floor(Date.now() / 1000);
    if (typeof payload.exp !== 'number')
      fail(
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
      );
    if ((payload.exp as number) <= t)
      fail(
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
      );
    if ((payload.exp as number) > t + 600 + 5) fail("'Expiration time' claim ('exp') is too far in the future");
    if (typeof payload.iat !== 'number' || (payload.iat as number) > t + 60) {
      fail("'Issued at' claim ('iat') must be an Integer representing a time in the past");
    }
  }

  function authenticate(req: IncomingMessage, jwtRoute: boolean): Auth {
    const header = req.headers.authorization ?? '';
    const m = /^(token|bearer)\s+(\S+)$/i.exec(header);
    if (!m) throw new HttpError(401, { message: 'Requires authentication', documentation_url: DOCS });
    const credential = m[2]!;
    if (jwtRoute) {
      if (m[1]!.toLowerCase() !== 'bearer' || credential.split('.').length !== 3) {
        throw new HttpError(401, { message: 'A JSON web token could not be decoded', documentation_url: DOCS });
      }
      verifyJwt(credential);
      return { kind: 'jwt' };
    }
    const expiry = tokens.get(credential);
    if (expiry === undefined || expiry < Date.now()) {
      throw new HttpError(401, { message: 'Bad credentials', documentation_url: DOCS });
    }
    return { kind: 'installation', token: credential };
  }

  function mintToken(): { token: string; expires_at: string } {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
    let token = 'ghs_';
    for (let i = 0; i < 36; i++) token += alphabet[randomInt(alphabet.length)];
    const expires = Date.now() + tokenTtlMs;
    tokens.set(token, expires);
    issuedTokens.push(token);
    return { token, expires_at: new Date(expires).toISOString().replace(/\.\d{3}Z$/, 'Z') };
  }

  function gitToken(req: IncomingMessage): string | null {
    const header = req.headers.authorization ?? '';
    let token: string | null = null;
    const basic = /^basic\s+(\S+)$/i.exec(header);
    if (basic) {
      const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      token = colon >= 0 ? decoded.slice(colon + 1) : null;
    }
    const bearer = /^(?:bearer|token)\s+(\S+)$/i.exec(header);
    if (bearer) token = bearer[1]!;
    if (!token) return null;
    const expiry = tokens.get(token);
    return expiry !== undefined && expiry >= Date.now() ? token : null;
  }

  // ---- REST handlers, keyed by OpenAPI operationId ----

  const handlers: Record<string, (ctx: Ctx) => Promise<Reply> | Reply> = {
    ...ci.handlers,

    'apps/get-authenticated': () => ({ status: 200, body: appObject() }),

    'apps/get-installation': (ctx) => {
      if (Number(ctx.params.installation_id) !== installationId) throw notFound();
      return { status: 200, body: installationObject() };
    },

    'apps/list-installations': () => ({ status: 200, body: [installationObject()] }),

    'users/get-by-username': (ctx) => {
      const login = ctx.params.username!;
      const stamp = '2020-01-01T00:00:00Z';
      return {
        status: 200,
        body: {
          ...userObject(login, url),
          name: null,
          company: null,
          blog: '',
          location: null,
          email: null,
          hireable: null,
          bio: null,
          public_repos: 0,
          public_gists: 0,
          followers: 0,
          following: 0,
          created_at: stamp,
          updated_at: stamp,
        },
      };
    },

    'apps/get-repo-installation': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      return { status: 200, body: installationObject(r.owner) };
    },

    'apps/create-installation-access-token': (ctx) => {
      if (Number(ctx.params.installation_id) !== installationId) throw notFound();
      const minted = mintToken();
      return {
        status: 201,
        body: { ...minted, permissions: INSTALLATION_PERMISSIONS, repository_selection: 'all' },
      };
    },

    'repos/get': (ctx) => ({ status: 200, body: repoObject(getRepo(ctx.params.owner!, ctx.params.repo!)) }),

    'issues/get': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      return { status: 200, body: issueObject(r, getIssue(r, ctx.params.issue_number!)) };
    },

    'issues/update': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const b = objectBody(ctx);
      editText(
        i,
        {
          ...(typeof b.title === 'string' ? { title: b.title } : {}),
          ...(typeof b.body === 'string' || b.body === null ? { body: (b.body as string | null) ?? '' } : {}),
        },
        ctx.actor,
      );
      if (b.state === 'open' || b.state === 'closed')
        setState(i, b.state, (b.state_reason as string | undefined) ?? null);
      if (Array.isArray(b.labels)) i.labels = labelNames(b.labels).map((n) => ensureLabel(r, n).name);
      i.updatedAt = now();
      return { status: 200, body: issueObject(r, i) };
    },

    'repos/get-collaborator-permission-level': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const login = ctx.params.username!;
      const role = permissionOf(r, login);
      // GitHub's legacy `permission` folds maintain into write and triage into read;
      // `role_name` keeps the exact role.
      const legacy = role === 'maintain' ? 'write' : role === 'triage' ? 'read' : role;
      const u = user(login);
      return {
        status: 200,
        body: {
          permission: legacy,
          role_name: role,
          user: {
            ...u,
            permissions: permissionFlags(role),
            role_name: role,
          },
        },
      };
    },

    'reactions/create-for-issue': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      return addReaction(i.reactions, String(objectBody(ctx).content), ctx.actor);
    },

    'reactions/create-for-issue-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const c = commentsById.get(Number(ctx.params.comment_id));
      if (!c || c.repoKey !== r.key) throw notFound();
      return addReaction(c.reactions, String(objectBody(ctx).content), ctx.actor);
    },

    'issues/list-comments': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const since = ctx.query.get('since');
      const list = i.comments.filter((c) => !since || c.updatedAt >= since);
      const page = paginate(ctx, list);
      return { status: 200, body: page.items.map((c) => commentObject(r, c)), headers: page.headers };
    },

    'issues/create-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const t = now();
      const c: CommentRec = {
        id: newId(),
        repoKey: r.key,
        issueNumber: i.number,
        body: String(objectBody(ctx).body),
        user: ctx.actor,
        createdAt: t,
        updatedAt: t,
        reactions: [],
      };
      i.comments.push(c);
      i.updatedAt = t;
      commentsById.set(c.id, c);
      const body = commentObject(r, c);
      return { status: 201, body, headers: { location: String(body.url) } };
    },

    'issues/get-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const c = commentsById.get(Number(ctx.params.comment_id));
      if (!c || c.repoKey !== r.key) throw notFound();
      return { status: 200, body: commentObject(r, c) };
    },

    'issues/update-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const c = commentsById.get(Number(ctx.params.comment_id));
      if (!c || c.repoKey !== r.key) throw notFound();
      c.body = String(objectBody(ctx).body);
      c.updatedAt = now();
      return { status: 200, body: commentObject(r, c) };
    },

    'issues/delete-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const c = commentsById.get(Number(ctx.params.comment_id));
      if (!c || c.repoKey !== r.key) throw notFound();
      const i = r.issues.get(c.issueNumber);
      if (i) i.comments = i.comments.filter((x) => x.id !== c.id);
      commentsById.delete(c.id);
      return { status: 204 };
    },

    'issues/list-labels-on-issue': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const page = paginate(ctx, i.labels);
      return { status: 200, body: page.items.map((n) => labelObject(r, n)), headers: page.headers };
    },

    'issues/add-labels': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const names = labelNames(ctx.body);
      if (names.length === 0) throw validationFailed([{ resource: 'Label', field: 'labels', code: 'missing_field' }]);
      for (const n of names) {
        const l = ensureLabel(r, n);
        if (!i.labels.some((x) => x.toLowerCase() === l.name.toLowerCase())) i.labels.push(l.name);
      }
      i.updatedAt = now();
      return { status: 200, body: i.labels.map((n) => labelObject(r, n)) };
    },

    'issues/remove-label': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const i = getIssue(r, ctx.params.issue_number!);
      const name = ctx.params.name!.toLowerCase();
      const at = i.labels.findIndex((x) => x.toLowerCase() === name);
      if (at < 0) throw new HttpError(404, { message: 'Label does not exist', documentation_url: DOCS });
      i.labels.splice(at, 1);
      i.updatedAt = now();
      return { status: 200, body: i.labels.map((n) => labelObject(r, n)) };
    },

    'issues/get-label': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      if (!r.labels.has(ctx.params.name!.toLowerCase())) throw notFound();
      return { status: 200, body: labelObject(r, ctx.params.name!) };
    },

    'issues/create-label': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const b = objectBody(ctx);
      const name = String(b.name).trim();
      const errors: Array<Record<string, unknown>> = [];
      if (name === '') errors.push({ resource: 'Label', code: 'missing_field', field: 'name' });
      else if (r.labels.has(name.toLowerCase()))
        errors.push({ resource: 'Label', code: 'already_exists', field: 'name' });
      // Documented as six hex digits "without the leading #".
      const color = b.color === undefined ? 'ededed' : String(b.color);
      if (!/^[0-9a-fA-F]{6}$/.test(color)) errors.push({ resource: 'Label', code: 'invalid', field: 'color' });
      const description = typeof b.description === 'string' ? b.description : null;
      if (description !== null && description.length > 100) {
        errors.push({
          resource: 'Label',
          code: 'custom',
          field: 'description',
          message: 'description is too long (maximum is 100 characters)',
        });
      }
      if (errors.length) throw validationFailed(errors);
      r.labels.set(name.toLowerCase(), { id: newId(), name, color: color.toLowerCase(), description });
      const body = labelObject(r, name);
      return { status: 201, body, headers: { location: String(body.url) } };
    },

    'pulls/list': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const state = ctx.query.get('state') ?? 'open';
      const head = ctx.query.get('head');
      const base = ctx.query.get('base');
      const list = [...r.pulls.values()].filter((p) => {
        const i = r.issues.get(p.number)!;
        if (state !== 'all' && i.state !== state) return false;
        if (head) {
          const [owner, branch] = head.includes(':') ? head.split(/:(.*)/s) : [r.owner, head];
          if (owner?.toLowerCase() !== r.owner.toLowerCase() || branch !== p.head) return false;
        }
        return !base || base === p.base;
      });
      list.sort((a, b) => b.number - a.number);
      const page = paginate(ctx, list);
      return { status: 200, body: await Promise.all(page.items.map((p) => pullObject(r, p))), headers: page.headers };
    },

    'pulls/get': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = r.pulls.get(Number(ctx.params.pull_number));
      if (!p) throw notFound();
      return { status: 200, body: await pullObject(r, p) };
    },

    'pulls/create': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const b = objectBody(ctx);
      if (typeof b.title !== 'string' || b.title.trim() === '') {
        throw validationFailed([{ resource: 'PullRequest', field: 'title', code: 'missing_field' }]);
      }
      const headSpec = String(b.head);
      const [headOwner, head] = headSpec.includes(':')
        ? (headSpec.split(/:(.*)/s) as [string, string])
        : [r.owner, headSpec];
      const base = String(b.base);
      const headSha = await branchSha(r, head);
      if (headOwner.toLowerCase() !== r.owner.toLowerCase() || !headSha) {
        throw validationFailed([{ resource: 'PullRequest', field: 'head', code: 'invalid' }]);
      }
      const baseSha = await branchSha(r, base);
      if (!baseSha) throw validationFailed([{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
      const existing = [...r.pulls.values()].find(
        (p) => p.head === head && p.base === base && r.issues.get(p.number)!.state === 'open',
      );
      if (existing) {
        throw validationFailed([
          { resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${r.owner}:${head}.` },
        ]);
      }
      const ancestor = await runGit(['--git-dir', r.barePath, 'merge-base', '--is-ancestor', headSha, baseSha]);
      if (ancestor.code === 0) {
        throw validationFailed([
          { resource: 'PullRequest', code: 'custom', message: `No commits between ${base} and ${head}` },
        ]);
      }
      const p = recordPull(r, {
        title: b.title,
        body: typeof b.body === 'string' ? b.body : '',
        user: ctx.actor,
        head,
        base,
        headSha,
        draft: b.draft === true,
        maintainerCanModify: b.maintainer_can_modify !== false,
      });
      const body = await pullObject(r, p);
      return { status: 201, body, headers: { location: String(body.url) } };
    },

    'pulls/update': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = r.pulls.get(Number(ctx.params.pull_number));
      if (!p) throw notFound();
      const i = r.issues.get(p.number)!;
      const b = objectBody(ctx);
      if (typeof b.title === 'string') i.title = b.title;
      if (typeof b.body === 'string') i.body = b.body;
      if (typeof b.base === 'string') {
        if (!(await branchSha(r, b.base)))
          throw validationFailed([{ resource: 'PullRequest', field: 'base', code: 'invalid' }]);
        p.base = b.base;
      }
      if (typeof b.maintainer_can_modify === 'boolean') p.maintainerCanModify = b.maintainer_can_modify;
      if (b.state === 'open' || b.state === 'closed') {
        if (b.state === 'open' && i.state === 'closed') {
          const clash = [...r.pulls.values()].find(
            (o) => o !== p && o.head === p.head && o.base === p.base && r.issues.get(o.number)!.state === 'open',
          );
          if (clash) {
            throw validationFailed([
              {
                resource: 'PullRequest',
                code: 'custom',
                message: `A pull request already exists for ${r.owner}:${p.head}.`,
              },
            ]);
          }
        }
        setState(i, b.state, null);
      }
      i.updatedAt = now();
      return { status: 200, body: await pullObject(r, p) };
    },

    'pulls/list-files': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const diff = await pullDiff(r, p);
      const page = paginate(ctx, diff.files);
      return { status: 200, body: page.items.map((f) => diffEntry(r, diff.headSha, f)), headers: page.headers };
    },

    'pulls/list-reviews': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const page = paginate(ctx, p.reviews);
      return { status: 200, body: page.items.map((v) => reviewObject(r, v)), headers: page.headers };
    },

    'pulls/get-review': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const v = p.reviews.find((x) => x.id === Number(ctx.params.review_id));
      if (!v) throw notFound();
      return { status: 200, body: reviewObject(r, v) };
    },

    'pulls/list-comments-for-review': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const v = p.reviews.find((x) => x.id === Number(ctx.params.review_id));
      if (!v) throw notFound();
      const page = paginate(
        ctx,
        p.reviewComments.filter((c) => c.reviewId === v.id),
      );
      return { status: 200, body: page.items.map((c) => reviewCommentObject(r, c)), headers: page.headers };
    },

    'pulls/list-review-comments': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const since = ctx.query.get('since');
      const sort = ctx.query.get('sort') === 'updated' ? 'updatedAt' : 'createdAt';
      const list = p.reviewComments
        .filter((c) => !since || c.updatedAt >= since)
        .map((c, n) => ({ c, n }))
        .sort((a, b) => a.c[sort].localeCompare(b.c[sort]) || a.n - b.n)
        .map((x) => x.c);
      if (ctx.query.get('direction') === 'desc') list.reverse();
      const page = paginate(ctx, list);
      return { status: 200, body: page.items.map((c) => reviewCommentObject(r, c)), headers: page.headers };
    },

    'pulls/get-review-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      return { status: 200, body: reviewCommentObject(r, getReviewComment(r, ctx.params.comment_id!)) };
    },

    'pulls/create-reply-for-review-comment': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const p = getPull(r, ctx.params.pull_number!);
      const target = getReviewComment(r, ctx.params.comment_id!);
      if (target.pullNumber !== p.number) throw notFound();
      const text = String(objectBody(ctx).body ?? '');
      if (text.trim() === '')
        throw validationFailed([{ resource: 'PullRequestReviewComment', code: 'missing_field', field: 'body' }]);
      // Replies join the thread of its first comment; like GitHub, each reply is its own
      // single-comment review (state COMMENTED, empty body) by the replier.
      const root = target.inReplyTo !== undefined ? getReviewComment(r, target.inReplyTo) : target;
      const t = now();
      const review: ReviewRec = {
        id: newId(),
        pullNumber: p.number,
        user: ctx.actor,
        state: 'COMMENTED',
        body: '',
        commitId: (await branchSha(r, p.head)) ?? p.headSha,
        submittedAt: t,
      };
      const c: ReviewCommentRec = {
        id: newId(),
        repoKey: r.key,
        pullNumber: p.number,
        reviewId: review.id,
        user: ctx.actor,
        body: text,
        path: root.path,
        line: root.line,
        position: root.position,
        diffHunk: root.diffHunk,
        commitId: root.commitId,
        originalCommitId: root.originalCommitId,
        inReplyTo: root.id,
        createdAt: t,
        updatedAt: t,
        reactions: [],
      };
      p.reviews.push(review);
      p.reviewComments.push(c);
      reviewCommentsById.set(c.id, c);
      r.issues.get(p.number)!.updatedAt = t;
      const body = reviewCommentObject(r, c);
      return { status: 201, body, headers: { location: String(body.url) } };
    },

    'reactions/create-for-pull-request-review-comment': (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const c = getReviewComment(r, ctx.params.comment_id!);
      return addReaction(c.reactions, String(objectBody(ctx).content), ctx.actor);
    },

    'repos/get-content': async (ctx) => {
      const r = getRepo(ctx.params.owner!, ctx.params.repo!);
      const ref = ctx.query.get('ref') || r.defaultBranch;
      const path = (ctx.params.path ?? '').replace(/^\/+|\/+$/g, '');
      if (ref.startsWith('-')) throw notFound();
      const commit = await runGit(['--git-dir', r.barePath, 'rev-parse', '--verify', '--quiet', `${ref}^{commit}`]);
      if (commit.code !== 0)
        throw new HttpError(404, { message: `No commit found for the ref ${ref}`, documentation_url: DOCS });
      const sha = commit.stdout.toString().trim();
      if (path === '') {
        // The repository root: always a directory.
        const children = await lsTree(r, sha, '');
        return { status: 200, body: children.map((e) => contentEntry(r, ref, e)) };
      }
      const entries = await lsTree(r, sha, path);
      const self = entries.find((e) => e.path === path);
      if (!self) throw notFound();
      if (self.type === 'tree') {
        const children = await lsTree(r, sha, `${path}/`);
        return { status: 200, body: children.map((e) => contentEntry(r, ref, e)) };
      }
      const blob = await runGit(['--git-dir', r.barePath, 'cat-file', 'blob', self.sha]);
      if (self.mode === '120000') {
        return { status: 200, body: { ...contentEntry(r, ref, self), target: blob.stdout.toString('utf8') } };
      }
      const content = (blob.stdout.toString('base64').match(/.{1,60}/g) ?? []).join('\n');
      return {
        status: 200,
        body: { ...contentEntry(r, ref, self), content: content ? `${content}\n` : '', encoding: 'base64' },
      };
    },
  };

  interface TreeEntry {
    mode: string;
    type: string;
    sha: string;
    size: number;
    path: string;
  }

  async function lsTree(r: RepoState, commit: string, path: string): Promise<TreeEntry[]> {
    const res = await runGit(['--git-dir', r.barePath, 'ls-tree', '-l', '-z', commit, ...(path ? ['--', path] : [])]);
    if (res.code !== 0) return [];
    return res.stdout
      .toString('utf8')
      .split('\0')
      .filter(Boolean)
      .map((line) => {
        const [meta, p] = line.split('\t') as [string, string];
        const [mode, type, sha, size] = meta.split(/\s+/) as [string, string, string, string];
        return { mode, type, sha, size: size === '-' ? 0 : Number(size), path: p };
      });
  }

  function contentEntry(r: RepoState, ref: string, e: TreeEntry): Record<string, unknown> {
    const type =
      e.type === 'tree' ? 'dir' : e.type === 'commit' ? 'submodule' : e.mode === '120000' ? 'symlink' : 'file';
    const self = `${repoApi(r)}/contents/${e.path}?ref=${encodeURIComponent(ref)}`;
    const html = `${repoHtml(r)}/${type === 'dir' ? 'tree' : 'blob'}/${ref}/${e.path}`;
    const git = `${repoApi(r)}/git/${type === 'dir' ? 'trees' : 'blobs'}/${e.sha}`;
    return {
      type,
      size: e.size,
      name: e.path.split('/').pop(),
      path: e.path,
      sha: e.sha,
      url: self,
      git_url: git,
      html_url: html,
      download_url: type === 'file' ? `${url}/raw/${r.owner}/${r.name}/${ref}/${e.path}` : null,
      _links: { self, git, html },
    };
  }

  function installationObject(accountLogin = 'stand-in-owner'): Record<string, unknown> {
    return {
      id: installationId,
      account: user(accountLogin),
      repository_selection: 'all',
      access_tokens_url: `${apiUrl}/app/installations/${installationId}/access_tokens`,
      repositories_url: `${apiUrl}/installation/repositories`,
      html_url: `${url}/settings/installations/${installationId}`,
      app_id: appId,
      app_slug: appSlug,
      target_id: userId(accountLogin),
      target_type: 'User',
      permissions: INSTALLATION_PERMISSIONS,
      events: INSTALLATION_EVENTS,
      created_at: appCreatedAt,
      updated_at: appCreatedAt,
      single_file_name: null,
      has_multiple_single_files: false,
      single_file_paths: [],
      suspended_by: null,
      suspended_at: null,
    };
  }

  /** A new open pull request and the issue that carries its number, as GitHub records both. */
  function recordPull(
    r: RepoState,
    o: Pick<PullRec, 'head' | 'base' | 'headSha' | 'draft' | 'maintainerCanModify'> & {
      title: string;
      body: string;
      user: string;
    },
  ): PullRec {
    const t = now();
    const number = nextNumber(r);
    r.issues.set(number, {
      id: newId(),
      number,
      title: o.title,
      body: o.body,
      user: o.user,
      state: 'open',
      stateReason: null,
      labels: [],
      comments: [],
      reactions: [],
      createdAt: t,
      updatedAt: t,
      closedAt: null,
      isPull: true,
      edits: [],
    });
    const p: PullRec = {
      id: newId(),
      number,
      head: o.head,
      base: o.base,
      headSha: o.headSha,
      draft: o.draft,
      maintainerCanModify: o.maintainerCanModify,
      reviews: [],
      reviewComments: [],
    };
    r.pulls.set(number, p);
    return p;
  }

  function addReaction(list: ReactionRec[], content: string, actor: string): Reply {
    const existing = list.find((x) => x.content === content && x.user === actor);
    if (existing) return { status: 200, body: reactionObject(existing) };
    const x: ReactionRec = { id: newId(), content, user: actor, createdAt: now() };
    list.push(x);
    return { status: 201, body: reactionObject(x) };
  }

  function setState(i: IssueRec, state: 'open' | 'closed', reason: string | null): void {
    if (state === i.state) return;
    i.state = state;
    i.closedAt = state === 'closed' ? now() : null;
    i.stateReason = state === 'closed' ? (reason ?? 'completed') : 'reopened';
  }

  // ---- HTTP plumbing ----

  function send(res: ServerResponse, reply: Reply): void {
    res.statusCode = reply.status;
    res.setHeader('x-github-request-id', randomBytes(8).toString('hex').toUpperCase());
    res.setHeader('x-github-media-type', 'github.v3; format=json');
    res.setHeader('x-github-enterprise-version', `${GHES_VERSION}.0`);
    res.setHeader('x-ratelimit-limit', '5000');
    res.setHeader('x-ratelimit-remaining', '4999');
    res.setHeader('x-ratelimit-used', '1');
    res.setHeader('x-ratelimit-reset', String(Math.floor(Date.now() / 1000) + 3600));
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v);
    if (reply.body === undefined || reply.status === 204 || reply.status === 304) {
      res.end();
      return;
    }
    res.setHeader('content-type', 'application/json; charset=utf-8');
    res.end(JSON.stringify(reply.body));
  }

  async function readBody(req: IncomingMessage): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  async function handleRest(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    query: URLSearchParams,
  ): Promise<Reply> {
    const method = req.method ?? 'GET';
    const raw = await readBody(req);
    let body: Ctx['body'];
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw.toString('utf8')) as Ctx['body'];
      } catch {
        return { status: 400, body: { message: 'Problems parsing JSON', documentation_url: DOCS } };
      }
    }
    const apiPath = pathname.slice('/api/v3'.length) || '/';
    const check = spec.checkRequest(method, apiPath, query, body);
    if (check.kind === 'unknown-route') {
      violations.push(...check.violations);
      return { status: 404, body: { message: 'Not Found', documentation_url: DOCS } };
    }
    const match = check.match;
    await passHold(
      (m) =>
        m.git === undefined &&
        (m.method === undefined || m.method.toUpperCase() === method) &&
        (m.route === undefined ||
          (typeof m.route === 'string' ? m.route === match.operationId : m.route.test(apiPath))),
    );
    const fault = faults.find(
      (f) =>
        (f.match.method === undefined || f.match.method.toUpperCase() === method) &&
        (f.match.route === undefined ||
          (typeof f.match.route === 'string' ? f.match.route === match.operationId : f.match.route.test(apiPath))),
    );
    if (fault) {
      if (--fault.remaining <= 0) faults.splice(faults.indexOf(fault), 1);
      return {
        status: fault.reply.status,
        headers: fault.reply.headers,
        body: fault.reply.body ?? { message: `stand-in fault ${fault.reply.status}`, documentation_url: DOCS },
      };
    }
    const handler = handlers[match.operationId];
    if (!handler) {
      violations.push(
        `${match.method} ${match.template}: GitHub has this route (${match.operationId}) but the stand-in does not implement it`,
      );
      return { status: 404, body: { message: 'Not Found', documentation_url: DOCS } };
    }
    const auth = authenticate(req, JWT_OPERATIONS.has(match.operationId));
    if (check.kind === 'invalid') {
      violations.push(...check.violations);
      throw validationFailed(check.errors);
    }
    const ctx: Ctx = {
      match,
      params: match.params,
      query,
      body,
      actor: auth.kind === 'installation' ? botLogin : appSlug,
      req,
      res,
    };
    return handler(ctx);
  }

  /** `POST /api/graphql`: an installation's query, answered against GitHub's schema. */
  async function handleGraphql(req: IncomingMessage): Promise<Reply> {
    if (req.method !== 'POST') return { status: 404, body: { message: 'Not Found', documentation_url: DOCS } };
    const raw = await readBody(req);
    authenticate(req, false);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return { status: 400, body: { message: 'Problems parsing JSON', documentation_url: DOCS } };
    }
    return answerGraphql(body, graphqlRoot, violations);
  }

  async function handleGit(
    req: IncomingMessage,
    res: ServerResponse,
    owner: string,
    repo: string,
    service: string,
    query: string,
  ): Promise<number> {
    const token = gitToken(req);
    if (!token) {
      res.statusCode = 401;
      res.setHeader('WWW-Authenticate', 'Basic realm="GitHub"');
      res.setHeader('content-type', 'text/plain');
      res.end('Invalid username or token. Password authentication is not supported for Git operations.\n');
      return 401;
    }
    const r = repos.get(repoKey(owner, repo));
    if (!r) {
      res.statusCode = 404;
      res.setHeader('content-type', 'text/plain');
      res.end('Repository not found.\n');
      return 404;
    }
    const status = await serveGitHttpBackend(req, res, {
      projectRoot: reposRoot,
      pathInfo: `/${r.owner}/${r.name}.git/${service}`,
      query,
      remoteUser: 'x-access-token',
    });
    if (service === 'git-receive-pack' && status === 200) r.pushedAt = now();
    return status;
  }

  const server: Server = createServer((req, res) => {
    const parsed = new URL(req.url ?? '/', 'http://stand-in');
    const pathname = parsed.pathname;
    const record = (status: number, body?: unknown): void => {
      requests.push({
        method: req.method ?? 'GET',
        path: pathname,
        query: parsed.search.slice(1) || undefined,
        status,
        body,
      });
    };
    const gitMatch = /^\/([^/]+)\/([^/]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(pathname);
    /** Sends an API answer (REST or GraphQL), GitHub's error shape for a throw, and records it. */
    const answer = (reply: Promise<Reply>): void => {
      void reply
        .catch((err: unknown): Reply => {
          if (err instanceof HttpError) return { status: err.status, body: err.body };
          return {
            status: 500,
            body: { message: `stand-in error: ${err instanceof Error ? err.stack : String(err)}` },
          };
        })
        .then((r) => {
          record(r.status, r.body);
          send(res, r);
        });
    };
    if (pathname === '/api/graphql') {
      answer(handleGraphql(req));
    } else if (pathname === '/api/v3' || pathname.startsWith('/api/v3/')) {
      answer(handleRest(req, res, pathname, parsed.searchParams));
    } else if (gitMatch) {
      const [, owner, repo, service] = gitMatch as unknown as [string, string, string, string];
      void passHold((m) => m.git === service && req.method === 'POST').then(() =>
        handleGit(req, res, decodeURIComponent(owner), decodeURIComponent(repo), service, parsed.search.slice(1)).then(
          (status) => record(status),
          (err: unknown) => {
            record(500);
            if (!res.headersSent) res.statusCode = 500;
            res.end(String(err));
          },
        ),
      );
    } else if (ci.logAt(pathname, parsed.searchParams) !== null) {
      // Where `download-job-logs-for-workflow-run` redirects: a "signed" URL that needs no token.
      record(200);
      res.setHeader('content-type', 'text/plain; charset=utf-8');
      res.end(ci.logAt(pathname, parsed.searchParams));
    } else {
      record(404);
      res.statusCode = 404;
      res.setHeader('content-type', 'text/plain');
      res.end('Not Found\n');
    }
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  url = `http://${host}`;
  apiUrl = `${url}/api/v3`;

  const standIn: GitHubStandIn = {
    url,
    apiUrl,
    host,
    appId,
    appSlug,
    botLogin,
    privateKey,
    installationId,
    violations,
    requests,
    issuedTokens,

    async addRepo({ owner, repo, files, defaultBranch = 'main' }) {
      const key = repoKey(owner, repo);
      if (repos.has(key)) throw new Error(`stand-in already has ${owner}/${repo}`);
      const barePath = join(reposRoot, owner, `${repo}.git`);
      await mkdir(dirname(barePath), { recursive: true });
      await gitOk(['init', '--quiet', '--bare', `--initial-branch=${defaultBranch}`, barePath]);
      await gitOk(['--git-dir', barePath, 'config', 'http.receivepack', 'true']);
      const seed = await mkdtemp(join(dataDir, 'seed-'));
      try {
        await gitOk(['init', '--quiet', `--initial-branch=${defaultBranch}`, seed]);
        for (const [path, content] of Object.entries(files)) {
          const file = join(seed, path);
          await mkdir(dirname(file), { recursive: true });
          await writeFile(file, content);
        }
        await gitOk(['-C', seed, 'add', '--all']);
        await gitOk([
          '-C',
          seed,
          '-c',
          'commit.gpgsign=false',
          'commit',
          '--quiet',
          '--allow-empty',
          '-m',
          'Initial commit',
        ]);
        await gitOk(['-C', seed, 'push', '--quiet', barePath, `HEAD:refs/heads/${defaultBranch}`]);
      } finally {
        await rm(seed, { recursive: true, force: true });
      }
      const t = now();
      repos.set(key, {
        key,
        owner,
        name: repo,
        id: newId(),
        defaultBranch,
        barePath,
        createdAt: t,
        pushedAt: t,
        permissions: new Map(),
        issues: new Map(),
        pulls: new Map(),
        labels: new Map(),
      });
      return { barePath };
    },

    setPermission(owner, repo, login, permission) {
      mustRepo(owner, repo).permissions.set(login.toLowerCase(), permission);
    },

    addIssue(owner, repo, issue) {
      const r = mustRepo(owner, repo);
      if (r.issues.has(issue.number))
        throw new Error(`${owner}/${repo}#${issue.number} already exists in the stand-in`);
      const t = now();
      r.issues.set(issue.number, {
        id: newId(),
        number: issue.number,
        title: issue.title,
        body: issue.body,
        user: issue.user,
        state: 'open',
        stateReason: null,
        labels: [],
        comments: [],
        reactions: [],
        createdAt: t,
        updatedAt: t,
        closedAt: null,
        isPull: false,
        edits: [],
      });
    },

    editIssue(owner, repo, issueNumber, edit, by) {
      const i = mustRepo(owner, repo).issues.get(issueNumber);
      if (!i) throw new Error(`${owner}/${repo}#${issueNumber} does not exist in the stand-in; call addIssue first`);
      editText(i, edit, by);
    },

    markLabeled(owner, repo, issueNumber) {
      const i = repos.get(repoKey(owner, repo))?.issues.get(issueNumber);
      if (!i) return undefined;
      i.updatedAt = tick();
      return { title: i.title, body: i.body, updatedAt: i.updatedAt };
    },

    issueText(owner, repo, issueNumber) {
      const i = repos.get(repoKey(owner, repo))?.issues.get(issueNumber);
      return i ? { title: i.title, body: i.body, updatedAt: i.updatedAt } : undefined;
    },

    addComment(owner, repo, issueNumber, comment) {
      const r = mustRepo(owner, repo);
      const i = r.issues.get(issueNumber);
      if (!i) throw new Error(`${owner}/${repo}#${issueNumber} does not exist in the stand-in; call addIssue first`);
      const t = now();
      const c: CommentRec = {
        id: newId(),
        repoKey: r.key,
        issueNumber,
        body: comment.body,
        user: comment.user,
        createdAt: t,
        updatedAt: t,
        reactions: [],
      };
      i.comments.push(c);
      i.updatedAt = t;
      commentsById.set(c.id, c);
      return c.id;
    },

    comments(owner, repo, issueNumber) {
      const i = mustRepo(owner, repo).issues.get(issueNumber);
      return (i?.comments ?? []).map((c) => ({
        id: c.id,
        body: c.body,
        user: c.user,
        created_at: c.createdAt,
        updated_at: c.updatedAt,
      }));
    },

    reactions(owner, repo, issueNumber) {
      const i = mustRepo(owner, repo).issues.get(issueNumber);
      return (i?.reactions ?? []).map((x) => ({ content: x.content, user: x.user }));
    },

    commentReactions(owner, repo, commentId) {
      const r = mustRepo(owner, repo);
      const c = commentsById.get(commentId) ?? reviewCommentsById.get(commentId);
      if (!c || c.repoKey !== r.key) throw new Error(`stand-in has no comment ${commentId} in ${owner}/${repo}`);
      return c.reactions.map((x) => ({ content: x.content, user: x.user }));
    },

    labels(owner, repo, issueNumber) {
      return [...(mustRepo(owner, repo).issues.get(issueNumber)?.labels ?? [])];
    },

    repoLabels(owner, repo) {
      return [...mustRepo(owner, repo).labels.values()].map((l) => ({
        name: l.name,
        color: l.color,
        description: l.description,
      }));
    },

    async addReview(owner, repo, pullNumber, review) {
      const r = mustRepo(owner, repo);
      const p = r.pulls.get(pullNumber);
      if (!p) throw new Error(`${owner}/${repo} has no pull request #${pullNumber} in the stand-in`);
      if (
        review.body.trim() === '' &&
        (review.state === 'CHANGES_REQUESTED' || (review.state === 'COMMENTED' && !review.comments?.length))
      ) {
        throw new Error(`a ${review.state} review needs a body (GitHub answers 422 without one)`);
      }
      const author = r.issues.get(pullNumber)!.user;
      if (review.state !== 'COMMENTED' && review.user.toLowerCase() === author.toLowerCase()) {
        const verb = review.state === 'APPROVED' ? 'approve' : 'request changes on';
        throw new Error(
          `${review.user} cannot ${verb} their own pull request (GitHub answers 422 "Can not ${verb} your own pull request")`,
        );
      }
      const diff = await pullDiff(r, p);
      // Place every comment before recording anything: GitHub refuses the whole review.
      const placed = (review.comments ?? []).map((c) => {
        const at = locateLine(diff.files, c.path, c.line);
        if (!at) {
          const changed = diff.files.map((f) => f.filename).join(', ') || 'none';
          throw new Error(
            `cannot comment on ${c.path}:${c.line} in ${owner}/${repo}#${pullNumber}: that line is not in the pull request's diff ` +
              `(GitHub answers 422 "Line could not be resolved"; files changed: ${changed})`,
          );
        }
        return { ...c, ...at };
      });
      const t = now();
      const v: ReviewRec = {
        id: newId(),
        pullNumber,
        user: review.user,
        state: review.state,
        body: review.body,
        commitId: diff.headSha,
        submittedAt: t,
      };
      p.reviews.push(v);
      const commentIds = placed.map((c) => {
        const rec: ReviewCommentRec = {
          id: newId(),
          repoKey: r.key,
          pullNumber,
          reviewId: v.id,
          user: review.user,
          body: c.body,
          path: c.path,
          line: c.line,
          position: c.position,
          diffHunk: c.diffHunk,
          commitId: diff.headSha,
          originalCommitId: diff.headSha,
          createdAt: t,
          updatedAt: t,
          reactions: [],
        };
        p.reviewComments.push(rec);
        reviewCommentsById.set(rec.id, rec);
        return rec.id;
      });
      r.issues.get(pullNumber)!.updatedAt = t;
      return {
        reviewId: v.id,
        commentIds,
        review: reviewObject(r, v),
        pullRequest: (await pullObject(r, p)) as RestPull,
      };
    },

    reviewComments(owner, repo, pullNumber) {
      const p = mustRepo(owner, repo).pulls.get(pullNumber);
      return (p?.reviewComments ?? []).map((c) => ({
        id: c.id,
        path: c.path,
        line: c.line,
        body: c.body,
        user: c.user,
        ...(c.inReplyTo !== undefined ? { inReplyTo: c.inReplyTo } : {}),
      }));
    },

    async headSha(owner, repo, branch) {
      return branchSha(mustRepo(owner, repo), branch);
    },

    async branches(owner, repo) {
      const r = mustRepo(owner, repo);
      const res = await runGit(['--git-dir', r.barePath, 'for-each-ref', '--format=%(refname:lstrip=2)', 'refs/heads']);
      if (res.code !== 0)
        throw new Error(`stand-in: git for-each-ref in ${owner}/${repo} failed: ${res.stderr.trim()}`);
      return res.stdout.toString('utf8').split('\n').filter(Boolean).sort();
    },

    async isAncestor(owner, repo, older, newer) {
      const r = mustRepo(owner, repo);
      const res = await runGit(['--git-dir', r.barePath, 'merge-base', '--is-ancestor', older, newer]);
      if (res.code === 0) return true;
      if (res.code === 1) return false;
      throw new Error(
        `stand-in: git merge-base --is-ancestor ${older} ${newer} in ${owner}/${repo} failed: ${res.stderr.trim()}`,
      );
    },

    pulls(owner, repo) {
      const r = mustRepo(owner, repo);
      return [...r.pulls.values()].map((p) => {
        const i = r.issues.get(p.number)!;
        return {
          number: p.number,
          title: i.title,
          body: i.body,
          head: p.head,
          base: p.base,
          state: i.state,
          user: i.user,
          draft: p.draft,
        };
      });
    },

    async readFile(owner, repo, ref, path) {
      const r = mustRepo(owner, repo);
      const res = await runGit(['--git-dir', r.barePath, 'show', `${ref}:${path.replace(/^\/+/, '')}`]);
      return res.code === 0 ? res.stdout.toString('utf8') : null;
    },

    failNext(match, reply, times = 1) {
      if (!(times >= 1)) throw new Error(`failNext: times must be at least 1, got ${times}`);
      faults.push({ match, reply, remaining: times });
    },

    clearFaults() {
      faults.length = 0;
    },

    hold(match) {
      let arrived!: () => void;
      let release!: () => void;
      const reached = new Promise<void>((r) => (arrived = r));
      const gate = new Promise<void>((r) => (release = r));
      holds.push({ match, arrived, gate });
      return { reached, release };
    },

    async openPullAs(owner, repo, o) {
      const r = mustRepo(owner, repo);
      const headSha = await branchSha(r, o.head);
      if (!headSha || !(await branchSha(r, o.base))) throw new Error(`openPullAs: no branch ${o.head} or ${o.base}`);
      return recordPull(r, { ...o, body: '', headSha, draft: false, maintainerCanModify: true }).number;
    },
    setChecks: (owner, repo, sha, checks) => ci.setChecks(owner, repo, sha, checks),
    setStatuses: (owner, repo, sha, statuses) => ci.setStatuses(owner, repo, sha, statuses),
    reruns: (owner, repo) => ci.reruns(owner, repo),

    setTokenTtl(ms) {
      tokenTtlMs = ms;
    },

    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if (ownsDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
  return standIn;
}

function labelNames(body: unknown): string[] {
  const list = Array.isArray(body)
    ? body
    : typeof body === 'string'
      ? [body]
      : body && typeof body === 'object' && Array.isArray((body as { labels?: unknown }).labels)
        ? (body as { labels: unknown[] }).labels
        : [];
  return list
    .map((x) =>
      typeof x === 'string' ? x : x && typeof x === 'object' ? String((x as { name?: unknown }).name ?? '') : '',
    )
    .filter((x) => x !== '');
}
