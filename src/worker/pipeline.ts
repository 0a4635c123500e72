import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { budgetStop, Spend } from '../agent/budget.js';
import { repositoryRules } from '../agent/context.js';
import { ModelClient, ModelError } from '../agent/model.js';
import type { Stuck } from '../agent/stuck.js';
import { describeTallies, tallyToolCalls } from '../agent/tools/stats.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import { Trace } from '../agent/trace.js';
import type { AppConfig } from '../config/env.js';
import { budgetsOf, checkpointOf, stuckLimitsOf, parseRepoConfig, REPO_CONFIG_PATH, RepoConfigError } from '../config/repo-config.js';
import { WRITE_PERMISSIONS, type GitHubRepo, type IssueComment } from '../github/facade.js';
import { branchName, issueKey, jobId, type JobData } from '../queue/jobs.js';
import { escalationComment } from '../report/escalation.js';
import { prBody } from '../report/pr-body.js';
import { checkpointComment, questionsComment, STATUS_MARKER, statusComment, type StatusState } from '../report/status.js';
import { ensureMirror } from '../sandbox/mirror.js';
import type { Runner } from '../sandbox/runner.js';
import { commitPaths, committedStat, createWorkTree, diff, headIfCommitted, push, PushRejectedError, readBaseFile, type WorkTree } from '../sandbox/worktree.js';
import { codeStage } from '../stages/code.js';
import { planStage } from '../stages/plan.js';
import { scopeStage } from '../stages/scope.js';
import { summariseFailures } from '../stages/failure-summary.js';
import type { StageDeps } from '../stages/types.js';
import { detectChecks, failureExcerpt, failureSignature, runCheck, validateStage, type CheckResult, type ValidationReport } from '../stages/validate.js';

export const LABEL_WORKING = 'agent:working';
export const LABEL_STUCK = 'agent:stuck';
export const LABEL_NEEDS_INFO = 'agent:needs-info';
const DEFAULT_MAX_ROUNDS = 3;

export type Outcome =
  | { kind: 'pr'; url: string; number: number; created: boolean }
  | { kind: 'stuck'; reason: string; evidence: string; failingCommand?: string }
  | { kind: 'needs-info'; questions: string[] }
  | { kind: 'checkpoint'; reasons: string[] };

/** A plan that stopped for a writer's go, with what it was planned against. */
export interface PlanCheckpoint {
  plan: Plan;
  acceptanceCriteria: string[];
  baseSha: string;
}

export interface PlanStore {
  save(issue: string, c: PlanCheckpoint): Promise<void>;
  load(issue: string): Promise<PlanCheckpoint | undefined>;
  /** Drops the checkpoint once a job that used it has ended (PR or escalation). */
  clear(issue: string): Promise<void>;
}

/** Dollars spent per repository per day, across jobs and workers. */
export interface DailySpend {
  spentToday(repo: string): Promise<number>;
  add(repo: string, usd: number): Promise<void>;
}

export interface PipelineDeps {
  config: Pick<AppConfig, 'dataDir' | 'models' | 'anthropicApiKey'> & { anthropicBaseUrl?: string };
  runner: Runner;
  gh: GitHubRepo;
  bot: { name: string; email: string };
  /** Where the job's one status comment is: made by the web, or here when it did not. */
  statusRef: { get(): Promise<number | undefined>; set(commentId: number): Promise<void> };
  dailySpend?: DailySpend;
  planStore?: PlanStore;
  log: Logger;
  onToolCall?: (tool: string, ok: boolean, errorCode?: string) => void;
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
  if (err instanceof RepoConfigError) return new Escalation({ reason: 'invalid-config', evidence: err.message });
  if (err instanceof ModelError) return new Escalation({ reason: err.kind === 'refused' ? 'model-refused' : 'model-unavailable', evidence: err.message });
  return undefined;
}

/**
 * One job: scope → plan → code ⇄ validate → deliver, or escalate. Delivering is the
 * pipeline's job, never the model's: no tool reaches GitHub and no token enters the sandbox.
 */
