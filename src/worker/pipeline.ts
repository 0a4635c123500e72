import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { budgetStop, capBudgets, Spend, type CostCaps } from '../agent/budget.js';
import { priceOf } from '../agent/pricing.js';
import { repositoryRules } from '../agent/context.js';
import { ModelCallAborted, ModelClient, ModelError } from '../agent/model.js';
import type { Stuck } from '../agent/stuck.js';
import { describeTallies, tallyToolCalls } from '../agent/tools/stats.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import type { Finish } from '../agent/tools/finish-change.js';
import { Trace } from '../agent/trace.js';
import type { AppConfig } from '../config/env.js';
import type { Tier } from '../agent/tiers.js';
import {
  budgetsOf,
  checkPathPolicy,
  checkpointOf,
  pathPolicyOf,
  stuckLimitsOf,
  parseRepoConfig,
  REPO_CONFIG_PATH,
  RepoConfigError,
} from '../config/repo-config.js';
import {
  LABEL_NEEDS_INFO,
  LABEL_STUCK,
  LABEL_WORKING,
  WRITE_PERMISSIONS,
  type IssueComment,
  type RepoInfo,
} from '../github/facade.js';
import type { RepoHost } from '../github/repo-host.js';
import { branchName, isOwnBranch, issueKey, issueOfBranch, jobId, type JobData } from '../queue/jobs.js';
import type { Feedback } from '../queue/queue.js';
import type { DailySpend } from '../queue/daily-spend.js';
import type { Outcome } from '../queue/outcome.js';
import type { PlanStore } from '../queue/plan-store.js';
import type { Checkpoints, StageStore } from '../queue/stage-store.js';
import { configErrorComment } from '../report/config-error.js';
import { escalationComment } from '../report/escalation.js';
import type { EgressReport } from '../sandbox/egress/proxy.js';
import { installNetworkFor, type InstallNetworkPolicy } from '../sandbox/egress/policy.js';
import { prBody } from '../report/pr-body.js';
import {
  checkpointComment,
  plain,
  questionsComment,
  STATUS_MARKER,
  statusComment,
  type StatusCheck,
  type StatusState,
} from '../report/status.js';
import type { IssueText } from '../agent/context.js';
import type { ReviewTask, Revision } from '../stages/revise.js';
import { StatusWriter } from './status-writer.js';
import { ensureMirror } from '../sandbox/mirror.js';
import type { Runner } from '../sandbox/runner.js';
import {
  applyPatch,
  changePatch,
  changedPaths,
  commitPaths,
  revertPaths,
  committedStat,
  createWorkTree,
  diff,
  headIfCommitted,
  push,
  PushRejectedError,
  readBaseFile,
  type WorkTree,
} from '../sandbox/worktree.js';
import { codeStage } from '../stages/code.js';
import { planStage } from '../stages/plan.js';
import { scopeStage } from '../stages/scope.js';
import { summariseFailures } from '../stages/failure-summary.js';
import type { StageDeps } from '../stages/types.js';
import {
  detectChecks,
  failureExcerpt,
  failureSignature,
  runCheck,
  validateStage,
  type CheckResult,
  type ValidationReport,
} from '../stages/validate.js';
import { unapprovedEdit } from './task-approval.js';

export { LABEL_NEEDS_INFO, LABEL_STUCK, LABEL_WORKING };
const DEFAULT_MAX_ROUNDS = 3;

export interface PipelineDeps {
  config: Pick<AppConfig, 'dataDir' | 'models' | 'anthropicApiKey'> & { anthropicBaseUrl?: string };
  runner: Runner;
  /** What the operator allows the install step (default: no registries, no host network). */
  installNetwork?: InstallNetworkPolicy;
  /** GitHubRepo in the app; the CLI's LocalRepo for a local checkout. */
  gh: RepoHost;
  bot: { name: string; email: string };
  /** Where the job's one status comment is: made by the web, or here when it did not. */
  statusRef: { get(): Promise<number | undefined>; set(commentId: number): Promise<number> };
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
   * Keep a stopped job's work on its `agent/wip/…` branch whatever the repository's
   * `push_wip_branch` says: the CLI's branches are local and run no CI.
   */
  alwaysKeepWip?: boolean;
}

const DEFAULT_STATUS_INTERVAL_MS = 10_000;
/** Distinct commenters whose permission scope reads at most, per job. */
const MAX_PERMISSION_READS = 30;

/** Thrown at the next step after the worker began shutting down; the job is resumed later. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted: the worker is shutting down');
    this.name = 'Interrupted';
  }
}

/** Thrown at the next step after a writer asked the job to stop. */
class Stopped extends Error {
  constructor(readonly by: string) {
    super(`stopped by ${by}`);
  }
}

/** Thrown inside the pipeline to end in an escalation with a reason. */
class Escalation extends Error {
  constructor(
    readonly stuck: Stuck | { reason: string; evidence: string },
    readonly failure?: CheckResult,
  ) {
    super(stuck.evidence);
  }
}

function toEscalation(err: unknown): Escalation | undefined {
  if (err instanceof Escalation) return err;
  if (err instanceof ModelError)
    return new Escalation({
      reason: err.kind === 'refused' ? 'model-refused' : 'model-unavailable',
      evidence: err.message,
    });
  return undefined;
}

/**
 * One job: scope → plan → code ⇄ validate → deliver for an issue, or code ⇄ validate →
 * push → reply for review feedback on the app's PR; either may end in an escalation.
 * Delivering is the pipeline's job, never the model's: no tool reaches GitHub and no
 * token enters the sandbox.
 */
