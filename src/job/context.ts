import type { Logger } from 'pino';
import { type Budgets, type CostCaps, Spend } from '../agent/budget.js';
import { tallyToolCalls } from '../agent/tools/stats.js';
import { Trace } from '../agent/trace.js';
import type { ModelClient } from '../agent/model.js';
import type { Stuck } from '../agent/stuck.js';
import type { AppConfig } from '../config/env.js';
import type { PathPolicy } from '../agent/tools/path-policy.js';
import type { RepoConfig } from '../config/repo-config.js';
import type { RepoInfo } from '../github/facade.js';
import type { RepoHost } from '../github/repo-host.js';
import type { DailySpend } from '../queue/daily-spend.js';
import { type JobData, jobId } from '../queue/jobs.js';
import type { PlanStore } from '../queue/plan-store.js';
import type { CiRecord, CiState, Feedback } from '../queue/queue.js';
import type { CiHost } from '../github/facade.js';
import type { SavedStages, StageStore } from '../queue/stage-store.js';
import type { StatusState } from '../report/status.js';
import type { EgressReport } from '../sandbox/egress/proxy.js';
import type { InstallNetworkPolicy } from '../sandbox/egress/policy.js';
import type { EnvironmentSpec } from '../config/environment.js';
import { Leases } from '../sandbox/environment/cache.js';
import type { Environments } from '../sandbox/environment/environments.js';
import type { PulledImage } from '../sandbox/environment/image-store.js';
import type { Runner } from '../sandbox/runner.js';
import type { WorkTree } from '../sandbox/worktree.js';
import type { ReviewThread } from '../stages/revise.js';
import { Interrupted, Stopped } from './endings.js';
import { type EndLabel, type StatusRef, Thread } from './thread.js';

/** What a job needs from the process that runs it: the worker, or the CLI for a local checkout. */
export interface JobDeps {
  config: Pick<AppConfig, 'dataDir' | 'models' | 'anthropicApiKey'> & { anthropicBaseUrl?: string };
  runner: Runner;
  /** Pulls images and keeps set-up environments; without it a repository that declares an environment is refused. */
  environments?: Environments;
  /** What the operator allows the install step (default: no registries, no host network). */
  installNetwork?: InstallNetworkPolicy;
  /** GitHubRepo in the app; the CLI's LocalRepo for a local checkout. */
  gh: RepoHost;
  bot: { name: string; email: string };
  /** Where the job's one status comment is: made by the web, or here when it did not. */
  statusRef: StatusRef;
  dailySpend?: DailySpend;
  /** The operator's caps on what a repository's budgets may ask for (default: none). */
  costCaps?: CostCaps;
  planStore?: PlanStore;
  log: Logger;
  onToolCall?: (tool: string, ok: boolean, errorCode?: string) => void;
  /** Aborted when a writer runs `/agent stop`; its reason is who asked. */
  signal?: AbortSignal;
  /** Aborted when this worker shuts down: the job stops at its next step and is resumed elsewhere. */
  drain?: AbortSignal;
  /** CI-fix jobs: the checks, logs and re-runs of the repository (GitHubRepo in the app; the CLI has none). */
  ci?: CiHost;
  /** CI-fix jobs: the pull request's CI record (fixes pushed, fingerprints, re-runs), kept in Redis. */
  ciRecord?: {
    state(): Promise<CiState>;
    record(r: CiRecord): Promise<CiState>;
  };
  /** The app's bot login: a CI fix only touches pull requests it opened. */
  appLogin?: string;
  /** Revise jobs: the review feedback this job addresses, taken from the queue once. */
  feedback?: () => Promise<Feedback[]>;
  /** Least time between two edits of the status comment (terminal states are written at once). */
  statusIntervalMs?: number;
  /** Each change of the job's status, as it happens and unthrottled (the CLI prints progress from it). */
  onStatus?: (status: Readonly<StatusState>) => void;
  /** Each finished stage's output, so a retried job resumes instead of paying again. */
  stages?: StageStore;
  /** Called once the job has nothing left but its final status comment. */
  onEnding?: () => Promise<void>;
  /**
   * Whether the task is the GitHub issue of its number, so the commit and the PR say
   * `Closes #n`. Default true; the CLI's local tasks are numbered locally and must not
   * close an unrelated issue when the branch is pushed.
   */
  closesIssue?: boolean;
  /**
   * Keep an escalated job's work on its `agent/wip/…` branch whatever the repository's
   * `push_wip_branch` says: the CLI's branches are local and run no CI.
   */
  alwaysKeepWip?: boolean;
}

