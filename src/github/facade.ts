import type { ProbotOctokit } from 'probot';
import { registerSecret, sanitise } from '../util/sanitise.js';
import { Limiter } from '../util/limiter.js';

export type Permission = 'admin' | 'maintain' | 'write' | 'triage' | 'read' | 'none';
export const WRITE_PERMISSIONS: ReadonlySet<Permission> = new Set(['admin', 'maintain', 'write']);

export interface RepoRef {
  owner: string;
  repo: string;
}

export interface RepoInfo {
  defaultBranch: string;
  cloneUrl: string;
  htmlUrl: string;
}

export interface IssueInfo {
  number: number;
  title: string;
  body: string;
  author: string;
  labels: string[];
  htmlUrl: string;
}

export interface PullInfo {
  number: number;
  htmlUrl: string;
}

export interface PullDetail extends PullInfo {
  title: string;
  author: string;
  state: string;
  headRef: string;
  headSha: string;
  baseRef: string;
  /** The head lives in this repository (not a fork). */
  sameRepo: boolean;
  draft: boolean;
  /** The GraphQL id, for mutations REST does not have (marking a draft ready). */
  nodeId: string;
}

/** A check run on a commit, as the checks API gives it (the latest run of each name). */
export interface CheckRunInfo {
  id: number;
  name: string;
  status: string;
  conclusion: string | null;
  /** The app that ran it: `github-actions` for a workflow job, whose job id is the check run's id. */
  appSlug: string;
  title: string;
  summary: string;
  text: string;
  annotations: number;
  url: string;
}

/** A commit status set by an integration that does not use checks. */
export interface CommitStatusInfo {
  context: string;
  state: 'error' | 'failure' | 'pending' | 'success';
  description: string;
  url: string;
}

export interface CheckAnnotation {
  path: string;
  line: number;
  level: string;
  title: string;
  message: string;
}

/** The CI reads and writes of the app's own pull requests: checks, statuses, job logs, re-runs. */
export type CiHost = Pick<
  GitHubRepo,
  'checkRuns' | 'commitStatuses' | 'checkAnnotations' | 'jobLogTail' | 'rerunJob' | 'markReadyForReview'
>;

// Bounds on what CI answers the app reads: enough for any real PR, finite for any hostile one.
const MAX_CHECK_PAGES = 5;
const MAX_ANNOTATIONS = 50;
/** A job log is read to this many bytes in all; only its last LOG_TAIL_BYTES are kept. */
const MAX_LOG_READ_BYTES = 64 * 1024 * 1024;
const LOG_TAIL_BYTES = 256 * 1024;
const MAX_CHECK_TEXT = 4_000;
/** GitHub allows long check names; the app keeps and shows this much of one. */
const MAX_CHECK_NAME = 200;
/** How long a job log may take to read. */
const LOG_READ_MS = 120_000;

export interface Review {
  id: number;
  author: string;
  state: string;
  body: string;
}

export interface ReviewComment {
  id: number;
  path: string;
  line: number | null;
  diffHunk: string;
  body: string;
  author: string;
  inReplyTo?: number;
}

/** One change of an issue's title or body, as GitHub's history records it. */
export interface IssueEdit {
  what: 'title' | 'body';
  /** Who made it; null when GitHub no longer knows (a deleted account). */
  editor: string | null;
  /** An app's login carries `[bot]`, as in REST. */
  editorIsBot: boolean;
  at: string;
}

/** The edits of an issue made at or after a time, and whether that list is whole. */
export interface IssueEdits {
  edits: IssueEdit[];
  /** False when GitHub holds more edits than one read returns: some may be missing. */
  complete: boolean;
}

/** How many edits of each kind one read asks for; an issue with more is not judged by a part. */
const EDITS_READ = 100;

const ISSUE_EDITS_QUERY = `query IssueEdits($owner: String!, $repo: String!, $number: Int!, $since: DateTime!, $count: Int!) {
  repository(owner: $owner, name: $repo) {
    issue(number: $number) {
      userContentEdits(first: $count) { totalCount nodes { editedAt editor { __typename login } } }
      timelineItems(first: $count, since: $since, itemTypes: [RENAMED_TITLE_EVENT]) {
        totalCount
        nodes { ... on RenamedTitleEvent { createdAt actor { __typename login } } }
      }
    }
  }
}`;

