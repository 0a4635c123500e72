import path from 'node:path';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import { Spend } from '../agent/budget.js';
import { repositoryRules } from '../agent/context.js';
import { ModelClient, ModelError } from '../agent/model.js';
import type { Stuck } from '../agent/stuck.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import { describeTallies, tallyToolCalls } from '../agent/tools/stats.js';
import { Trace } from '../agent/trace.js';
import type { AppConfig } from '../config/env.js';
import { parseRepoConfig, REPO_CONFIG_PATH, RepoConfigError } from '../config/repo-config.js';
import type { GitHubRepo } from '../github/facade.js';
import { branchName, jobId, type JobData } from '../queue/jobs.js';
import { prBody } from '../report/pr-body.js';
import { statusComment, type StatusState } from '../report/status.js';
import { ensureMirror } from '../sandbox/mirror.js';
import type { Runner } from '../sandbox/runner.js';
import { commitPaths, committedStat, createWorkTree, push, PushRejectedError, readBaseFile } from '../sandbox/worktree.js';
import { codeStage } from '../stages/code.js';
import { planStage } from '../stages/plan.js';
import type { StageDeps } from '../stages/types.js';
import { detectChecks, failureExcerpt, failureForCoder, runCheck, validateStage, type CheckResult, type ValidationReport } from '../stages/validate.js';

export const LABEL_WORKING = 'agent:working';
export const LABEL_STUCK = 'agent:stuck';
const DEFAULT_MAX_ROUNDS = 3;

export type Outcome =
  | { kind: 'pr'; url: string; number: number; created: boolean }
  | { kind: 'stuck'; reason: string; evidence: string; failingCommand?: string };