/** What a job reads before its first stage: the repository, its config and rules, the budgets, the model. */
export interface JobSetup {
  repo: RepoInfo;
  repoConfig: RepoConfig;
  installPolicy: InstallNetworkPolicy;
  budgets: Budgets;
  /** Checked before every model call: a stop, the job's budgets, the repository's daily spend. */
  guard: () => Stuck | undefined;
  repoRules: string;
  model: ModelClient;
  maxRounds: number;
  pathPolicy: PathPolicy;
  /** The repository's declared environment and its image, pulled before any model call; none: the worker's system. */
  environment?: { spec: EnvironmentSpec; image: PulledImage };
}

const DEFAULT_STATUS_INTERVAL_MS = 10_000;

/**
 * One job's state, explicit: what the stages share and the escalation report draws on.
 * Made by the lifecycle; each job kind and stage reads and adds to it.
 */
export class JobContext {
  readonly key: string;
  readonly trace: Trace;
  readonly started = Date.now();
  readonly spend: Spend;
  readonly thread: Thread;
  /** Either a person's stop or the worker's shutdown: it kills a running command or model call. */
  readonly abort: AbortSignal;
  readonly status: StatusState;
  /** Every tool call, for the PR body and the trace's closing figures. */
  readonly toolCalls: Array<{ tool: string; ok: boolean }> = [];
  /** What was asked (the acceptance criteria, or the review's points). */
  asked: string[] = [];
  /** What was tried, a line each: the plan's steps and each round's result. */
  readonly tried: string[] = [];
  /** The files the change touches. */
  readonly touched = new Set<string>();
  /** What finished stages produced: a retried job resumes from them. */
  saved: SavedStages = {};
  /** The job's work tree, once it has one. */
  wt: WorkTree | undefined;
  /** A revision's review threads: each gets a reply, however the job ends. */
  reviewThreads: ReviewThread[] = [];
  /** The install step's firewall report, for the PR body and the escalation. */
  firewall: EgressReport | undefined;
  /** The repository's config, budgets and model, once read (see setup.ts). */
  setup: JobSetup | undefined;
  /** The repository's spend today, every worker's, as far as this job knows. */
  spentToday = 0;
  /** The cached image and environment the job runs on, held so that no eviction removes them meanwhile. */
  readonly leases = new Leases();
  private readonly repoKey: string;
  private dailyWrites: Promise<void> = Promise.resolve();
  private summarised = false;

  constructor(
    readonly job: JobData,
    readonly deps: JobDeps,
    firstPhase: StatusState['phase'],
  ) {
    this.key = jobId(job);
    this.trace = new Trace(deps.config.dataDir, this.key);
    this.repoKey = `${deps.gh.ref.owner}/${deps.gh.ref.repo}`.toLowerCase();
    this.spend = new Spend((usd) => this.countSpend(usd));
    this.thread = new Thread(deps.gh, job.issueNumber, deps.log);
    this.abort = AbortSignal.any([deps.signal, deps.drain].filter((x): x is AbortSignal => x !== undefined));
    this.status = {
      phase: firstPhase,
      kind: job.kind,
      ...(job.headSha ? { ci: { sha: job.headSha, failing: [], action: 'reading' as const } } : {}),
    };
  }

  get gh(): RepoHost {
    return this.deps.gh;
  }

  get log(): Logger {
    return this.deps.log;
  }

  /** The setup, for the stages that run after it (all but the lifecycle's first steps). */
  get prepared(): JobSetup {
    if (!this.setup) throw new Error('the job has not read its repository yet');
    return this.setup;
  }

  readonly onToolCall = (tool: string, ok: boolean, errorCode?: string): void => {
    this.toolCalls.push({ tool, ok });
    this.deps.onToolCall?.(tool, ok, errorCode);
  };

  /** Opens the status comment and reads what an earlier attempt of this job saved. */
  async open(): Promise<void> {
    await this.thread.openStatus({
      statusRef: this.deps.statusRef,
      minIntervalMs: this.deps.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS,
      onStatus: this.deps.onStatus,
      onEnding: this.deps.onEnding,
    });
    await this.postStatus({});
    this.saved =
      (await this.deps.stages?.load(this.key).catch((err: unknown) => {
        this.log.warn({ err }, 'could not read the stage checkpoints; starting over');
        return undefined;
      })) ?? {};
    const resumedStages = Object.keys(this.saved);
    if (resumedStages.length > 0) {
      this.log.info({ stages: resumedStages }, 'resuming after a retry');
      this.trace.write({ type: 'note', message: 'resumed from stage checkpoints', detail: resumedStages });
    }
  }

  /** Live progress on the thread; the spend so far goes with it. */
  async postStatus(patch: Partial<StatusState>): Promise<void> {
    Object.assign(this.status, patch, { spend: this.spend.calls > 0 ? this.spend.describe() : undefined });
    this.thread.show(this.status);
  }