interface IssueEditsAnswer {
  repository: {
    issue: {
      userContentEdits: {
        totalCount: number;
        nodes: Array<{ editedAt: string; editor: { __typename: string; login: string } | null } | null> | null;
      };
      timelineItems: {
        totalCount: number;
        nodes: Array<{ createdAt?: string; actor?: { __typename: string; login: string } | null } | null> | null;
      };
    } | null;
  } | null;
}

/** A GraphQL actor as the REST login: a Bot's GraphQL login lacks `[bot]`. */
function actorLogin(a: { __typename: string; login: string } | null | undefined): {
  editor: string | null;
  editorIsBot: boolean;
} {
  if (!a) return { editor: null, editorIsBot: false };
  const isBot = a.__typename === 'Bot';
  return { editor: isBot && !a.login.endsWith('[bot]') ? `${a.login}[bot]` : a.login, editorIsBot: isBot };
}

export const LABEL_WORKING = 'agent:working';
export const LABEL_STUCK = 'agent:stuck';
export const LABEL_NEEDS_INFO = 'agent:needs-info';

/** The labels the app uses, created on first use with a colour and a description. */
export const LABEL_SPECS: Readonly<Record<string, { color: string; description: string }>> = {
  agent: { color: '5319e7', description: 'issue-agent: turn this issue into a pull request' },
  'agent:working': { color: 'fbca04', description: 'issue-agent is working on this' },
  'agent:stuck': { color: 'd93f0b', description: 'issue-agent stopped without a result; see its comment' },
  'agent:needs-info': { color: '0e8a16', description: 'issue-agent needs answers or a go-ahead before it continues' },
};

export interface IssueComment {
  author: string;
  /** `User`, `Bot` or `Organization`, as GitHub reports it. */
  authorType: string;
  body: string;
  createdAt: string;
  /** GitHub's author_association (OWNER, MEMBER, COLLABORATOR, CONTRIBUTOR, NONE…); not a permission check. */
  association: string;
}

/** The page number of rel="last" in a Link header; 1 when there is none. */
function lastPage(link: string | undefined): number {
  const m = link ? /<[^>]*[?&]page=(\d+)[^>]*>;\s*rel="last"/.exec(link) : null;
  return m ? Number(m[1]) : 1;
}

/** Pages of an issue's comments read at most (100 each); a longer thread is read at both ends. */
export const MAX_COMMENT_PAGES = 10;
/** Comment pages read at once. */
const COMMENT_PAGES_AT_ONCE = 4;
/** A comment's body is read up to this many characters (scope quotes far less of it). */
const COMMENT_BODY_CHARS = 20_000;

/** A token handed to git has at least this long to live; a shorter-lived cached one is replaced. */
export const GIT_TOKEN_MIN_LIFETIME_MS = 10 * 60_000;

function isStatus(err: unknown, status: number): boolean {
  return typeof err === 'object' && err !== null && (err as { status?: number }).status === status;
}

/**
 * The thin facade over Octokit for one installation and repository: the only module that
 * calls the GitHub API. Every text it posts passes the sanitiser.
 */
export class GitHubRepo {
  constructor(
    private readonly octokit: ProbotOctokit,
    readonly ref: RepoRef,
  ) {}

  /** The user's role on the repository; `role_name` distinguishes maintain from write. */
  async permission(username: string): Promise<Permission> {
    try {
      const { data } = await this.octokit.rest.repos.getCollaboratorPermissionLevel({ ...this.ref, username });
      const role = (data.role_name ?? data.permission) as string;
      return (['admin', 'maintain', 'write', 'triage', 'read'].includes(role) ? role : data.permission) as Permission;
    } catch (err) {
      if (isStatus(err, 404)) return 'none';
      throw err;
    }
  }

