// CI state of commits, as the checks, Actions and commit status APIs serve it: tests script
// the check runs (and the Actions jobs and logs behind them) of a head commit, and the app
// reads them through the same routes, in the same shapes, as on GitHub.
import { randomBytes } from 'node:crypto';
import { nodeId } from './users.js';

export type CheckStatus = 'queued' | 'in_progress' | 'completed';
export type CheckConclusion =
  | 'success'
  | 'failure'
  | 'neutral'
  | 'cancelled'
  | 'skipped'
  | 'timed_out'
  | 'action_required';

export interface ScriptedAnnotation {
  path: string;
  start_line: number;
  end_line: number;
  annotation_level: 'notice' | 'warning' | 'failure';
  message: string;
  title?: string;
}

/** How a check run stands: its status, conclusion (once completed), output and, for a job, log. */
export interface ScriptedOutcome {
  status: CheckStatus;
  /** Required when `status` is completed; ignored otherwise. */
  conclusion?: CheckConclusion;
  output?: { title: string; summary: string; text?: string };
  annotations?: ScriptedAnnotation[];
  /** The job's plain-text log (Actions checks only). */
  log?: string;
}

/** A check run on a commit, as a test scripts it. */
export interface ScriptedCheck extends ScriptedOutcome {
  name: string;
  /**
   * The Actions workflow whose job this check run is (checks naming the same workflow share
   * one workflow run and check suite); without it, the check belongs to a third-party CI app.
   */
  workflow?: string;
  /** What a re-run of this job concludes at once; without it, the re-run stays queued. */
  rerun?: ScriptedOutcome;
}

/** The ids GitHub gave a scripted check; an Actions job's id is its check run's id, as on GitHub. */
export interface ScriptedCheckIds {
  name: string;
  checkRunId: number;
  checkSuiteId: number;
  workflowRunId?: number;
}

/** A `POST /actions/jobs/{job_id}/rerun` the app made. */
export interface RerunRequest {
  jobId: number;
  name: string;
  headSha: string;
  workflowRunId: number;
  enableDebugLogging: boolean;
  /** The check run (and job) id of the new attempt. */
  newJobId: number;
}

/** A commit status (`POST /statuses/{sha}` from some other integration), as a test scripts it. */
export interface ScriptedStatus {
  context: string;
  state: 'error' | 'failure' | 'pending' | 'success';
  description?: string;
  targetUrl?: string;
}

/** The repository fields this module needs; the stand-in's own repository record fits. */
export interface CiRepo {
  key: string;
  owner: string;
  name: string;
}

export interface HeadCommit {
  id: string;
  tree_id: string;
  message: string;
  timestamp: string;
  author: { name: string; email: string };
  committer: { name: string; email: string };
}

/** What the checks routes need from the rest of the stand-in. */
export interface CiDeps<R extends CiRepo, C> {
  baseUrl(): string;
  getRepo(owner: string, repo: string): R;
  mustRepo(owner: string, repo: string): R;
  repoObject(r: R): Record<string, unknown>;
  user(login: string): Record<string, unknown>;
  newId(): number;
  httpError(status: number, message: string): Error;
  paginate<T>(ctx: C, items: T[]): { items: T[]; headers: Record<string, string> };
  /** The commit `ref` (a sha or branch) names, or null. */
  resolveRef(r: R, ref: string): Promise<string | null>;
  headCommit(r: R, sha: string): Promise<HeadCommit | null>;
  /** The branch whose tip is `sha`, or null. */
  branchAt(r: R, sha: string): Promise<string | null>;
  /** The open pull requests whose head is `sha`, as GitHub's minimal `pull_requests` entries. */
  pullsAt(r: R, sha: string): Promise<Array<Record<string, unknown>>>;
}

interface CheckCtx {
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
}

type Reply = { status: number; body?: unknown; headers?: Record<string, string> };

interface CheckRunRec {
  id: number;
  repoKey: string;
  name: string;
  headSha: string;
  suite: SuiteRec;
  outcome: ScriptedOutcome;
  rerun?: ScriptedOutcome;
  attempt: number;
  /** A newer attempt of this job exists: `filter=latest` leaves this one out. */
  superseded: boolean;
  startedAt: string;
  completedAt: string | null;
  /** The random part of the log's "signed" URL, as GitHub hands out a short-lived one. */
  logSignature: string;
}