export async function runPipeline(job: JobData, deps: PipelineDeps): Promise<Outcome> {
  const { gh, log } = deps;
  const key = jobId(job);
  const started = Date.now();
  const trace = new Trace(deps.config.dataDir, key);
  const spend = new Spend();
  const toolCalls: Array<{ tool: string; ok: boolean }> = [];
  const onToolCall = (tool: string, ok: boolean, errorCode?: string) => {
    toolCalls.push({ tool, ok });
    deps.onToolCall?.(tool, ok, errorCode);
  };
  const status: StatusState = { phase: 'scoping' };
  let commentId = await deps.statusRef.get();
  const writeComment = async (body: string) => {
    if (commentId) await gh.updateComment(commentId, body);
    else {
      commentId = await gh.comment(job.issueNumber, body);
      await deps.statusRef.set(commentId);
    }
  };
  const postStatus = async (patch: Partial<StatusState>) => {
    Object.assign(status, patch, { spend: spend.calls > 0 ? spend.describe() : undefined });
    await writeComment(statusComment(status));
  };
  const stage = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
    trace.write({ type: 'stage', stage: name, phase: 'start' });
    const out = await run();
    trace.write({ type: 'stage', stage: name, phase: 'end', result: (out as { kind?: string }).kind });
    return out;
  };

  // What the escalation report draws on, filled in as the job goes.
  const asked: string[] = [];
  const tried: string[] = [];
  const touched = new Set<string>();
  let wt: WorkTree | undefined;

  await postStatus({ phase: 'scoping' });
  const [repo, issueInfo] = await Promise.all([gh.repoInfo(), gh.issue(job.issueNumber)]);
  // An issue opened by someone without write access is data from outside: say so to the model.
  const issue = { ...issueInfo, authorIsWriter: issueInfo.author === job.sender || WRITE_PERMISSIONS.has(await gh.permission(issueInfo.author)) };
  const repoKey = `${gh.ref.owner}/${gh.ref.repo}`.toLowerCase();
  await gh.addLabels(job.issueNumber, [LABEL_WORKING]);
  // A new attempt starts clean. Writes are throttled a second apart, so only what is there.
  for (const stale of [LABEL_STUCK, LABEL_NEEDS_INFO]) if (issue.labels.includes(stale)) await gh.removeLabel(job.issueNumber, stale);
  asked.push(issue.title);
  try {
    // Rules and config come from the default branch, never from a branch anyone can push.
    const readDefault = (p: string) => gh.fileText(p, repo.defaultBranch);
    const repoConfig = parseRepoConfig(await readDefault(REPO_CONFIG_PATH));
    const budgets = budgetsOf(repoConfig);
    const spentToday = (await deps.dailySpend?.spentToday(repoKey)) ?? 0;
    if (spentToday >= budgets.dailyCostUsd) {
      throw new Escalation({ reason: 'budget-cost', evidence: `this repository has spent $${spentToday.toFixed(2)} today, its daily budget is $${budgets.dailyCostUsd}` });
    }
    const guard = () => budgetStop(spend, budgets, started);
    const repoRules = await repositoryRules(readDefault, repoConfig.instructions);
    // A writer's go after a checkpoint: resume from that plan, not from scratch.
    const resumed = await deps.planStore?.load(issueKey(job));
    if (resumed) trace.write({ type: 'note', message: 'resumed from a checkpointed plan', detail: { baseSha: resumed.baseSha } });
    // The repository may pick other models per tier; the key and gateway stay the operator's.
    const models = { ...deps.config.models, ...repoConfig.models };
    const model = new ModelClient({ apiKey: deps.config.anthropicApiKey, baseURL: deps.config.anthropicBaseUrl, models, log, spend, trace });

    // Scope: is this a bounded, verifiable task? Decided before anything is cloned.
    if (resumed) {
      asked.splice(0, asked.length, ...resumed.acceptanceCriteria);
    } else {
      const [comments, layout] = await Promise.all([gh.issueComments(job.issueNumber), gh.rootEntries(repo.defaultBranch)]);
      const scoped = await stage('scope', async () =>
        scopeStage({ model, trace, log, onToolCall, guard }, { issue, comments: await scopeComments(comments), layout, rules: repoRules }),
      );
      if (scoped.kind === 'needs-info') return await askForInformation(scoped.questions);
      if (scoped.kind === 'stuck') throw new Escalation(scoped);
      asked.splice(0, asked.length, ...scoped.value.acceptanceCriteria);
    }

    await postStatus({ phase: 'planning' });
    const branch = branchName(issue.number, issue.title);
    const mirrorPath = await ensureMirror({ dataDir: deps.config.dataDir, cloneUrl: repo.cloneUrl, token: await gh.gitToken(), log });
    wt = await createWorkTree({ dataDir: deps.config.dataDir, mirrorPath, jobKey: key, baseBranch: repo.defaultBranch, branch });
    const tree = wt;
    trace.write({ type: 'note', message: 'work tree ready', detail: { branch, base: repo.defaultBranch, baseSha: tree.baseSha } });
    const stageDeps: StageDeps = { model, runner: deps.runner, workTree: tree.path, sandboxReadOnlyPaths: [mirrorPath], trace, log, onToolCall, guard, stuckLimits: stuckLimitsOf(repoConfig) };
    const validateDeps = { runner: deps.runner, workTree: tree.path, sandboxReadOnlyPaths: [mirrorPath], trace, stage: 'validate' };
    const { install, checks } = await detectChecks((p) => readBaseFile(tree, p), repoConfig);
    if (checks.length === 0) {
      throw new Escalation({ reason: 'no-checks', evidence: `no test, lint or typecheck command was found; name them under commands in ${REPO_CONFIG_PATH}` });
    }
    const installed = install ? await runCheck({ ...validateDeps, stage: 'install' }, install) : undefined;
    if (installed && !installed.ok) throw new Escalation({ reason: 'install-failed', evidence: 'the install command failed before any change' }, installed);
    // The checks before the change: the PR shows red → green, and a check that already
    // fails on the default branch is visible as such.
    const baseline = await validateStage({ ...validateDeps, stage: 'baseline' }, checks);

    let plan: Plan;
    if (resumed) {
      plan = resumed.plan;
      if (resumed.baseSha !== tree.baseSha) trace.write({ type: 'note', message: 'the default branch moved since the checkpointed plan', detail: { planned: resumed.baseSha, now: tree.baseSha } });
    } else {
      const planned = await stage('plan', () => planStage(stageDeps, { issue, acceptanceCriteria: asked, repoRules, checks: checks.map((c) => c.command) }));
      if (planned.kind === 'needs-info') return await askForInformation(planned.questions);
      if (planned.kind === 'stuck') throw new Escalation(planned);
      plan = planned.value;
      const rule = checkpointOf(repoConfig);
      const reasons = [
        ...(plan.confidence < rule.minConfidence ? [`confidence ${plan.confidence} is below ${rule.minConfidence}`] : []),
        ...(plan.files_to_change.length > rule.maxFiles ? [`${plan.files_to_change.length} files to change is more than ${rule.maxFiles}`] : []),
        ...(plan.estimated_changed_lines > rule.maxLines ? [`about ${plan.estimated_changed_lines} changed lines is more than ${rule.maxLines}`] : []),
      ];
      if (reasons.length > 0 && deps.planStore) {
        await deps.planStore.save(issueKey(job), { plan, acceptanceCriteria: asked, baseSha: tree.baseSha });
        await gh.addLabels(job.issueNumber, [LABEL_NEEDS_INFO]);
        await gh.removeLabel(job.issueNumber, LABEL_WORKING);
        await writeComment(checkpointComment(plan, reasons, spend.describe()));
        trace.write({ type: 'note', message: 'checkpoint after planning', detail: reasons });
        return { kind: 'checkpoint', reasons };
      }
    }
    tried.push(...plan.steps.map((s) => `plan: ${s}`));
    const maxRounds = repoConfig.max_rounds ?? DEFAULT_MAX_ROUNDS;
    const editable = new Set(plan.files_to_change.map((f) => path.normalize(f)));
    const scopeRequests: Array<{ path: string; reason: string }> = [];
    let failure: string | undefined;
    let report: ValidationReport | undefined;
    let summary = plan.summary;
    let lastDiff: string | undefined;
    let lastSignature: string | undefined;
    let round = 0;
    for (round = 1; round <= maxRounds; round++) {
      await postStatus({ phase: 'coding', planSummary: plan.summary, round: { n: round, of: maxRounds } });
      const coded = await stage('code', () => codeStage(stageDeps, { issue, plan, repoRules, failure, touched, editable, scopeRequests }));
      if (coded.kind !== 'done') throw new Escalation(coded.kind === 'stuck' ? coded : { reason: 'needs-info', evidence: coded.questions.join('; ') }, report?.failed);
      summary = coded.value.summary;
      // The system, not the model, decides that a round changed nothing.
      const change = await diff(tree);
      if (change === lastDiff) {
        throw new Escalation({ reason: 'no-progress', evidence: `round ${round} left the change exactly as round ${round - 1} did, after the checks had failed` }, report?.failed);
      }
      lastDiff = change;
      await postStatus({ phase: 'validating' });
      report = await stage('validate', () => validateStage(validateDeps, checks));
      tried.push(`round ${round}: edited ${[...touched].join(', ') || 'nothing'}; ${report.ok ? 'all checks passed' : `\`${report.failed?.command}\` failed`}`);
      if (report.ok) break;
      const signature = failureSignature(report);
      if (signature === lastSignature) {
        throw new Escalation({ reason: 'same-failure', evidence: `rounds ${round - 1} and ${round} failed the same way (${signature.split('\n')[0]})` }, report.failed);
      }
      lastSignature = signature;
      const failedReport = report;
      // The last round's failure goes to the report, not to another round: no summary needed.
      if (round < maxRounds) failure = await stage('summary', () => summariseFailures(stageDeps, failedReport));
    }
    if (!report?.ok) throw new Escalation({ reason: 'rounds-exhausted', evidence: `the checks still fail after ${maxRounds} rounds of code ⇄ validate` }, report?.failed);

    await postStatus({ phase: 'delivering' });
    const sha = await commitPaths(tree, [...touched], { message: `${issue.title}\n\n${summary}\n\nCloses #${issue.number}`, authorName: deps.bot.name, authorEmail: deps.bot.email });
    if (!sha) throw new Escalation({ reason: 'no-progress', evidence: 'the checks pass but the change is empty' });
    const stat = await committedStat(tree);
    try {
      await push(tree, { remoteUrl: repo.cloneUrl, branch, token: await gh.gitToken() });
    } catch (err) {
      if (!(err instanceof PushRejectedError)) throw err;
      throw new Escalation({
        reason: 'push-rejected',
        evidence: `the branch \`${branch}\` already has other commits or is protected (${err.detail}); the change was not force-pushed. Delete or merge that branch, then re-add the label`,
      });
    }
    const pr = await gh.openOrUpdatePull({
      head: branch,
      base: repo.defaultBranch,
      title: issue.title,
      body: prBody({
        issueNumber: issue.number,
        summary,
        acceptanceCriteria: asked,
        plan,
        scopeRequests,
        toolCalls: describeTallies(tallyToolCalls(toolCalls)),
        install: installed,
        baseline,
        final: report,
        diffStat: stat,
        spend: spend.describe(),
        rounds: Math.min(round, maxRounds),
      }),
    });
    // Labels first, the status last: once the status says done, everything else is in place.
    await gh.removeLabel(job.issueNumber, LABEL_WORKING);
    await postStatus({ phase: 'done', pullUrl: pr.htmlUrl });
    trace.write({ type: 'note', message: 'delivered', detail: { pr: pr.htmlUrl, sha } });
    if (resumed) await deps.planStore?.clear(issueKey(job));
    return { kind: 'pr', url: pr.htmlUrl, number: pr.number, created: pr.created };
  } catch (err) {
    const esc = toEscalation(err);
    if (!esc) throw err;
    log.info({ reason: esc.stuck.reason, evidence: esc.stuck.evidence }, 'escalating');
    trace.write({ type: 'note', message: 'escalated', detail: esc.stuck });
    await escalate(esc).catch((reportErr: unknown) => {
      // The work is over; running it again would not help. The worker's final handler
      // tries once more to say so on the issue.
      throw new UnrecoverableError(`could not report the escalation (${esc.stuck.reason}): ${reportErr instanceof Error ? reportErr.message : String(reportErr)}`);
    });
    await deps.planStore?.clear(issueKey(job)).catch(() => {});
    return { kind: 'stuck', reason: esc.stuck.reason, evidence: esc.stuck.evidence, failingCommand: esc.failure?.command };
  } finally {
    trace.write({ type: 'note', message: 'tool calls', detail: tallyToolCalls(toolCalls) });
    trace.write({ type: 'note', message: 'spend', detail: { modelCalls: spend.calls, inputTokens: spend.totalInput, outputTokens: spend.outputTokens, costUsd: spend.costUsd, seconds: (Date.now() - started) / 1000 } });
    await deps.dailySpend?.add(repoKey, spend.costUsd).catch((err: unknown) => log.warn({ err }, 'could not record the daily spend'));
    await wt?.remove().catch((err: unknown) => log.warn({ err }, 'could not remove the work tree'));
  }

  /**
   * The issue's comments as scope reads them: people's comments, trusted when the author
   * can write to the repository (or opened the issue), and our own earlier questions, so
   * the answers can be read against them. Other bots are left out.
   */
  async function scopeComments(comments: IssueComment[]): Promise<Array<{ author: string; body: string; trusted: boolean }>> {
    const ours = (c: IssueComment) => c.authorType === 'Bot' && c.body.startsWith(STATUS_MARKER) && c.body.includes('needs more information');
    const people = comments.filter((c) => c.authorType !== 'Bot' && !c.author.endsWith('[bot]'));
    const writers = new Set<string>([issue.author]);
    // One permission read per distinct commenter, newest first, a bounded number.
    for (const author of [...new Set(people.map((c) => c.author).reverse())].slice(0, 10)) {
      if (writers.has(author)) continue;
      if (WRITE_PERMISSIONS.has(await gh.permission(author))) writers.add(author);
    }
    return comments
      .filter((c) => ours(c) || people.includes(c))
      .map((c) => ({ author: c.author, body: c.body, trusted: ours(c) || writers.has(c.author) }));
  }

  async function askForInformation(questions: string[]): Promise<Outcome> {
    await gh.addLabels(job.issueNumber, [LABEL_NEEDS_INFO]);
    await gh.removeLabel(job.issueNumber, LABEL_WORKING);
    await writeComment(questionsComment(questions, issue.author));
    trace.write({ type: 'note', message: 'needs information', detail: questions });
    return { kind: 'needs-info', questions };
  }

  /** Pushes what there is to a work-in-progress branch, then posts the report. */
  async function escalate(esc: Escalation): Promise<void> {
    let wip: { branch: string; url: string } | undefined;
    if (wt && touched.size > 0) {
      const wipBranch = `agent/wip/issue-${job.issueNumber}-attempt-${job.attempt}`;
      try {
        // A change that passed the checks may already be committed (a rejected push).
        const sha = (await commitPaths(wt, [...touched], { message: `WIP: ${issue.title}\n\nStopped: ${esc.stuck.reason}`, authorName: deps.bot.name, authorEmail: deps.bot.email })) ?? (await headIfCommitted(wt));
        if (sha) {
          await push(wt, { remoteUrl: repo.cloneUrl, branch: wipBranch, token: await gh.gitToken() });
          wip = { branch: wipBranch, url: `${repo.htmlUrl}/tree/${wipBranch}` };
        }
      } catch (err) {
        log.warn({ err }, 'could not push the work-in-progress branch');
      }
    }
    await gh.addLabels(job.issueNumber, [LABEL_STUCK]);
    await gh.removeLabel(job.issueNumber, LABEL_WORKING);
    await writeComment(
      escalationComment({
        asked,
        tried,
        reason: esc.stuck.reason,
        evidence: esc.stuck.evidence,
        failingCommand: esc.failure?.command,
        failureExcerpt: esc.failure ? failureExcerpt(esc.failure) : undefined,
        filesTouched: [...touched].sort(),
        wip,
        spend: { modelCalls: spend.calls, inputTokens: spend.totalInput, outputTokens: spend.outputTokens, costUsd: spend.costUsd, seconds: (Date.now() - started) / 1000 },
      }),
    );
  }
}