export interface PipelineDeps {
  config: Pick<AppConfig, 'dataDir' | 'models' | 'anthropicApiKey'> & { anthropicBaseUrl?: string };
  runner: Runner;
  gh: GitHubRepo;
  bot: { name: string; email: string };
  /** Where the job's one status comment is: made by the web, or here when it did not. */
  statusRef: { get(): Promise<number | undefined>; set(commentId: number): Promise<void> };
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

/**
 * One job: plan → code ⇄ validate → deliver, or escalate. Delivering is the pipeline's
 * job, never the model's: no tool reaches GitHub and no token enters the sandbox.
 */
export async function runPipeline(job: JobData, deps: PipelineDeps): Promise<Outcome> {
  const { gh, log } = deps;
  const key = jobId(job);
  const trace = new Trace(deps.config.dataDir, key);
  const spend = new Spend();
  const toolCalls: Array<{ tool: string; ok: boolean }> = [];
  const onToolCall = (tool: string, ok: boolean, errorCode?: string) => {
    toolCalls.push({ tool, ok });
    deps.onToolCall?.(tool, ok, errorCode);
  };
  const status: StatusState = { phase: 'planning' };
  let commentId = await deps.statusRef.get();
  const postStatus = async (patch: Partial<StatusState>) => {
    Object.assign(status, patch, { spend: spend.calls > 0 ? spend.describe() : undefined });
    const body = statusComment(status);
    if (commentId) await gh.updateComment(commentId, body);
    else {
      commentId = await gh.comment(job.issueNumber, body);
      await deps.statusRef.set(commentId);
    }
  };

  await postStatus({ phase: 'planning' });
  const [repo, issue] = await Promise.all([gh.repoInfo(), gh.issue(job.issueNumber)]);
  await gh.addLabels(job.issueNumber, [LABEL_WORKING]);
  // A new attempt starts clean: a label from an earlier stuck attempt would now be wrong.
  // (Writes are throttled a second apart, so only when it is there.)
  if (issue.labels.includes(LABEL_STUCK)) await gh.removeLabel(job.issueNumber, LABEL_STUCK);
  const branch = branchName(issue.number, issue.title);
  const mirrorPath = await ensureMirror({ dataDir: deps.config.dataDir, cloneUrl: repo.cloneUrl, token: await gh.gitToken(), log });
  const wt = await createWorkTree({ dataDir: deps.config.dataDir, mirrorPath, jobKey: key, baseBranch: repo.defaultBranch, branch });
  trace.write({ type: 'note', message: 'work tree ready', detail: { branch, base: repo.defaultBranch, baseSha: wt.baseSha } });
  try {
    // Rules and config come from the default branch: the fresh work tree is exactly that.
    const readBase = (p: string) => readBaseFile(wt, p);
    const repoConfig = parseRepoConfig(await readBase(REPO_CONFIG_PATH));
    const repoRules = await repositoryRules(readBase, repoConfig.instructions);
    const model = new ModelClient({
      apiKey: deps.config.anthropicApiKey,
      baseURL: deps.config.anthropicBaseUrl,
      models: deps.config.models,
      log,
      spend,
      trace,
    });
    const stageDeps: StageDeps = { model, runner: deps.runner, workTree: wt.path, sandboxReadOnlyPaths: [mirrorPath], trace, log, onToolCall };
    const validateDeps = { runner: deps.runner, workTree: wt.path, sandboxReadOnlyPaths: [mirrorPath], trace, stage: 'validate' };
    const { install, checks } = await detectChecks(readBase, repoConfig);
    if (checks.length === 0) {
      throw new Escalation({ reason: 'no-checks', evidence: `no test, lint or typecheck command was found; name them under commands in ${REPO_CONFIG_PATH}` });
    }
    const installed = install ? await runCheck({ ...validateDeps, stage: 'install' }, install) : undefined;
    if (installed && !installed.ok) throw new Escalation({ reason: 'install-failed', evidence: 'the install command failed before any change' }, installed);
    // The checks before the change: the PR shows red → green, and a check that already
    // fails on the default branch is visible as such.
    const baseline = await validateStage({ ...validateDeps, stage: 'baseline' }, checks);

    const stage = async <T>(name: string, run: () => Promise<T>): Promise<T> => {
      trace.write({ type: 'stage', stage: name, phase: 'start' });
      const out = await run();
      trace.write({ type: 'stage', stage: name, phase: 'end', result: (out as { kind?: string }).kind });
      return out;
    };

    const planned = await stage('plan', () => planStage(stageDeps, { issue, repoRules, checks: checks.map((c) => c.command) }));
    if (planned.kind !== 'done') throw new Escalation(planned.kind === 'stuck' ? planned : { reason: 'needs-info', evidence: planned.questions.join('; ') });
    const plan: Plan = planned.value;
    const maxRounds = repoConfig.max_rounds ?? DEFAULT_MAX_ROUNDS;
    const touched = new Set<string>();
    const editable = new Set(plan.files_to_change.map((f) => path.normalize(f)));
    const scopeRequests: Array<{ path: string; reason: string }> = [];
    let failure: string | undefined;
    let report: ValidationReport | undefined;
    let summary = plan.summary;
    let round = 0;
    for (round = 1; round <= maxRounds; round++) {
      await postStatus({ phase: 'coding', planSummary: plan.summary, round: { n: round, of: maxRounds } });
      const coded = await stage('code', () => codeStage(stageDeps, { issue, plan, repoRules, failure, touched, editable, scopeRequests }));
      if (coded.kind !== 'done') throw new Escalation(coded.kind === 'stuck' ? coded : { reason: 'needs-info', evidence: coded.questions.join('; ') }, report?.failed);
      summary = coded.value.summary;
      await postStatus({ phase: 'validating' });
      report = await stage('validate', () => validateStage(validateDeps, checks));
      if (report.ok) break;
      failure = failureForCoder(report);
    }
    if (!report?.ok) {
      throw new Escalation(
        { reason: 'same-failure', evidence: `the checks still fail after ${maxRounds} rounds of code ⇄ validate` },
        report?.failed,
      );
    }

    await postStatus({ phase: 'delivering' });
    const sha = await commitPaths(wt, [...touched], { message: `${issue.title}\n\n${summary}\n\nCloses #${issue.number}`, authorName: deps.bot.name, authorEmail: deps.bot.email });
    if (!sha) throw new Escalation({ reason: 'no-progress', evidence: 'the checks pass but the change is empty' });
    const stat = await committedStat(wt);
    try {
      await push(wt, { remoteUrl: repo.cloneUrl, branch, token: await gh.gitToken() });
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
      body: prBody({ issueNumber: issue.number, summary, plan, scopeRequests, toolCalls: describeTallies(tallyToolCalls(toolCalls)), install: installed, baseline, final: report, diffStat: stat, spend: spend.describe(), rounds: Math.min(round, maxRounds) }),
    });
    // Labels first, the status last: once the status says done, everything else is in place.
    await gh.removeLabel(job.issueNumber, LABEL_WORKING);
    await postStatus({ phase: 'done', pullUrl: pr.htmlUrl });
    trace.write({ type: 'note', message: 'delivered', detail: { pr: pr.htmlUrl, sha } });
    trace.write({ type: 'note', message: 'tool calls', detail: tallyToolCalls(toolCalls) });
    return { kind: 'pr', url: pr.htmlUrl, number: pr.number, created: pr.created };
  } catch (err) {
    const esc =
      err instanceof Escalation
        ? err
        : err instanceof RepoConfigError
          ? new Escalation({ reason: 'invalid-config', evidence: err.message })
          : err instanceof ModelError
            ? new Escalation({ reason: err.kind === 'refused' ? 'model-refused' : 'model-unavailable', evidence: err.message })
            : undefined;
    if (!esc) throw err;
    log.info({ reason: esc.stuck.reason, evidence: esc.stuck.evidence }, 'escalating');
    trace.write({ type: 'note', message: 'escalated', detail: esc.stuck });
    trace.write({ type: 'note', message: 'tool calls', detail: tallyToolCalls(toolCalls) });
    await reportEscalation(esc).catch((reportErr: unknown) => {
      // The work is over; running it again would not help. The worker's final handler
      // tries once more to say so on the issue.
      throw new UnrecoverableError(`could not report the escalation (${esc.stuck.reason}): ${reportErr instanceof Error ? reportErr.message : String(reportErr)}`);
    });
    return { kind: 'stuck', reason: esc.stuck.reason, evidence: esc.stuck.evidence, failingCommand: esc.failure?.command };
  } finally {
    await wt.remove().catch((err: unknown) => log.warn({ err }, 'could not remove the work tree'));
  }

  async function reportEscalation(esc: Escalation): Promise<void> {
    await gh.addLabels(job.issueNumber, [LABEL_STUCK]);
    await gh.removeLabel(job.issueNumber, LABEL_WORKING);
    await postStatus({
      phase: 'stuck',
      stoppedAt: status.phase,
      reason: `${esc.stuck.reason}: ${esc.stuck.evidence}`,
      failingCommand: esc.failure?.command,
      failureExcerpt: esc.failure ? failureExcerpt(esc.failure) : undefined,
    });
  }
}