interface SuiteRec {
  id: number;
  repoKey: string;
  headSha: string;
  headBranch: string | null;
  headCommit: HeadCommit;
  createdAt: string;
  checks: CheckRunRec[];
  workflow?: WorkflowRunRec;
}

interface WorkflowRunRec {
  id: number;
  workflowId: number;
  name: string;
  runNumber: number;
  attempt: number;
}

interface ShaState {
  suites: SuiteRec[];
  statuses: Array<ScriptedStatus & { id: number; createdAt: string }>;
}

const ACTIONS_APP_ID = 15368;
const CI_APP_ID = 4343;
// When several checks disagree, the first conclusion in this list is the suite's.
const CONCLUSION_PRECEDENCE: CheckConclusion[] = [
  'action_required',
  'cancelled',
  'timed_out',
  'failure',
  'neutral',
  'success',
  'skipped',
];
/** Where the stand-in serves job logs; GitHub's 302 points at a signed blob URL like it. */
export const LOG_PATH = /^\/_stand-in\/actions-logs\/(\d+)$/;

function stamp(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function slug(name: string): string {
  return (
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '') || 'ci'
  );
}

/** The status and conclusion of a group of check runs (a suite or workflow run), as GitHub rolls them up. */
function rollUp(checks: CheckRunRec[]): { status: CheckStatus; conclusion: CheckConclusion | null } {
  const live = checks.filter((c) => !c.superseded);
  if (live.every((c) => c.outcome.status === 'completed')) {
    const conclusions = live.map((c) => c.outcome.conclusion);
    return { status: 'completed', conclusion: CONCLUSION_PRECEDENCE.find((x) => conclusions.includes(x)) ?? 'success' };
  }
  return { status: live.some((c) => c.outcome.status !== 'queued') ? 'in_progress' : 'queued', conclusion: null };
}

/** The CI state of commits, and the REST handlers that serve it. */
export class Checks<R extends CiRepo, C extends CheckCtx> {
  /** REST handlers, keyed by OpenAPI operationId like the stand-in's own. */
  readonly handlers: Record<string, (ctx: C) => Promise<Reply> | Reply>;
  private readonly bySha = new Map<string, ShaState>();
  private readonly checksById = new Map<number, CheckRunRec>();
  private readonly rerunLog = new Map<string, RerunRequest[]>();
  private runNumber = 0;

  constructor(private readonly deps: CiDeps<R, C>) {
    this.handlers = { ...this.readHandlers(), ...this.actionsHandlers() };
  }

  private shaState(r: CiRepo, sha: string): ShaState {
    const key = `${r.key}@${sha}`;
    let s = this.bySha.get(key);
    if (!s) {
      s = { suites: [], statuses: [] };
      this.bySha.set(key, s);
    }
    return s;
  }

  private api(r: CiRepo): string {
    return `${this.deps.baseUrl()}/api/v3/repos/${r.owner}/${r.name}`;
  }

  private web(r: CiRepo): string {
    return `${this.deps.baseUrl()}/${r.owner}/${r.name}`;
  }

  private appObject(actions: boolean): Record<string, unknown> {
    const id = actions ? ACTIONS_APP_ID : CI_APP_ID;
    const appSlug = actions ? 'github-actions' : 'stand-in-ci';
    const created = '2018-07-30T09:30:17Z';
    return {
      id,
      slug: appSlug,
      node_id: nodeId('Integration', id),
      client_id: `Iv1.${id.toString(16).padStart(16, '0')}`,
      owner: this.deps.user(actions ? 'github' : 'stand-in-ci-owner'),
      name: actions ? 'GitHub Actions' : 'Stand-in CI',
      description: actions ? 'Automate your workflow from idea to production' : 'A third-party CI app',
      external_url: actions ? 'https://help.github.com/en/actions' : this.deps.baseUrl(),
      html_url: `${this.deps.baseUrl()}/apps/${appSlug}`,
      created_at: created,
      updated_at: created,
      permissions: { checks: 'write', contents: 'read', metadata: 'read', statuses: 'write' },
      events: ['check_run', 'check_suite', 'pull_request', 'push'],
    };
  }

