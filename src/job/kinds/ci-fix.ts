import path from 'node:path';
import { maxCiFixesOf } from '../../config/repo-config.js';
import type { CheckRunInfo, CommitStatusInfo, PullDetail } from '../../github/facade.js';
import type { Outcome } from '../../queue/outcome.js';
import type { CiState } from '../../queue/queue.js';
import { type CiStatus, inlineCode, plain, statusComment } from '../../report/status.js';
import { type ClassifiedFailure, ciFailureReport, ciTaskText, classify, readFailures } from '../ci-failures.js';
import { summariseFailures } from '../../stages/failure-summary.js';
import type { JobContext } from '../context.js';
import { deliverCiFix } from '../deliver.js';
import { Escalation } from '../endings.js';
import { codeValidate } from '../rounds.js';
import { openWorkspace } from '../workspace.js';
import type { JobKind } from './kind.js';
import { linkedIssue, revisablePull } from './revise.js';

/**
 * Failed checks on the head of the app's own PR. The system decides what to do from what
 * CI said, before any model call: a job that failed on a runner error is re-run once; a
 * failure the change caused is fixed by code ⇄ validate on the PR's branch and one new
 * commit; the same failure back after its fix, a fix past `ci.max_fix_attempts`, or a
 * failure it cannot place ends in an escalation.
 */
export const ciFixJob: JobKind = {
  firstPhase: 'queued',
  keepsWip: false,
  async run(ctx) {
    const { job } = ctx;
    const { ci, ciRecord } = ctx.deps;
    if (!ci || !ciRecord)
      throw new Escalation({ reason: 'ci-unavailable', evidence: 'this process cannot read CI results' });
    const sha = job.headSha!;
    const pull = await ownPull(ctx);
    ctx.asked = [`the failing checks on #${pull.number} at ${sha.slice(0, 7)}`];
    const status: CiStatus = { sha, failing: [], action: 'reading' };
    const show = (patch: Partial<CiStatus> = {}) => ctx.postStatus({ ci: Object.assign(status, patch) });
    if (pull.headSha !== sha) {
      // This job pushed before a crash: the new head is its fix.
      const pushed = ctx.saved.pushed?.sha;
      if (pushed && pushed === pull.headSha) {
        await ciRecord.record({ kind: 'pushed', on: sha });
        return await endCi(ctx, status, { action: 'fixing', pushed }, { kind: 'revised', sha: pushed, threads: 0 });
      }
      return await endCi(ctx, status, { superseded: true }, { kind: 'superseded' });
    }
    await show();
    const state = await ciRecord.state();
    const max = maxCiFixesOf(ctx.prepared.repoConfig);
    const failures = await ctx.stage('ci-read', () => readFailures(ci, sha, ctx.abort));
    if (failures.length === 0) {
      await ciRecord.record({ kind: 'rearm', on: sha });
      return await endCi(ctx, status, {}, { kind: 'superseded' });
    }
    const [baseRuns, baseStatuses, changed] = await Promise.all([
      ci.checkRuns(pull.baseRef).catch((): CheckRunInfo[] => []),
      ci.commitStatuses(pull.baseRef).catch(() => []),
      ctx.gh.pullFiles(pull.number),
    ]);
    // A commit status is compared with the base branch's status of the same context, as a check run is.
    const base = [...baseRuns, ...baseStatuses.map(statusAsRun)];
    const changedFiles = new Set(changed.map((f) => path.normalize(f)));
    const classified = failures.map((f) =>
      classify(f, {
        baseRuns: base,
        baseRef: pull.baseRef,
        changedFiles,
        rerunBefore: state.reruns.includes(`${sha}:${f.name}`),
      }),
    );
    await show({ failing: classified.map((f) => f.name) });
    // Check names, paths and log lines are CI's text: inert markdown only.
    for (const f of classified)
      ctx.tried.push(`${inlineCode(f.name)}: ${f.cause} (${inlineCode(f.why, 200)}); fingerprint ${f.fingerprint}`);
    ctx.trace.write({
      type: 'note',
      message: 'CI failures classified',
      detail: classified.map(({ name, cause, why, fingerprint }) => ({ name, cause, why, fingerprint })),
    });
    const caused = classified.filter((f) => f.cause === 'change');
    if (caused.length > 0) return await fix(ctx, pull, { caused, changedFiles, state, max }, show);
    const rerunnable = classified.filter((f) => f.cause === 'infrastructure' && f.actionsJob && f.checkRunId);
    if (rerunnable.length > 0 && rerunnable.length === classified.filter((f) => f.cause !== 'change').length) {
      await show({ action: 'rerunning' });
      const checks = rerunnable.map((f) => f.name);
      // Recorded first: a job that dies half-way never re-runs a check twice.
      await ciRecord.record({ kind: 'rerun', on: sha, checks });
      for (const f of rerunnable) await ci.rerunJob(f.checkRunId!);
      return await endCi(ctx, status, { rerun: checks }, { kind: 'ci-rerun', checks });
    }
    const unclear = classified.filter((f) => f.cause !== 'change');
    throw new Escalation(
      {
        reason: 'ci-unclear',
        evidence: `CI failed in a way the app cannot place: ${unclear
          .map((f) => `${inlineCode(f.name)}: ${inlineCode(f.why, 200)}`)
          .join('; ')}. Nothing was changed or re-run`,
      },
      ciFailureReport(unclear).failed,
    );
  },
  async afterEscalation(ctx) {
    // Once it escalated, the app leaves this PR's CI to people until a writer asks again.
    await ctx.deps.ciRecord?.record({ kind: 'stopped', why: `escalated in ${ctx.key}` });
  },
};