export async function runPipeline(job: JobData, deps: PipelineDeps): Promise<Outcome> {
  const { gh, log } = deps;
  const key = jobId(job);
  const thread = job.issueNumber;
  const revising = job.kind === 'revise';
  const started = Date.now();
  const trace = new Trace(deps.config.dataDir, key);
  const repoKey = `${gh.ref.owner}/${gh.ref.repo}`.toLowerCase();
  /**
   * The repository's spend today, every worker's: added as each call is paid (so a job that
   * crashes has counted what it spent) and read back from the atomic add, so the check
   * before each call sees the other jobs' spend up to this job's last call.
   */
  let spentToday = 0;
  let dailyWrites: Promise<void> = Promise.resolve();
  const spend = new Spend((usd) => {
    spentToday += usd;
    if (!deps.dailySpend) return;
    dailyWrites = dailyWrites.then(async () => {
      const total = await deps.dailySpend!.add(repoKey, usd).catch((err: unknown) => {
        log.warn({ err }, 'could not record the daily spend');
        return spentToday;
      });
      // Never lower than what this job knows it added since (a reply may come after the next call's cost).
      spentToday = Math.max(total, spentToday);
    });
  });
  const toolCalls: Array<{ tool: string; ok: boolean }> = [];
  const onToolCall = (tool: string, ok: boolean, errorCode?: string) => {
    toolCalls.push({ tool, ok });
    deps.onToolCall?.(tool, ok, errorCode);
  };
  const status: StatusState = { phase: revising ? 'coding' : 'scoping', kind: job.kind };
  const writer = new StatusWriter({
    existingId: await deps.statusRef.get(),
    create: async (body) => {
      const id = await gh.comment(thread, body);
      const kept = await deps.statusRef.set(id);
      if (kept === id) return id;
      // The web's comment landed after this worker gave up waiting for it: keep that one.
      // A failed edit is left to the writer's next edit, which goes to `kept` all the same.
      await gh
        .deleteComment(id)
        .catch((err: unknown) => log.warn({ err, commentId: id }, 'could not delete a second status comment'));
      await gh
        .updateComment(kept, body)
        .catch((err: unknown) => log.warn({ err, commentId: kept }, 'could not edit the status comment'));
      return kept;
    },
    update: (id, body) => gh.updateComment(id, body),
    minIntervalMs: deps.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS,
    onError: (err) => log.warn({ err }, 'could not edit the status comment'),
  });
  /** Live progress: throttled, and a failed edit does not end the job. */
  const postStatus = async (patch: Partial<StatusState>) => {
    Object.assign(status, patch, { spend: spend.calls > 0 ? spend.describe() : undefined });
    deps.onStatus?.(status);
    await writer.update(statusComment(status));
  };
  let summarised = false;
  /** The trace's closing figures: written before the last status, so a reader of "done" finds them. */
  const summariseTrace = () => {
    if (summarised) return;
    summarised = true;
    trace.write({ type: 'note', message: 'tool calls', detail: tallyToolCalls(toolCalls) });
    trace.write({
      type: 'note',
      message: 'spend',
      detail: {
        modelCalls: spend.calls,
        inputTokens: spend.totalInput,
        outputTokens: spend.outputTokens,
        costUsd: spend.costUsd,
        seconds: (Date.now() - started) / 1000,
      },
    });
  };
  /** The job's last word on the thread: written at once, and a failure is the job's. */
  const finalStatus = async (body: string) => {
    summariseTrace();
    // Before people can read the last word: a trigger they send on reading it starts the
    // next attempt even though this job is still finishing in the queue.
    await deps.onEnding?.().catch((err: unknown) => log.warn({ err }, 'could not mark the job as ending'));
    await writer.flush(body);
  };
  // Either a person's stop or the worker's shutdown kills a running command.
  const abort = AbortSignal.any([deps.signal, deps.drain].filter((x): x is AbortSignal => x !== undefined));
  /** How the job ends when a shutdown or a stop has been asked for, else undefined. */
  const stopRequested = (): Interrupted | Stopped | undefined => {
    if (deps.drain?.aborted) return new Interrupted();
    if (deps.signal?.aborted) return new Stopped(String(deps.signal.reason ?? 'a maintainer'));
    return undefined;
  };
  const checkStop = () => {
    const stop = stopRequested();
    if (stop) throw stop;
  };
  const stage = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    checkStop();
    const began = Date.now();
    trace.write({ type: 'stage', stage: name, phase: 'start' });
    // A stage that throws ends too, so its time is measured with the rest.
    const out = await run().catch((err: unknown) => {
      trace.write({ type: 'stage', stage: name, phase: 'end', result: 'error', durationMs: Date.now() - began });
      throw err;
    });
    trace.write({ type: 'stage', stage: name, phase: 'end', result: stageResult(out), durationMs: Date.now() - began });
    checkStop();
    return out;
  };

  // What the escalation report draws on, filled in as the job goes.
  const asked: string[] = [];
  const tried: string[] = [];
  const touched = new Set<string>();
  let wt: WorkTree | undefined;
  let threads: ReviewTask['threads'] = [];
  let enforcePaths: (tree: WorkTree) => Promise<void> = async () => {};
  /** `push_wip_branch` of the repository's config: whether a stopped job's work is pushed. */
  let pushWip = false;
  /** The install step's firewall report, for the PR body and the escalation. */
  let firewall: EgressReport | undefined;

  await postStatus({});
  // A job retried after a crash finds what its finished stages produced.
  const done: Checkpoints =
    (await deps.stages?.load(key).catch((err: unknown) => {
      log.warn({ err }, 'could not read the stage checkpoints; starting over');
      return undefined;
    })) ?? {};
  const resumedStages = Object.keys(done);
  if (resumedStages.length > 0) {
    log.info({ stages: resumedStages }, 'resuming after a retry');
    trace.write({ type: 'note', message: 'resumed from stage checkpoints', detail: resumedStages });
  }
  /** Saves a stage's output; a failure to save costs a retry that stage, not the job. */
  const checkpoint = async <K extends keyof Checkpoints>(name: K, value: NonNullable<Checkpoints[K]>) => {
    done[name] = value;
    const saved = await deps.stages?.save(key, name, value).catch((err: unknown) => {
      log.warn({ err, stage: name }, 'could not save the stage checkpoint');
      return true;
    });
    if (saved === false)
      log.warn({ stage: name }, 'the stage checkpoint is too big to keep; a retry after a crash does this stage again');
  };
  const repo = await gh.repoInfo();
  // A pull request is an issue too: its labels are read the same way.
  const labels = (await gh.issue(thread)).labels;
  await gh.addLabels(thread, [LABEL_WORKING]);
  // A new attempt starts clean. Writes are throttled a second apart, so only what is there.
  for (const stale of [LABEL_STUCK, LABEL_NEEDS_INFO]) if (labels.includes(stale)) await gh.removeLabel(thread, stale);
  try {
    // Rules and config come from the default branch, never from a branch anyone can push.
    const readDefault = (p: string) => gh.fileText(p, repo.defaultBranch);
    // Permissions change between the trigger and the start (a queue may be long): the
    // sender must still be able to write, or nothing runs.
    const permission = await gh.permission(job.sender);
    if (!WRITE_PERMISSIONS.has(permission)) {
      throw new Escalation({
        reason: 'not-authorised',
        evidence: `@${job.sender}, who asked for this job, has ${permission} access now, not write; nothing was run`,
      });
    }
    const installPolicy: InstallNetworkPolicy = deps.installNetwork ?? { allowHostNetwork: false, registries: [] };
    const repoConfig = parseRepoConfig(await readDefault(REPO_CONFIG_PATH), {
      allowHostNetwork: installPolicy.allowHostNetwork,
    });
    pushWip = deps.alwaysKeepWip === true || repoConfig.push_wip_branch === true;
    const { budgets, capped } = capBudgets(budgetsOf(repoConfig), deps.costCaps);
    if (capped.length > 0)
      trace.write({ type: 'note', message: "budgets lowered to the operator's caps", detail: capped });
    spentToday = (await deps.dailySpend?.spentToday(repoKey)) ?? 0;
    // Fails closed: a total that is not a number (a damaged or forged Redis value) stops the job.
    const dailyStop = (): Stuck | undefined =>
      !(spentToday < budgets.dailyCostUsd) || !(spentToday >= 0)
        ? {
            reason: 'budget-cost',
            evidence: `this repository has spent $${spentToday.toFixed(4)} today, its daily budget is $${budgets.dailyCostUsd}`,
          }
        : undefined;
    const overToday = dailyStop();
    if (overToday) throw new Escalation(overToday);
    const guard = () => {
      checkStop();
      return budgetStop(spend, budgets, started) ?? dailyStop();
    };
    const repoRules = await repositoryRules(readDefault, repoConfig.instructions);
    // The repository may pick other models per tier; the key and gateway stay the operator's.
    const models = { ...deps.config.models, ...repoConfig.models };
    // A model without a price would be counted at $0: no budget or daily cap could hold.
    const unpriced = (Object.entries(models) as Array<[string, string]>).filter(([, m]) => !priceOf(m));
    if (unpriced.length > 0) {
      throw new Escalation({
        reason: 'unpriced-model',
        evidence: `no price is known for ${unpriced.map(([tier, m]) => `${m} (${tier}${repoConfig.models?.[tier as Tier] ? `, from ${REPO_CONFIG_PATH}` : ''})`).join(', ')}, so its spend could not be counted or bounded; nothing was run`,
      });
    }
    const model = new ModelClient({
      apiKey: deps.config.anthropicApiKey,
      baseURL: deps.config.anthropicBaseUrl,
      models,
      log,
      spend,
      trace,
      signal: abort,
    });
    const maxRounds = repoConfig.max_rounds ?? DEFAULT_MAX_ROUNDS;
    const policy = pathPolicyOf(repoConfig);
    /**
     * The repository's `paths` rule holds for the whole change, not only for the file tools:
     * a command (a formatter, `sed`, a lint fix) that touched a denied file is undone.
     */
    enforcePaths = async (tree: WorkTree) => {
      if (policy.allow.length === 0 && policy.deny.length === 0) return;
      const denied = (await changedPaths(tree, [...touched])).filter((p) => !checkPathPolicy(policy, p).ok);
      if (denied.length === 0) return;
      await revertPaths(tree, denied);
      for (const p of denied) touched.delete(p);
      tried.push(
        `undid changes to ${denied.join(', ')}: the paths rule of ${REPO_CONFIG_PATH} does not let the agent change them`,
      );
      trace.write({ type: 'note', message: 'undid changes to denied paths', detail: denied });
    };

    /** A work tree on `branch` (made from `base`), with the checks found and installed. */
    const workspace = async (base: string, branch: string) => {
      const mirrorPath = await ensureMirror({
        dataDir: deps.config.dataDir,
        cloneUrl: repo.cloneUrl,
        token: await gh.gitToken(),
        log,
      });
      // A resumed change goes back onto the commit it was made on, even if the branch moved
      // since (or is our own pushed commit): the same change then makes the same commit.
      wt = await createWorkTree({
        dataDir: deps.config.dataDir,
        mirrorPath,
        jobKey: key,
        baseBranch: base,
        branch,
        baseSha: done.change?.baseSha,
      });
      const tree = wt;
      trace.write({ type: 'note', message: 'work tree ready', detail: { branch, base, baseSha: tree.baseSha } });
      const stageDeps: StageDeps = {
        model,
        runner: deps.runner,
        workTree: tree.path,
        sandboxReadOnlyPaths: [mirrorPath],
        trace,
        log,
        onToolCall,
        guard,
        stuckLimits: stuckLimitsOf(repoConfig),
        pathPolicy: pathPolicyOf(repoConfig),
        signal: abort,
      };
      // A revision's tree holds the agent's and contributors' commits.
      const installNet = installNetworkFor(installPolicy, repoConfig, { changesInTree: revising });
      for (const message of installNet.notes) trace.write({ type: 'note', message });
      const validateDeps = {
        runner: deps.runner,
        workTree: tree.path,
        sandboxReadOnlyPaths: [mirrorPath],
        trace,
        stage: 'validate',
        signal: abort,
        egress: installNet.egress,
      };
      const { install, checks } = await detectChecks((p) => readBaseFile(tree, p), repoConfig);
      if (install) install.network = installNet.network;
      if (checks.length === 0) {
        throw new Escalation({
          reason: 'no-checks',
          evidence: `no test, lint or typecheck command was found; name them under commands in ${REPO_CONFIG_PATH}`,
        });
      }
      const installed = install
        ? await stage('install', () => runCheck({ ...validateDeps, stage: 'install' }, install))
        : undefined;
      firewall = installed?.egress;
      if (installed && !installed.ok)
        throw new Escalation(
          { reason: 'install-failed', evidence: 'the install command failed before any change' },
          installed,
        );
      return { tree, stageDeps, validateDeps, checks, installed };
    };

    /**
     * Code ⇄ validate until the checks pass, bounded by rounds. The system, not the model,
     * decides that a round changed nothing or failed the same way as the last.
     */
    const rounds = async (
      ws: Awaited<ReturnType<typeof workspace>>,
      work: {
        issue: IssueText;
        plan?: Plan;
        review?: ReviewTask;
        editable: Set<string>;
        scopeRequests: Array<{ path: string; reason: string }>;
        baseline?: ValidationReport;
      },
    ) => {
      let failure: string | undefined;
      let report: ValidationReport | undefined;
      let finished: (Finish & Partial<Revision>) | undefined;
      let lastDiff: string | undefined;
      let lastSignature: string | undefined;
      // A change coded (and maybe validated) before a crash is applied, not coded again.
      const saved = done.change?.baseSha === ws.tree.baseSha ? done.change : undefined;
      if (saved) {
        await applyPatch(ws.tree, saved.patch);
        for (const f of saved.touched) touched.add(f);
        work.scopeRequests.push(...saved.scopeRequests);
        for (const r of saved.scopeRequests) work.editable.add(r.path);
        tried.push(...saved.tried);
        finished = { summary: saved.summary, ...(saved.threads ? { threads: saved.threads } : {}) };
        if (saved.validated && saved.report?.ok) {
          await postStatus({ checks: checksOf(saved.report, work.baseline) });
          return { report: saved.report, finished, rounds: saved.round };
        }
      }
      let round = 0;
      for (round = saved?.round ?? 1; round <= maxRounds; round++) {
        if (!saved || round > saved.round) {
          await postStatus({ phase: 'coding', round: { n: round, of: maxRounds } });
          const coded = await stage('code', () =>
            codeStage(ws.stageDeps, {
              issue: work.issue,
              plan: work.plan,
              review: work.review,
              repoRules,
              failure,
              touched,
              editable: work.editable,
              scopeRequests: work.scopeRequests,
            }),
          );
          if (coded.kind !== 'done')
            throw new Escalation(
              coded.kind === 'stuck' ? coded : { reason: 'needs-info', evidence: coded.questions.join('; ') },
              report?.failed,
            );
          finished = coded.value;
        }
        await enforcePaths(ws.tree);
        const change = await diff(ws.tree);
        if (change === lastDiff) {
          throw new Escalation(
            {
              reason: 'no-progress',
              evidence: `round ${round} left the change exactly as round ${round - 1} did, after the checks had failed`,
            },
            report?.failed,
          );
        }
        lastDiff = change;
        const coded = {
          round,
          patch: await changePatch(ws.tree, [...touched]),
          baseSha: ws.tree.baseSha,
          summary: finished!.summary,
          ...(finished!.threads ? { threads: finished!.threads } : {}),
          touched: [...touched],
          scopeRequests: work.scopeRequests,
        };
        await checkpoint('change', { ...coded, validated: false, tried: [...tried] });
        await postStatus({ phase: 'validating', round: { n: round, of: maxRounds } });
        report = await stage('validate', () => validateStage(ws.validateDeps, ws.checks));
        await postStatus({ checks: checksOf(report, work.baseline) });
        tried.push(
          `round ${round}: edited ${[...touched].join(', ') || 'nothing'}; ${report.ok ? 'all checks passed' : `\`${report.failed?.command}\` failed`}`,
        );
        if (report.ok) {
          // A check may have rewritten files (a lint fix): the rule holds for what is committed.
          await enforcePaths(ws.tree);
          const slim = { ...report, results: report.results.map((r) => ({ ...r, output: '' })), failed: undefined };
          await checkpoint('change', {
            ...coded,
            patch: await changePatch(ws.tree, [...touched]),
            validated: true,
            report: slim,
            tried: [...tried],
            at: new Date().toISOString(),
          });
          break;
        }
        const signature = failureSignature(report);
        if (signature === lastSignature) {
          throw new Escalation(
            {
              reason: 'same-failure',
              evidence: `rounds ${round - 1} and ${round} failed the same way (${signature.split('\n')[0]})`,
            },
            report.failed,
          );
        }
        lastSignature = signature;
        const failedReport = report;
        // The last round's failure goes to the report, not to another round: no summary needed.
        if (round < maxRounds) failure = await stage('summary', () => summariseFailures(ws.stageDeps, failedReport));
      }
      if (!report?.ok || !finished)
        throw new Escalation(
          {
            reason: 'rounds-exhausted',
            evidence: `the checks still fail after ${maxRounds} rounds of code ⇄ validate`,
          },
          report?.failed,
        );
      return { report, finished, rounds: Math.min(round, maxRounds) };
    };

    const outcome = revising ? await revise() : await solveIssue();
    return outcome;

    async function solveIssue(): Promise<Outcome> {
      const issueInfo = await gh.issue(thread);
      // The task is what a writer approved: the text of the trigger, or edited since only by writers.
      const edited = job.snapshot && (await unapprovedEdit(gh, thread, job.snapshot, issueInfo));
      if (edited) throw new Escalation({ reason: 'edited-after-trigger', evidence: `${edited}; nothing was run` });
      // An issue opened by someone without write access is data from outside: say so to the model.
      const issue: IssueText & { labels: string[] } = {
        ...issueInfo,
        authorIsWriter: issueInfo.author === job.sender || WRITE_PERMISSIONS.has(await gh.permission(issueInfo.author)),
        ...(job.instructions ? { note: { author: job.sender, text: job.instructions } } : {}),
      };
      asked.push(issue.title);
      // A writer's go after a checkpoint: resume from that plan, not from scratch.
      const resumed = await deps.planStore?.load(issueKey(job));
      if (resumed)
        trace.write({
          type: 'note',
          message: 'resumed from a checkpointed plan',
          detail: { baseSha: resumed.baseSha },
        });

      // Scope: is this a bounded, verifiable task? Decided before anything is cloned.
      if (resumed) {
        asked.splice(0, asked.length, ...resumed.acceptanceCriteria);
      } else if (done.scope) {
        asked.splice(0, asked.length, ...done.scope.acceptanceCriteria);
      } else {
        const [{ comments, unread }, layout] = await Promise.all([
          gh.issueComments(thread),
          gh.rootEntries(repo.defaultBranch),
        ]);
        if (unread > 0)
          trace.write({
            type: 'note',
            message: `the thread is long: about ${unread} comments in its middle were not read`,
            detail: { read: comments.length },
          });
        const scoped = await stage('scope', async () =>
          scopeStage(
            { model, trace, log, onToolCall, guard },
            { issue, comments: await scopeComments(issue, comments), layout, rules: repoRules },
          ),
        );
        if (scoped.kind === 'needs-info') return await askForInformation(issue, scoped.questions);
        if (scoped.kind === 'stuck') throw new Escalation(scoped);
        asked.splice(0, asked.length, ...scoped.value.acceptanceCriteria);
        await checkpoint('scope', { acceptanceCriteria: asked });
      }

      await postStatus({ phase: 'planning' });
      const naming = done.naming ?? { branch: branchName(issue.number, issue.title), title: issue.title };
      if (!done.naming) await checkpoint('naming', naming);
      const { branch } = naming;
      const closes = deps.closesIssue === false ? undefined : issue.number;
      const ws = await workspace(repo.defaultBranch, branch);
      // The checks before the change: the PR shows red → green, and a check that already
      // fails on the default branch is visible as such.
      const baseline = await stage('baseline', () =>
        validateStage({ ...ws.validateDeps, stage: 'baseline' }, ws.checks),
      );
      await postStatus({ checks: checksOf(undefined, baseline) });

      let plan: Plan;
      if (resumed) {
        plan = resumed.plan;
        if (resumed.baseSha !== ws.tree.baseSha)
          trace.write({
            type: 'note',
            message: 'the default branch moved since the checkpointed plan',
            detail: { planned: resumed.baseSha, now: ws.tree.baseSha },
          });
      } else if (done.plan) {
        plan = done.plan;
      } else {
        const planned = await stage('plan', () =>
          planStage(ws.stageDeps, {
            issue,
            acceptanceCriteria: asked,
            repoRules,
            checks: ws.checks.map((c) => c.command),
          }),
        );
        if (planned.kind === 'needs-info') return await askForInformation(issue, planned.questions);
        if (planned.kind === 'stuck') throw new Escalation(planned);
        plan = planned.value;
        await checkpoint('plan', plan);
        const rule = checkpointOf(repoConfig);
        const reasons = [
          ...(plan.confidence < rule.minConfidence
            ? [`confidence ${plan.confidence} is below ${rule.minConfidence}`]
            : []),
          ...(plan.files_to_change.length > rule.maxFiles
            ? [`${plan.files_to_change.length} files to change is more than ${rule.maxFiles}`]
            : []),
          ...(plan.estimated_changed_lines > rule.maxLines
            ? [`about ${plan.estimated_changed_lines} changed lines is more than ${rule.maxLines}`]
            : []),
        ];
        if (reasons.length > 0 && deps.planStore) {
          await deps.planStore.save(issueKey(job), { plan, acceptanceCriteria: asked, baseSha: ws.tree.baseSha });
          await gh.addLabels(thread, [LABEL_NEEDS_INFO]);
          await gh.removeLabel(thread, LABEL_WORKING);
          await finalStatus(checkpointComment(plan, reasons, spend.describe()));
          trace.write({ type: 'note', message: 'checkpoint after planning', detail: reasons });
          return { kind: 'checkpoint', reasons };
        }
      }
      tried.push(...plan.steps.map((s) => `plan: ${s}`));
      await postStatus({ planSummary: plan.summary });
      const scopeRequests: Array<{ path: string; reason: string }> = [];
      const {
        report,
        finished,
        rounds: used,
      } = await rounds(ws, {
        issue,
        plan,
        editable: new Set(plan.files_to_change.map((f) => path.normalize(f))),
        scopeRequests,
        baseline,
      });

      await postStatus({ phase: 'delivering' });
      checkStop();
      // Pushed before a crash: the branch has the commit; only the PR is left to open.
      let pushed = done.pushed?.branch === branch ? done.pushed : undefined;
      if (!pushed) {
        const sha = await commitPaths(ws.tree, [...touched], {
          message: [naming.title, finished.summary, ...(closes !== undefined ? [`Closes #${closes}`] : [])].join(
            '\n\n',
          ),
          authorName: deps.bot.name,
          authorEmail: deps.bot.email,
          date: done.change?.at,
        });
        if (!sha) throw new Escalation({ reason: 'no-progress', evidence: 'the checks pass but the change is empty' });
        const stat = await committedStat(ws.tree);
        await pushOrEscalate(
          ws.tree,
          branch,
          `the branch \`${branch}\` already has other commits or is protected`,
          'Delete or merge that branch, then re-add the label',
        );
        pushed = { sha, branch, stat };
        await checkpoint('pushed', pushed);
      }
      const { sha, stat } = pushed;
      const pr = await gh.openOrUpdatePull({
        head: branch,
        base: repo.defaultBranch,
        title: naming.title,
        body: prBody({
          closes,
          summary: finished.summary,
          acceptanceCriteria: asked,
          plan,
          scopeRequests,
          toolCalls: describeTallies(tallyToolCalls(toolCalls)),
          install: ws.installed,
          baseline,
          final: report,
          diffStat: stat,
          spend: spend.describe(),
          rounds: used,
        }),
      });
      // Labels first, the status last: once the status says done, everything else is in place.
      await gh.removeLabel(thread, LABEL_WORKING);
      status.spend = spend.describe();
      await finalStatus(statusComment(Object.assign(status, { phase: 'done', pullUrl: pr.htmlUrl })));
      trace.write({ type: 'note', message: 'delivered', detail: { pr: pr.htmlUrl, sha } });
      if (resumed) await deps.planStore?.clear(issueKey(job));
      return { kind: 'pr', url: pr.htmlUrl, number: pr.number, created: pr.created };
    }

    /** Review feedback on the app's own PR: new commits on its branch, a reply per thread. */
    async function revise(): Promise<Outcome> {
      const pull = await gh.pull(thread);
      asked.push(`review feedback on #${pull.number}`);
      if (pull.state !== 'open' || !pull.sameRepo || !pull.headRef.startsWith('agent/')) {
        throw new Escalation({
          reason: 'not-revisable',
          evidence: `#${pull.number} is ${pull.state}${pull.sameRepo ? '' : ' and comes from a fork'}; only open pull requests on the app's own agent/ branches are revised`,
        });
      }
      const feedback = (await deps.feedback?.()) ?? [];
      const task: ReviewTask = { pullNumber: pull.number, title: pull.title, notes: [], threads: [] };
      for (const f of feedback) {
        if (f.reviewId !== undefined) {
          const [review, comments] = await Promise.all([
            gh.review(pull.number, f.reviewId),
            gh.reviewComments(pull.number, f.reviewId),
          ]);
          if (review.body.trim()) task.notes.push({ author: review.author, body: review.body, source: 'review' });
          for (const c of comments) {
            if (c.inReplyTo === undefined)
              task.threads.push({
                commentId: c.id,
                path: c.path,
                line: c.line,
                diffHunk: c.diffHunk,
                body: c.body,
                author: c.author,
              });
          }
        }
        if (f.text) task.notes.push({ author: f.sender, body: f.text, source: 'retry' });
      }
      if (task.notes.length === 0 && task.threads.length === 0) {
        task.notes.push({
          author: job.sender,
          body: 'Run the checks and fix what fails; keep the change otherwise as it is.',
          source: 'retry',
        });
      }
      threads = task.threads;
      asked.splice(
        0,
        asked.length,
        ...task.notes.map((n) => `${n.author}: ${n.body.split('\n')[0]}`),
        ...task.threads.map((t) => `${t.path}${t.line ? `:${t.line}` : ''}: ${t.body.split('\n')[0]}`),
      );
      await postStatus({
        reviewCount: feedback.filter((f) => f.reviewId !== undefined).length || undefined,
        pullUrl: pull.htmlUrl,
      });
      const linked = issueOfBranch(pull.headRef);
      const linkedIssue = linked ? await gh.issue(linked).catch(() => undefined) : undefined;
      // The issue behind the PR is context; from someone without write access it is marked untrusted.
      const issue: IssueText = linkedIssue
        ? {
            ...linkedIssue,
            authorIsWriter:
              linkedIssue.author === job.sender || WRITE_PERMISSIONS.has(await gh.permission(linkedIssue.author)),
          }
        : { number: pull.number, title: pull.title, body: '', author: job.sender, authorIsWriter: true };
      // Pushed before a crash: the branch already holds the revision; only the replies are left.
      const pushedChange =
        done.pushed?.branch === pull.headRef && done.change?.validated && done.change.report ? done.change : undefined;
      const { report, finished } = pushedChange
        ? { report: pushedChange.report!, finished: { summary: pushedChange.summary, threads: pushedChange.threads } }
        : await rounds(await workspace(pull.headRef, pull.headRef), {
            issue,
            review: task,
            editable: new Set(
              [...(await gh.pullFiles(pull.number)), ...task.threads.map((t) => t.path)].map((f) => path.normalize(f)),
            ),
            scopeRequests: [],
          });

      await postStatus({ phase: 'delivering' });
      checkStop();
      let sha = done.pushed?.branch === pull.headRef ? done.pushed.sha : null;
      if (!done.pushed) {
        sha = await commitPaths(wt!, [...touched], {
          message: `Address review on #${pull.number}\n\n${finished.summary}`,
          authorName: deps.bot.name,
          authorEmail: deps.bot.email,
          date: done.change?.at,
        });
        if (sha) {
          await pushOrEscalate(
            wt!,
            pull.headRef,
            `\`${pull.headRef}\` moved while the revision ran`,
            'Comment `/agent retry` to revise the branch as it is now',
          );
          await checkpoint('pushed', { sha, branch: pull.headRef, stat: '' });
        }
      }
      const outcomes = new Map((finished.threads ?? []).map((t) => [t.comment_id, t]));
      const replied = new Set(done.replied ?? []);
      for (const t of task.threads) {
        if (replied.has(t.commentId)) continue;
        const o = outcomes.get(t.commentId);
        const body = o
          ? `${o.outcome === 'addressed' ? '✅' : '⚠️ not changed:'} ${o.reply}${sha && o.outcome === 'addressed' ? ` (${sha.slice(0, 7)})` : ''}`
          : `Addressed in ${sha?.slice(0, 7) ?? 'no commit'}.`;
        await gh.replyToReviewComment(pull.number, t.commentId, body);
        replied.add(t.commentId);
        await checkpoint('replied', [...replied]);
      }
      await gh.removeLabel(thread, LABEL_WORKING);
      status.spend = spend.describe();
      Object.assign(status, { phase: 'done', checks: checksOf(report), pullUrl: pull.htmlUrl });
      await finalStatus(
        `${statusComment(status)}\n\n**Revision${sha ? ` ${sha.slice(0, 7)}` : ''}:** ${plain(finished.summary, 1_000)}`,
      );
      trace.write({ type: 'note', message: 'revised', detail: { sha, threads: task.threads.length } });
      return { kind: 'revised', sha, threads: task.threads.length };
    }

    async function pushOrEscalate(tree: WorkTree, branch: string, what: string, next: string): Promise<void> {
      assertOwnBranch(branch);
      try {
        await push(tree, { remoteUrl: repo.cloneUrl, branch, token: await gh.gitToken() });
      } catch (err) {
        if (!(err instanceof PushRejectedError)) throw err;
        throw new Escalation({
          reason: 'push-rejected',
          evidence: `${what} (${err.detail}); the change was not force-pushed. ${next}`,
        });
      }
    }
  } catch (caught) {
    // A model call cut short by the stop or the shutdown ends as that stop or shutdown.
    const err = caught instanceof ModelCallAborted ? (stopRequested() ?? caught) : caught;
    if (err instanceof Stopped) {
      log.info({ by: err.by }, 'stopped on request');
      trace.write({ type: 'note', message: 'stopped', detail: { by: err.by } });
      await gh.removeLabel(thread, LABEL_WORKING);
      await finalStatus(
        statusComment(
          Object.assign(status, {
            stoppedAt: status.phase,
            phase: 'stopped',
            stoppedBy: err.by,
            spend: spend.calls > 0 ? spend.describe() : undefined,
          }),
        ),
      );
      return { kind: 'stopped', by: err.by };
    }
    if (err instanceof RepoConfigError) {
      // Nothing ran: the file is explained, the way the web explains it.
      await gh.addLabels(thread, [LABEL_STUCK]);
      await gh.removeLabel(thread, LABEL_WORKING);
      await finalStatus(
        configErrorComment(err, {
          ref: repo.defaultBranch,
          fileUrl: `${repo.htmlUrl}/blob/${repo.defaultBranch}/${REPO_CONFIG_PATH}`,
        }),
      );
      return { kind: 'invalid-config', problems: err.problems.length };
    }
    const esc = toEscalation(err);
    if (!esc) throw err;
    log.info({ reason: esc.stuck.reason, evidence: esc.stuck.evidence }, 'escalating');
    trace.write({ type: 'note', message: 'escalated', detail: esc.stuck });
    await escalate(esc, repo).catch((reportErr: unknown) => {
      // The work is over; running it again would not help. The worker's final handler
      // tries once more to say so on the issue.
      throw new UnrecoverableError(
        `could not report the escalation (${esc.stuck.reason}): ${reportErr instanceof Error ? reportErr.message : String(reportErr)}`,
      );
    });
    if (!revising) await deps.planStore?.clear(issueKey(job)).catch(() => {});
    return {
      kind: 'stuck',
      reason: esc.stuck.reason,
      evidence: esc.stuck.evidence,
      failingCommand: esc.failure?.command,
    };
  } finally {
    writer.close();
    summariseTrace();
    // Each call was added as it was paid; the last adds finish before the job does.
    await dailyWrites;
    await wt?.remove().catch((err: unknown) => log.warn({ err }, 'could not remove the work tree'));
  }

  /**
   * The issue's comments as scope reads them: people's comments, trusted only when their
   * author can write to the repository now (the issue's author too: opening an issue gives
   * no write access; their comments are marked as the author's, which may answer and narrow
   * but never widen the task), and our own earlier questions, so the answers can be read against
   * them. Other bots are left out. Permissions are read for a bounded number of people,
   * those GitHub associates with the repository first (only they can have write access),
   * so a flood of outsiders' comments costs no reads and hides no writer.
   */
  async function scopeComments(
    issue: Pick<IssueText, 'author'>,
    comments: IssueComment[],
  ): Promise<Array<{ author: string; body: string; trusted: boolean; byIssueAuthor: boolean }>> {
    const ours = (c: IssueComment) =>
      c.authorType === 'Bot' && c.body.startsWith(STATUS_MARKER) && c.body.includes('needs more information');
    const people = comments.filter((c) => c.authorType !== 'Bot' && !c.author.endsWith('[bot]'));
    // The sender's write access was checked when the job started.
    const writers = new Set<string>([job.sender.toLowerCase()]);
    const associated = (c: IssueComment) => ['OWNER', 'MEMBER', 'COLLABORATOR'].includes(c.association);
    const newestFirst = [...people].reverse();
    const candidates = [
      ...new Set([...newestFirst.filter(associated), ...newestFirst].map((c) => c.author.toLowerCase())),
    ];
    for (const author of candidates.slice(0, MAX_PERMISSION_READS)) {
      if (writers.has(author)) continue;
      if (WRITE_PERMISSIONS.has(await gh.permission(author))) writers.add(author);
    }
    return comments
      .filter((c) => ours(c) || people.includes(c))
      .map((c) => ({
        author: c.author,
        body: c.body,
        trusted: ours(c) || writers.has(c.author.toLowerCase()),
        byIssueAuthor: !ours(c) && c.author.toLowerCase() === issue.author.toLowerCase(),
      }));
  }

  /** The app never pushes to a ref that is not this job's own, whatever a stored record says. */
  function assertOwnBranch(branch: string): void {
    if (!isOwnBranch(job, branch))
      throw new UnrecoverableError(
        `refusing to push ${JSON.stringify(branch)}: not a branch of ${job.kind === 'revise' ? 'the app' : `issue #${job.issueNumber}`}`,
      );
  }

  async function askForInformation(issue: IssueText, questions: string[]): Promise<Outcome> {
    await gh.addLabels(thread, [LABEL_NEEDS_INFO]);
    await gh.removeLabel(thread, LABEL_WORKING);
    await finalStatus(questionsComment(questions, issue.author));
    trace.write({ type: 'note', message: 'needs information', detail: questions });
    return { kind: 'needs-info', questions };
  }

  /** Pushes what there is to a work-in-progress branch, then posts the report. */
  async function escalate(esc: Escalation, repo: RepoInfo): Promise<void> {
    let wip: { branch: string; url: string } | undefined;
    // A revision never pushes half-done work: the PR's branch is what reviewers read. An
    // issue's only where the repository asks: a pushed branch runs its push workflows.
    if (wt && touched.size > 0 && !revising && pushWip) {
      const wipBranch = `agent/wip/issue-${job.issueNumber}-attempt-${job.attempt}`;
      try {
        // A change that passed the checks may already be committed (a rejected push).
        await enforcePaths(wt);
        const sha =
          (await commitPaths(wt, [...touched], {
            message: `WIP: ${asked[0] ?? key}\n\nStopped: ${esc.stuck.reason}`,
            authorName: deps.bot.name,
            authorEmail: deps.bot.email,
          })) ?? (await headIfCommitted(wt));
        if (sha) {
          assertOwnBranch(wipBranch);
          await push(wt, { remoteUrl: repo.cloneUrl, branch: wipBranch, token: await gh.gitToken() });
          wip = { branch: wipBranch, url: `${repo.htmlUrl}/tree/${wipBranch}` };
        }
      } catch (err) {
        log.warn({ err }, 'could not push the work-in-progress branch');
      }
    }
    // One reply per review thread, saying why nothing was done for it.
    for (const t of threads) {
      await gh
        .replyToReviewComment(
          job.issueNumber,
          t.commentId,
          `⚠️ Not addressed: the revision stopped (${esc.stuck.reason}). See the status comment on this pull request.`,
        )
        .catch((err: unknown) => log.warn({ err }, 'could not reply in a review thread'));
    }
    await gh.addLabels(thread, [LABEL_STUCK]);
    await gh.removeLabel(thread, LABEL_WORKING);
    await finalStatus(
      escalationComment({
        asked,
        tried,
        reason: esc.stuck.reason,
        evidence: esc.stuck.evidence,
        failingCommand: esc.failure?.command,
        failureExcerpt: esc.failure ? failureExcerpt(esc.failure) : undefined,
        filesTouched: [...touched].sort(),
        ...(firewall ? { firewall } : {}),
        wip,
        spend: {
          modelCalls: spend.calls,
          inputTokens: spend.totalInput,
          outputTokens: spend.outputTokens,
          costUsd: spend.costUsd,
          seconds: (Date.now() - started) / 1000,
        },
      }),
    );
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

/** The status comment's check rows: the baseline before the change and the latest run after it. */
function checksOf(report: ValidationReport | undefined, baseline?: ValidationReport): StatusCheck[] {
  const commands = [...new Set([...(baseline?.results ?? []), ...(report?.results ?? [])].map((r) => r.command))];
  return commands.map((command) => ({
    command,
    before: baseline?.results.find((r) => r.command === command)?.ok,
    after: report?.results.find((r) => r.command === command)?.ok,
  }));
}