  private async checkRunObject(r: R, c: CheckRunRec): Promise<Record<string, unknown>> {
    const url = `${this.api(r)}/check-runs/${c.id}`;
    const run = c.suite.workflow;
    const html = run ? `${this.web(r)}/actions/runs/${run.id}/job/${c.id}` : `${this.web(r)}/runs/${c.id}`;
    const o = c.outcome;
    return {
      id: c.id,
      name: c.name,
      node_id: nodeId('CheckRun', c.id),
      head_sha: c.headSha,
      external_id: run ? `${run.id}-${c.id}` : String(c.id),
      url,
      html_url: html,
      details_url: html,
      status: o.status,
      conclusion: o.status === 'completed' ? (o.conclusion ?? null) : null,
      started_at: c.startedAt,
      completed_at: c.completedAt,
      output: {
        title: o.output?.title ?? null,
        summary: o.output?.summary ?? null,
        text: o.output?.text ?? null,
        annotations_count: o.annotations?.length ?? 0,
        annotations_url: `${url}/annotations`,
      },
      check_suite: { id: c.suite.id },
      app: this.appObject(run !== undefined),
      pull_requests: await this.deps.pullsAt(r, c.headSha),
    };
  }

  private async suiteObject(r: R, s: SuiteRec): Promise<Record<string, unknown>> {
    const { status, conclusion } = rollUp(s.checks);
    return {
      id: s.id,
      node_id: nodeId('CheckSuite', s.id),
      head_branch: s.headBranch,
      head_sha: s.headSha,
      status,
      conclusion,
      url: `${this.api(r)}/check-suites/${s.id}`,
      before: null,
      after: s.headSha,
      pull_requests: await this.deps.pullsAt(r, s.headSha),
      app: this.appObject(s.workflow !== undefined),
      repository: this.deps.repoObject(r),
      created_at: s.createdAt,
      updated_at: lastChange(s),
      head_commit: s.headCommit,
      latest_check_runs_count: s.checks.filter((c) => !c.superseded).length,
      check_runs_url: `${this.api(r)}/check-suites/${s.id}/check-runs`,
      rerequestable: true,
      runs_rerequestable: true,
    };
  }

  private async workflowRunObject(r: R, s: SuiteRec, w: WorkflowRunRec): Promise<Record<string, unknown>> {
    const url = `${this.api(r)}/actions/runs/${w.id}`;
    const { status, conclusion } = rollUp(s.checks);
    const repo = this.deps.repoObject(r);
    const actor = this.deps.user(r.owner);
    return {
      id: w.id,
      name: w.name,
      node_id: nodeId('WorkflowRun', w.id),
      check_suite_id: s.id,
      check_suite_node_id: nodeId('CheckSuite', s.id),
      head_branch: s.headBranch,
      head_sha: s.headSha,
      path: `.github/workflows/${slug(w.name)}.yml`,
      display_title: s.headCommit.message.split('\n')[0],
      run_number: w.runNumber,
      run_attempt: w.attempt,
      referenced_workflows: [],
      event: 'pull_request',
      status,
      conclusion,
      workflow_id: w.workflowId,
      url,
      html_url: `${this.web(r)}/actions/runs/${w.id}`,
      pull_requests: await this.deps.pullsAt(r, s.headSha),
      created_at: s.createdAt,
      updated_at: lastChange(s),
      actor,
      triggering_actor: actor,
      run_started_at: s.createdAt,
      jobs_url: `${url}/jobs`,
      logs_url: `${url}/logs`,
      check_suite_url: `${this.api(r)}/check-suites/${s.id}`,
      artifacts_url: `${url}/artifacts`,
      cancel_url: `${url}/cancel`,
      rerun_url: `${url}/rerun`,
      previous_attempt_url: w.attempt > 1 ? `${url}/attempts/${w.attempt - 1}` : null,
      workflow_url: `${this.api(r)}/actions/workflows/${w.workflowId}`,
      head_commit: s.headCommit,
      repository: repo,
      head_repository: repo,
      head_repository_id: repo.id,
    };
  }