function statusAsRun(s: CommitStatusInfo): CheckRunInfo {
  const completed = s.state !== 'pending';
  return {
    id: 0,
    name: s.context,
    status: completed ? 'completed' : 'in_progress',
    conclusion: completed ? s.state : null,
    appSlug: '',
    title: '',
    summary: s.description,
    text: '',
    annotations: 0,
    url: s.url,
  };
}

/** The PR, when it is an open one the app opened from its own branch. */
async function ownPull(ctx: JobContext): Promise<PullDetail> {
  const pull = await revisablePull(ctx);
  const login = ctx.deps.appLogin;
  if (login && pull.author.toLowerCase() !== login.toLowerCase())
    throw new Escalation({
      reason: 'not-revisable',
      evidence: `#${pull.number} was opened by ${plain(pull.author, 60)}, not by the app; the app fixes CI only on its own pull requests`,
    });
  return pull;
}

/** Fixes the failures the change caused, within the bounds: one commit, never forced. */
async function fix(
  ctx: JobContext,
  pull: PullDetail,
  {
    caused,
    changedFiles,
    state,
    max,
  }: { caused: ClassifiedFailure[]; changedFiles: Set<string>; state: CiState; max: number },
  show: (patch: Partial<CiStatus>) => Promise<void>,
): Promise<Outcome> {
  const { job } = ctx;
  const sha = job.headSha!;
  const report = ciFailureReport(caused);
  // The same failure after the app pushed a fix for it: another fix would be a guess.
  const back = caused.find((f) => state.fingerprints.some((p) => p.fp === f.fingerprint && p.sha !== sha && p.pushed));
  if (back)
    throw new Escalation(
      {
        reason: 'same-failure',
        evidence: `${inlineCode(back.name)} failed again the same way after the app pushed a fix for it (fingerprint ${back.fingerprint}: ${inlineCode(back.signatureLine, 200)})`,
      },
      report.results.find((r) => r.command === `CI: ${back.name}`),
    );
  const named = caused.map((f) => inlineCode(f.name)).join(', ');
  // A job resumed after a crash has counted its attempt already.
  const resumed = state.fingerprints.some((p) => p.sha === sha);
  if (!resumed && state.fixes >= max)
    throw new Escalation(
      {
        reason: 'ci-fix-bound',
        evidence:
          max === 0
            ? `${named} failed; \`ci.max_fix_attempts\` is 0, so the app reports CI failures without fixing them`
            : `${named} failed after ${state.fixes} fix${state.fixes === 1 ? '' : 'es'}, the most \`ci.max_fix_attempts\` allows (${max})`,
      },
      report.failed,
    );
  const ciRecord = ctx.deps.ciRecord!;
  const counted = await ciRecord.record({
    kind: 'fixing',
    on: sha,
    fingerprints: caused.map((f) => ({ fp: f.fingerprint, check: f.name })),
  });
  await show({ action: 'fixing', attempt: { n: counted.fixes, of: max } });
  const ws = await openWorkspace(ctx, pull.headRef, pull.headRef);
  // Ends that push nothing give the attempt back.
  const abandon = async (patch: Partial<CiStatus>) => {
    await ciRecord.record({ kind: 'abandoned', on: sha });
    return await endCi(ctx, ctx.status.ci!, patch, { kind: 'superseded' });
  };
  // The branch moved between the check and the clone: its own CI decides.
  if (ws.tree.baseSha !== sha) return await abandon({ superseded: true });
  const summary = await ctx.stage('summary', () => summariseFailures(ws.stageDeps, report));
  const issue = await linkedIssue(ctx, pull);
  const task = {
    pullNumber: pull.number,
    title: pull.title,
    notes: [],
    threads: [],
    ciFailure: ciTaskText(caused, summary),
  };
  // The PR's files, as for a revision; CI's annotations widen nothing (request_scope does, logged).
  const editable = new Set(changedFiles);
  const revised = await codeValidate(ctx, ws, { issue, review: task, editable, scopeRequests: [] });
  const checks = caused.map((f) => f.name);
  // A person stopped the watch, or the head went green (a re-run by hand), while this ran: nothing to push.
  const now = await ciRecord.state();
  if (now.stopped) return await abandon({ halted: now.stopped });
  if (now.green === sha) return await abandon({ halted: 'every check passed meanwhile' });
  const pushed = await deliverCiFix(ctx, pull, checks, revised);
  if (pushed === 'moved') return await abandon({ superseded: true });
  if (!pushed)
    throw new Escalation({
      reason: 'no-progress',
      evidence: `the sandbox's checks pass without a change, so the failure of ${named} is not one they reproduce`,
    });
  await ciRecord.record({ kind: 'pushed', on: sha });
  ctx.trace.write({ type: 'note', message: 'CI fix pushed', detail: { sha: pushed, checks } });
  return await endCi(ctx, ctx.status.ci!, { pushed }, { kind: 'revised', sha: pushed, threads: 0 });
}

/** Ends the job with its CI comment saying what it did. */
async function endCi(ctx: JobContext, status: CiStatus, patch: Partial<CiStatus>, outcome: Outcome): Promise<Outcome> {
  ctx.status.spend = ctx.spend.calls > 0 ? ctx.spend.describe() : undefined;
  Object.assign(ctx.status, { phase: 'done', ci: { ...status, ...patch } });
  await ctx.end(undefined, statusComment(ctx.status));
  ctx.trace.write({ type: 'note', message: 'CI job ended', detail: { outcome: outcome.kind } });
  return outcome;
}