  async repoInfo(): Promise<RepoInfo> {
    const { data } = await this.octokit.rest.repos.get({ ...this.ref });
    return { defaultBranch: data.default_branch, cloneUrl: data.clone_url, htmlUrl: data.html_url };
  }

  async issue(issueNumber: number): Promise<IssueInfo> {
    const { data } = await this.octokit.rest.issues.get({ ...this.ref, issue_number: issueNumber });
    return {
      number: data.number,
      title: data.title,
      body: data.body ?? '',
      author: data.user?.login ?? 'ghost',
      labels: data.labels.map((l) => (typeof l === 'string' ? l : (l.name ?? ''))).filter(Boolean),
      htmlUrl: data.html_url,
    };
  }

  /**
   * The issue's title and body edits made at or after `since` (GraphQL: the body's
   * `userContentEdits`, the title's `RenamedTitleEvent`s; REST has no body history).
   */
  async issueEdits(issueNumber: number, since: string): Promise<IssueEdits> {
    const answer = await this.octokit.graphql<IssueEditsAnswer>(ISSUE_EDITS_QUERY, {
      ...this.ref,
      number: issueNumber,
      since,
      count: EDITS_READ,
    });
    const issue = answer.repository?.issue;
    if (!issue)
      throw new Error(`GitHub's GraphQL API did not find issue #${issueNumber} of ${this.ref.owner}/${this.ref.repo}`);
    const from = Date.parse(since);
    const body = (issue.userContentEdits.nodes ?? []).flatMap((n) =>
      n ? [{ what: 'body' as const, ...actorLogin(n.editor), at: n.editedAt }] : [],
    );
    const title = (issue.timelineItems.nodes ?? []).flatMap((n) =>
      n?.createdAt ? [{ what: 'title' as const, ...actorLogin(n.actor), at: n.createdAt }] : [],
    );
    return {
      edits: [...body, ...title].filter((e) => !(Date.parse(e.at) < from)),
      complete: issue.userContentEdits.totalCount <= body.length && issue.timelineItems.totalCount <= title.length,
    };
  }

  async react(issueNumber: number, content: 'eyes' | '+1' | 'rocket' | 'confused'): Promise<void> {
    await this.octokit.rest.reactions.createForIssue({ ...this.ref, issue_number: issueNumber, content });
  }

  async reactToComment(commentId: number, content: 'eyes' | '+1' | 'rocket' | 'confused'): Promise<void> {
    await this.octokit.rest.reactions.createForIssueComment({ ...this.ref, comment_id: commentId, content });
  }

  async comment(issueNumber: number, body: string): Promise<number> {
    const { data } = await this.octokit.rest.issues.createComment({
      ...this.ref,
      issue_number: issueNumber,
      body: sanitise(body),
    });
    return data.id;
  }

  async updateComment(commentId: number, body: string): Promise<void> {
    await this.octokit.rest.issues.updateComment({ ...this.ref, comment_id: commentId, body: sanitise(body) });
  }

  async deleteComment(commentId: number): Promise<void> {
    await this.octokit.rest.issues.deleteComment({ ...this.ref, comment_id: commentId });
  }

  /**
   * Adds labels, creating the app's own ones first (with colour and description) when the
   * repository does not have them yet; GitHub would otherwise create them grey and bare.
   */
  async addLabels(issueNumber: number, labels: string[]): Promise<void> {
    for (const name of labels) await this.ensureLabel(name);
    await this.octokit.rest.issues.addLabels({ ...this.ref, issue_number: issueNumber, labels });
  }

  private readonly knownLabels = new Set<string>();

  /** Creates one of the app's labels unless the repository has it. Checked once per facade. */
  async ensureLabel(name: string): Promise<void> {
    const spec = LABEL_SPECS[name];
    if (!spec || this.knownLabels.has(name)) return;
    try {
      await this.octokit.rest.issues.getLabel({ ...this.ref, name });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      try {
        await this.octokit.rest.issues.createLabel({
          ...this.ref,
          name,
          color: spec.color,
          description: spec.description,
        });
      } catch (createErr) {
        // Someone (another job) created it meanwhile.
        if (!isStatus(createErr, 422)) throw createErr;
      }
    }
    this.knownLabels.add(name);
  }