  private jobObject(r: R, c: CheckRunRec, w: WorkflowRunRec): Record<string, unknown> {
    const o = c.outcome;
    return {
      id: c.id,
      run_id: w.id,
      run_url: `${this.api(r)}/actions/runs/${w.id}`,
      run_attempt: c.attempt,
      node_id: nodeId('CheckRun', c.id),
      head_sha: c.headSha,
      url: `${this.api(r)}/actions/jobs/${c.id}`,
      html_url: `${this.web(r)}/actions/runs/${w.id}/job/${c.id}`,
      status: o.status,
      conclusion: o.status === 'completed' ? (o.conclusion ?? null) : null,
      created_at: c.startedAt,
      started_at: c.startedAt,
      completed_at: c.completedAt,
      name: c.name,
      steps: [],
      check_run_url: `${this.api(r)}/check-runs/${c.id}`,
      labels: ['ubuntu-latest'],
      runner_id: o.status === 'queued' ? null : 1,
      runner_name: o.status === 'queued' ? null : 'GitHub Actions 1',
      runner_group_id: o.status === 'queued' ? null : 1,
      runner_group_name: o.status === 'queued' ? null : 'GitHub Actions',
      workflow_name: w.name,
      head_branch: c.suite.headBranch,
    };
  }

  private annotationObject(r: R, c: CheckRunRec, a: ScriptedAnnotation): Record<string, unknown> {
    return {
      path: a.path,
      blob_href: `${this.web(r)}/blob/${c.headSha}/${a.path}`,
      start_line: a.start_line,
      end_line: a.end_line,
      start_column: null,
      end_column: null,
      annotation_level: a.annotation_level,
      title: a.title ?? null,
      message: a.message,
      raw_details: null,
    };
  }

  private newCheck(r: CiRepo, s: SuiteRec, name: string, outcome: ScriptedOutcome, attempt: number): CheckRunRec {
    if (outcome.status === 'completed' && !outcome.conclusion)
      throw new Error(`check "${name}" is completed but has no conclusion; GitHub requires one`);
    const t = stamp();
    const c: CheckRunRec = {
      id: this.deps.newId(),
      repoKey: r.key,
      name,
      headSha: s.headSha,
      suite: s,
      outcome,
      attempt,
      superseded: false,
      startedAt: t,
      completedAt: outcome.status === 'completed' ? t : null,
      logSignature: randomBytes(12).toString('hex'),
    };
    s.checks.push(c);
    this.checksById.set(c.id, c);
    return c;
  }

  /** The check run `id` in repository `r`, or 404. */
  private getCheck(r: CiRepo, id: string | undefined): CheckRunRec {
    const c = this.checksById.get(Number(id));
    if (!c || c.repoKey !== r.key) throw this.deps.httpError(404, 'Not Found');
    return c;
  }

  private getRun(r: CiRepo, id: string | undefined): SuiteRec {
    for (const s of [...this.bySha.entries()].filter(([k]) => k.startsWith(`${r.key}@`)).flatMap(([, v]) => v.suites))
      if (s.workflow?.id === Number(id)) return s;
    throw this.deps.httpError(404, 'Not Found');
  }

  /** The commit `ref` names; GitHub answers 422 for a ref that names none. */
  private async refSha(r: R, ref: string): Promise<string> {
    const sha = await this.deps.resolveRef(r, ref);
    if (!sha) throw this.deps.httpError(422, `No commit found for SHA: ${ref}`);
    return sha;
  }