  /** Ends the job on its thread: labels, then `body` as the status comment's last word. */
  async end(label: EndLabel, body: string): Promise<void> {
    // Before the last word, so a reader of "done" finds the trace's closing figures.
    await this.thread.end(label, body, () => this.summariseTrace());
  }

  /** How the job ends when a shutdown or a stop has been asked for, else undefined. */
  stopRequested(): Interrupted | Stopped | undefined {
    if (this.deps.drain?.aborted) return new Interrupted();
    if (this.deps.signal?.aborted) return new Stopped(String(this.deps.signal.reason ?? 'a maintainer'));
    return undefined;
  }

  checkStop(): void {
    const stop = this.stopRequested();
    if (stop) throw stop;
  }

  /** Runs a stage between two stop checks, traced with its result and time. */
  async stage<T>(name: string, run: () => Promise<T>): Promise<T> {
    this.checkStop();
    const began = Date.now();
    this.trace.write({ type: 'stage', stage: name, phase: 'start' });
    // A stage that throws ends too, so its time is measured with the rest.
    const out = await run().catch((err: unknown) => {
      this.trace.write({ type: 'stage', stage: name, phase: 'end', result: 'error', durationMs: Date.now() - began });
      throw err;
    });
    const result = stageResult(out);
    this.trace.write({ type: 'stage', stage: name, phase: 'end', result, durationMs: Date.now() - began });
    this.checkStop();
    return out;
  }

  /** Saves a stage's output; a failure to save costs a retry that stage, not the job. */
  async saveStage<K extends keyof SavedStages>(name: K, value: NonNullable<SavedStages[K]>): Promise<void> {
    this.saved[name] = value;
    const saved = await this.deps.stages?.save(this.key, name, value).catch((err: unknown) => {
      this.log.warn({ err, stage: name }, 'could not save the stage checkpoint');
      return true;
    });
    if (saved === false)
      this.log.warn(
        { stage: name },
        'the stage checkpoint is too big to keep; a retry after a crash does this stage again',
      );
  }

  /** The repository's spend today before this job, read once its budgets are known. */
  async readSpentToday(): Promise<void> {
    this.spentToday = (await this.deps.dailySpend?.spentToday(this.repoKey)) ?? 0;
  }

  /** The spend figures the trace and the escalation report show. */
  spendFigures() {
    return {
      modelCalls: this.spend.calls,
      inputTokens: this.spend.totalInput,
      outputTokens: this.spend.outputTokens,
      costUsd: this.spend.costUsd,
      seconds: (Date.now() - this.started) / 1000,
    };
  }

  /** The trace's closing figures: written before the last status, so a reader of "done" finds them. */
  summariseTrace(): void {
    if (this.summarised) return;
    this.summarised = true;
    this.trace.write({ type: 'note', message: 'tool calls', detail: tallyToolCalls(this.toolCalls) });
    this.trace.write({ type: 'note', message: 'spend', detail: this.spendFigures() });
  }

  /** The job is over: no more status edits, the spend recorded, the work tree gone. */
  async close(): Promise<void> {
    this.thread.close();
    this.summariseTrace();
    // Each call was added as it was paid; the last adds finish before the job does.
    await this.dailyWrites;
    await this.wt?.remove().catch((err: unknown) => this.log.warn({ err }, 'could not remove the work tree'));
    await this.leases.releaseAll();
  }

  /**
   * Each call's cost, added to the repository's daily total as it is paid (so a job that
   * crashes has counted what it spent) and read back from the atomic add, so the check
   * before each call sees the other jobs' spend up to this job's last call.
   */
  private countSpend(usd: number): void {
    this.spentToday += usd;
    const daily = this.deps.dailySpend;
    if (!daily) return;
    this.dailyWrites = this.dailyWrites.then(async () => {
      const total = await daily.add(this.repoKey, usd).catch((err: unknown) => {
        this.log.warn({ err }, 'could not record the daily spend');
        return this.spentToday;
      });
      // Never lower than what this job knows it added since (a reply may come after the next call's cost).
      this.spentToday = Math.max(total, this.spentToday);
    });
  }
}

/** A stage's result as the trace (and its metrics) name it: a StageResult's kind, or a check run's passed/failed. */
function stageResult(out: unknown): string | undefined {
  if (typeof out !== 'object' || out === null) return undefined;
  const { kind, ok } = out as { kind?: unknown; ok?: unknown };
  if (typeof kind === 'string') return kind;
  if (typeof ok === 'boolean') return ok ? 'passed' : 'failed';
  return undefined;
}