  /** Removes a label; a label that is not there is not an error. */
  async removeLabel(issueNumber: number, name: string): Promise<void> {
    try {
      await this.octokit.rest.issues.removeLabel({ ...this.ref, issue_number: issueNumber, name });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
    }
  }

  /** The open PR whose head is `branch` in this repository, if any. */
  async findOpenPull(branch: string): Promise<PullInfo | undefined> {
    const { data } = await this.octokit.rest.pulls.list({
      ...this.ref,
      head: `${this.ref.owner}:${branch}`,
      state: 'open',
      per_page: 10,
    });
    const pr = data[0];
    return pr ? { number: pr.number, htmlUrl: pr.html_url } : undefined;
  }

  /** Opens the PR for `head`, or updates the one that is already open for it. */
  async openOrUpdatePull(p: {
    head: string;
    base: string;
    title: string;
    body: string;
    /** Open it as a draft (an open PR keeps what it is). */
    draft?: boolean;
  }): Promise<PullInfo & { created: boolean }> {
    const existing = await this.findOpenPull(p.head);
    const body = sanitise(p.body);
    const title = sanitise(p.title);
    if (existing) {
      await this.octokit.rest.pulls.update({ ...this.ref, pull_number: existing.number, title, body });
      return { ...existing, created: false };
    }
    const { data } = await this.octokit.rest.pulls.create({
      ...this.ref,
      head: p.head,
      base: p.base,
      title,
      body,
      ...(p.draft ? { draft: true } : {}),
    });
    return { number: data.number, htmlUrl: data.html_url, created: true };
  }

  async pull(pullNumber: number): Promise<PullDetail> {
    const { data } = await this.octokit.rest.pulls.get({ ...this.ref, pull_number: pullNumber });
    return {
      number: data.number,
      htmlUrl: data.html_url,
      title: data.title,
      author: data.user?.login ?? 'ghost',
      state: data.state,
      headRef: data.head.ref,
      headSha: data.head.sha,
      baseRef: data.base.ref,
      sameRepo: data.head.repo?.full_name?.toLowerCase() === `${this.ref.owner}/${this.ref.repo}`.toLowerCase(),
      draft: data.draft === true,
      nodeId: data.node_id,
    };
  }

  /** The open PR whose head is `branch` in this repository, in full, if any. */
  async openPullFor(branch: string): Promise<PullDetail | undefined> {
    const found = await this.findOpenPull(branch);
    return found ? await this.pull(found.number) : undefined;
  }

  /** The latest check run of each name on `ref` (a commit or branch), bounded to a few pages. */
  async checkRuns(ref: string): Promise<CheckRunInfo[]> {
    const runs: CheckRunInfo[] = [];
    for (let page = 1; page <= MAX_CHECK_PAGES; page++) {
      const { data } = await this.octokit.rest.checks.listForRef({
        ...this.ref,
        ref,
        filter: 'latest',
        per_page: 100,
        page,
      });
      for (const r of data.check_runs)
        runs.push({
          id: r.id,
          name: r.name.slice(0, MAX_CHECK_NAME),
          status: r.status,
          conclusion: r.conclusion ?? null,
          appSlug: r.app?.slug ?? '',
          title: (r.output.title ?? '').slice(0, MAX_CHECK_TEXT),
          summary: (r.output.summary ?? '').slice(0, MAX_CHECK_TEXT),
          text: (r.output.text ?? '').slice(0, MAX_CHECK_TEXT),
          annotations: r.output.annotations_count,
          url: r.html_url ?? r.details_url ?? '',
        });
      if (data.check_runs.length < 100) break;
    }
    return runs;
  }

  /** The commit statuses on `ref`, the latest per context. */
  async commitStatuses(ref: string): Promise<CommitStatusInfo[]> {
    const { data } = await this.octokit.rest.repos.getCombinedStatusForRef({ ...this.ref, ref, per_page: 100 });
    return data.statuses.map((s) => ({
      context: s.context.slice(0, MAX_CHECK_NAME),
      state: s.state as CommitStatusInfo['state'],
      description: (s.description ?? '').slice(0, MAX_CHECK_TEXT),
      url: s.target_url ?? '',
    }));
  }