  private readHandlers(): Record<string, (ctx: C) => Promise<Reply> | Reply> {
    return {
      'checks/list-for-ref': async (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const sha = await this.refSha(r, ctx.params.ref!);
        const name = ctx.query.get('check_name');
        const status = ctx.query.get('status');
        const all = ctx.query.get('filter') === 'all';
        const list = this.shaState(r, sha)
          .suites.flatMap((s) => s.checks)
          .filter(
            (c) => (all || !c.superseded) && (!name || c.name === name) && (!status || c.outcome.status === status),
          )
          .sort((a, b) => b.id - a.id);
        const page = this.deps.paginate(ctx, list);
        const checkRuns = await Promise.all(page.items.map((c) => this.checkRunObject(r, c)));
        return { status: 200, body: { total_count: list.length, check_runs: checkRuns }, headers: page.headers };
      },

      'checks/get': async (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        return { status: 200, body: await this.checkRunObject(r, this.getCheck(r, ctx.params.check_run_id)) };
      },

      'checks/list-annotations': (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const c = this.getCheck(r, ctx.params.check_run_id);
        const page = this.deps.paginate(ctx, c.outcome.annotations ?? []);
        return { status: 200, body: page.items.map((a) => this.annotationObject(r, c, a)), headers: page.headers };
      },

      'checks/list-suites-for-ref': async (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const sha = await this.refSha(r, ctx.params.ref!);
        const list = this.shaState(r, sha).suites;
        const page = this.deps.paginate(ctx, list);
        const suites = await Promise.all(page.items.map((s) => this.suiteObject(r, s)));
        return { status: 200, body: { total_count: list.length, check_suites: suites }, headers: page.headers };
      },

      'repos/get-combined-status-for-ref': async (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const sha = await this.refSha(r, ctx.params.ref!);
        const statuses = this.shaState(r, sha).statuses;
        const states = statuses.map((x) => x.state);
        // GitHub: failure if any context failed or errored, pending if any is pending (or there are none).
        const state =
          states.includes('failure') || states.includes('error')
            ? 'failure'
            : states.length === 0 || states.includes('pending')
              ? 'pending'
              : 'success';
        const page = this.deps.paginate(ctx, statuses);
        const body = {
          state,
          sha,
          total_count: statuses.length,
          statuses: page.items.map((x) => ({
            url: `${this.api(r)}/statuses/${sha}`,
            avatar_url: null,
            id: x.id,
            node_id: nodeId('StatusContext', x.id),
            state: x.state,
            description: x.description ?? null,
            target_url: x.targetUrl ?? null,
            context: x.context,
            created_at: x.createdAt,
            updated_at: x.createdAt,
          })),
          repository: this.deps.repoObject(r),
          commit_url: `${this.api(r)}/commits/${sha}`,
          url: `${this.api(r)}/commits/${sha}/status`,
        };
        return { status: 200, body, headers: page.headers };
      },
    };
  }

  private actionsHandlers(): Record<string, (ctx: C) => Promise<Reply> | Reply> {
    const getJob = (r: CiRepo, id: string | undefined): CheckRunRec & { suite: { workflow: WorkflowRunRec } } => {
      const c = this.getCheck(r, id);
      if (!c.suite.workflow) throw this.deps.httpError(404, 'Not Found');
      return c as CheckRunRec & { suite: { workflow: WorkflowRunRec } };
    };
    return {
      'actions/get-workflow-run': async (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const s = this.getRun(r, ctx.params.run_id);
        return { status: 200, body: await this.workflowRunObject(r, s, s.workflow!) };
      },

      'actions/list-jobs-for-workflow-run': (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const s = this.getRun(r, ctx.params.run_id);
        // GitHub's default filter is `latest`: the newest attempt of each job.
        const all = ctx.query.get('filter') === 'all';
        const list = s.checks.filter((c) => all || !c.superseded);
        const page = this.deps.paginate(ctx, list);
        const jobs = page.items.map((c) => this.jobObject(r, c, s.workflow!));
        return { status: 200, body: { total_count: list.length, jobs }, headers: page.headers };
      },

      'actions/get-job-for-workflow-run': (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const c = getJob(r, ctx.params.job_id);
        return { status: 200, body: this.jobObject(r, c, c.suite.workflow) };
      },

      'actions/download-job-logs-for-workflow-run': (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const c = getJob(r, ctx.params.job_id);
        const location = `${this.deps.baseUrl()}/_stand-in/actions-logs/${c.id}?sig=${c.logSignature}`;
        return { status: 302, headers: { location } };
      },

      'actions/re-run-job-for-workflow-run': (ctx) => {
        const r = this.deps.getRepo(ctx.params.owner!, ctx.params.repo!);
        const c = getJob(r, ctx.params.job_id);
        const w = c.suite.workflow;
        if (rollUp(c.suite.checks).status !== 'completed')
          throw this.deps.httpError(403, `This workflow run is not completed (run ${w.id})`);
        c.superseded = true;
        w.attempt++;
        const next = this.newCheck(r, c.suite, c.name, c.rerun ?? { status: 'queued' }, w.attempt);
        const body = (ctx.body ?? {}) as { enable_debug_logging?: unknown };
        const list = this.rerunLog.get(r.key) ?? [];
        this.rerunLog.set(r.key, list);
        list.push({
          jobId: c.id,
          name: c.name,
          headSha: c.headSha,
          workflowRunId: w.id,
          enableDebugLogging: body.enable_debug_logging === true,
          newJobId: next.id,
        });
        return { status: 201, body: {} };
      },
    };
  }

  /** The log at a URL `download-job-logs-for-workflow-run` redirected to, or null when there is none. */
  logAt(pathname: string, query: URLSearchParams): string | null {
    const m = LOG_PATH.exec(pathname);
    const c = m ? this.checksById.get(Number(m[1])) : undefined;
    if (!c?.suite.workflow || query.get('sig') !== c.logSignature) return null;
    return c.outcome.log ?? '';
  }

  /** Replaces the check runs of `sha` with `checks` (fresh ids); Actions checks are grouped into workflow runs. */
  async setChecks(owner: string, repo: string, sha: string, checks: ScriptedCheck[]): Promise<ScriptedCheckIds[]> {
    const r = this.deps.mustRepo(owner, repo);
    const headCommit = await this.deps.headCommit(r, sha);
    if (!headCommit)
      throw new Error(`stand-in: ${owner}/${repo} has no commit ${sha}; push it before scripting its checks`);
    const headBranch = await this.deps.branchAt(r, sha);
    for (const old of this.shaState(r, sha).suites.flatMap((s) => s.checks)) this.checksById.delete(old.id);
    const suites = new Map<string, SuiteRec>();
    const suiteFor = (workflow: string | undefined): SuiteRec => {
      const key = workflow ?? '';
      let s = suites.get(key);
      if (!s) {
        s = {
          id: this.deps.newId(),
          repoKey: r.key,
          headSha: sha,
          headBranch,
          headCommit,
          createdAt: stamp(),
          checks: [],
        };
        if (workflow !== undefined)
          s.workflow = {
            id: this.deps.newId(),
            workflowId: this.deps.newId(),
            name: workflow,
            runNumber: ++this.runNumber,
            attempt: 1,
          };
        suites.set(key, s);
      }
      return s;
    };
    const ids = checks.map((check) => {
      const s = suiteFor(check.workflow);
      const { name, workflow: _w, rerun, ...outcome } = check;
      const c = this.newCheck(r, s, name, outcome, 1);
      if (rerun) c.rerun = rerun;
      return {
        name,
        checkRunId: c.id,
        checkSuiteId: s.id,
        ...(s.workflow ? { workflowRunId: s.workflow.id } : {}),
      };
    });
    this.shaState(r, sha).suites = [...suites.values()];
    return ids;
  }

  /** Replaces the commit statuses of `sha`. */
  setStatuses(owner: string, repo: string, sha: string, statuses: ScriptedStatus[]): void {
    const r = this.deps.mustRepo(owner, repo);
    this.shaState(r, sha).statuses = statuses.map((x) => ({ ...x, id: this.deps.newId(), createdAt: stamp() }));
  }

  /** The job re-runs requested in the repository, oldest first. */
  reruns(owner: string, repo: string): RerunRequest[] {
    return [...(this.rerunLog.get(this.deps.mustRepo(owner, repo).key) ?? [])];
  }
}

/** When a suite (or its workflow run) last changed: its latest check's start or end. */
function lastChange(s: SuiteRec): string {
  return (
    s.checks
      .map((c) => c.completedAt ?? c.startedAt)
      .sort()
      .at(-1) ?? s.createdAt
  );
}