  /** A check run's annotations, the first MAX_ANNOTATIONS. */
  async checkAnnotations(checkRunId: number): Promise<CheckAnnotation[]> {
    const { data } = await this.octokit.rest.checks.listAnnotations({
      ...this.ref,
      check_run_id: checkRunId,
      per_page: MAX_ANNOTATIONS,
    });
    return data.slice(0, MAX_ANNOTATIONS).map((a) => ({
      path: a.path,
      line: a.start_line,
      level: a.annotation_level ?? 'failure',
      title: (a.title ?? '').slice(0, 300),
      message: (a.message ?? '').slice(0, MAX_CHECK_TEXT),
    }));
  }

  /**
   * The end of an Actions job's log: GitHub answers with a redirect to a short-lived signed
   * URL, read here to MAX_LOG_READ_BYTES at most, of which the last LOG_TAIL_BYTES are kept.
   */
  async jobLogTail(jobId: number, signal?: AbortSignal): Promise<{ text: string; truncated: boolean }> {
    const answer = await this.octokit.request('GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs', {
      ...this.ref,
      job_id: jobId,
      request: { redirect: 'manual', signal },
    });
    const location = (answer.headers as Record<string, string | undefined>).location;
    if (!location || !/^https?:\/\//.test(location))
      throw new Error('GitHub answered the job log with no download address');
    // No token goes to the signed URL: it is the credential. One hop, bounded in time.
    const timeout = AbortSignal.timeout(LOG_READ_MS);
    const res = await fetch(location, {
      redirect: 'error',
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
    if (!res.ok || !res.body) throw new Error(`the job log answered HTTP ${res.status}`);
    let kept = Buffer.alloc(0);
    let read = 0;
    let truncated = false;
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      read += chunk.byteLength;
      kept = Buffer.concat([kept, chunk]);
      if (kept.byteLength > LOG_TAIL_BYTES) {
        kept = kept.subarray(kept.byteLength - LOG_TAIL_BYTES);
        truncated = true;
      }
      if (read >= MAX_LOG_READ_BYTES) {
        truncated = true;
        break;
      }
    }
    // A log may print what a workflow should not have: what the app knows as secret is redacted here, once.
    return { text: sanitise(kept.toString('utf8')), truncated };
  }

  /** Re-runs one Actions job (a new attempt of the same check name). */
  async rerunJob(jobId: number): Promise<void> {
    await this.octokit.rest.actions.reRunJobForWorkflowRun({ ...this.ref, job_id: jobId });
  }

  /** Marks a draft pull request ready for review: GitHub has this only as a GraphQL mutation. */
  async markReadyForReview(pullNodeId: string): Promise<void> {
    await this.octokit.graphql(
      'mutation($id: ID!) { markPullRequestReadyForReview(input: { pullRequestId: $id }) { pullRequest { isDraft } } }',
      { id: pullNodeId },
    );
  }

  /** The paths a pull request changes (the first 300, as GitHub lists them). */
  async pullFiles(pullNumber: number): Promise<string[]> {
    const files = await this.octokit.paginate(this.octokit.rest.pulls.listFiles, {
      ...this.ref,
      pull_number: pullNumber,
      per_page: 100,
    });
    return files.map((f) => f.filename);
  }

  async review(pullNumber: number, reviewId: number): Promise<Review> {
    const { data } = await this.octokit.rest.pulls.getReview({
      ...this.ref,
      pull_number: pullNumber,
      review_id: reviewId,
    });
    return { id: data.id, author: data.user?.login ?? 'ghost', state: data.state, body: data.body ?? '' };
  }

  /** The line comments of one review, each the start of a thread. */
  async reviewComments(pullNumber: number, reviewId: number): Promise<ReviewComment[]> {
    const list = await this.octokit.paginate(this.octokit.rest.pulls.listCommentsForReview, {
      ...this.ref,
      pull_number: pullNumber,
      review_id: reviewId,
      per_page: 100,
    });
    return list.map((c) => ({
      id: c.id,
      path: c.path,
      line: (c as { line?: number | null }).line ?? null,
      diffHunk: c.diff_hunk,
      body: c.body,
      author: c.user?.login ?? 'ghost',
      ...(c.in_reply_to_id ? { inReplyTo: c.in_reply_to_id } : {}),
    }));
  }

  /** Replies in a review comment's thread. */
  async replyToReviewComment(pullNumber: number, commentId: number, body: string): Promise<number> {
    const { data } = await this.octokit.rest.pulls.createReplyForReviewComment({
      ...this.ref,
      pull_number: pullNumber,
      comment_id: commentId,
      body: sanitise(body),
    });
    return data.id;
  }

  /** A file's text on `ref`, or undefined when it does not exist. */
  async fileText(path: string, ref: string): Promise<string | undefined> {
    try {
      const { data } = await this.octokit.rest.repos.getContent({ ...this.ref, path, ref });
      if (Array.isArray(data) || data.type !== 'file' || !('content' in data)) return undefined;
      return Buffer.from(data.content, 'base64').toString('utf8');
    } catch (err) {
      if (isStatus(err, 404)) return undefined;
      throw err;
    }
  }

  /**
   * The issue's comments, oldest first: the 100 newest at most. Comments are listed oldest
   * first by the API, so this reads the last page (and the one before when it is short).
   */
  /**
   * The issue's comments, oldest first: every one, up to MAX_COMMENT_PAGES pages. A longer
   * thread is read at both ends (its first page and its newest pages), and `unread` says
   * about how many comments in the middle were not. Reading whole threads is what keeps a
   * flood of one person's comments from hiding a writer's older ones; bodies are cut at
   * COMMENT_BODY_CHARS so a hostile thread costs bounded memory.
   */
  async issueComments(issueNumber: number): Promise<{ comments: IssueComment[]; unread: number }> {
    const perPage = 100;
    const list = (page: number) =>
      this.octokit.rest.issues.listComments({ ...this.ref, issue_number: issueNumber, per_page: perPage, page });
    const first = await list(1);
    const last = lastPage(first.headers.link);
    const from = last <= MAX_COMMENT_PAGES ? 2 : last - MAX_COMMENT_PAGES + 2;
    const limit = new Limiter(COMMENT_PAGES_AT_ONCE);
    const rest = await Promise.all(
      Array.from({ length: Math.max(0, last - from + 1) }, (_, i) => limit.run(() => list(from + i))),
    );
    const comments = [first, ...rest].flatMap((page) =>
      page.data.map((c) => ({
        author: c.user?.login ?? 'ghost',
        authorType: c.user?.type ?? 'User',
        body: (c.body ?? '').slice(0, COMMENT_BODY_CHARS),
        createdAt: c.created_at,
        association: c.author_association,
      })),
    );
    return { comments, unread: (from - 2) * perPage };
  }

  /** The top-level entries of the repository on `ref`; directories end in '/'. */
  async rootEntries(ref: string): Promise<string[]> {
    const { data } = await this.octokit.rest.repos.getContent({ ...this.ref, path: '', ref });
    if (!Array.isArray(data)) return [];
    return data.map((e) => (e.type === 'dir' ? `${e.name}/` : e.name));
  }

  /**
   * A fresh installation token for one git operation. It is registered with the sanitiser
   * and must only ever travel in a single command's environment.
   */
  async gitToken(): Promise<string> {
    let auth = (await this.octokit.auth({ type: 'installation' })) as { token: string; expiresAt?: string };
    // Probot caches a token for 59 minutes; a push or fetch must not start on one about to expire.
    if (!auth.expiresAt || Date.parse(auth.expiresAt) - Date.now() < GIT_TOKEN_MIN_LIFETIME_MS) {
      auth = (await this.octokit.auth({ type: 'installation', refresh: true })) as {
        token: string;
        expiresAt?: string;
      };
    }
    registerSecret(auth.token);
    return auth.token;
  }
}
