import type { IssueText } from '../agent/context.js';
import type { Finish } from '../agent/tools/finish-change.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import type { SavedStages } from '../queue/stage-store.js';
import { checksOf } from '../report/status.js';
import { applyPatch, changePatch, diff } from '../sandbox/worktree.js';
import { codeStage } from '../stages/code.js';
import { summariseFailures } from '../stages/failure-summary.js';
import type { ReviewTask, Revision } from '../stages/revise.js';
import { failureSignature, type ValidationReport, validateStage } from '../stages/validate.js';
import type { JobContext } from './context.js';
import { Escalation } from './endings.js';
import { enforcePaths, type Workspace } from './workspace.js';

/** What code ⇄ validate works on: the task, and what the code stage may edit. */
export interface RoundsWork {
  issue: IssueText;
  plan?: Plan;
  review?: ReviewTask;
  editable: Set<string>;
  scopeRequests: Array<{ path: string; reason: string }>;
  baseline?: ValidationReport;
}

export type Finished = Finish & Partial<Revision>;

export interface RoundsResult {
  report: ValidationReport;
  finished: Finished;
  rounds: number;
}

type SavedChange = NonNullable<SavedStages['change']>;

/** What one round hands the next: the failure to fix, and what the system compares. */
interface Carried {
  failure?: string;
  report?: ValidationReport;
  finished?: Finished;
  lastDiff?: string;
  lastSignature?: string;
}

/**
 * Code ⇄ validate until the checks pass, bounded by rounds. The system, not the model,
 * decides that a round changed nothing or failed the same way as the last.
 */
export async function codeValidate(ctx: JobContext, ws: Workspace, work: RoundsWork): Promise<RoundsResult> {
  const { maxRounds } = ctx.prepared;
  const carried: Carried = {};
  // A change coded (and maybe validated) before a crash is applied, not coded again.
  const saved = ctx.saved.change?.baseSha === ws.tree.baseSha ? ctx.saved.change : undefined;
  if (saved) {
    carried.finished = await applySavedChange(ctx, ws, work, saved);
    if (saved.validated && saved.report?.ok) {
      await ctx.postStatus({ checks: checksOf(saved.report, work.baseline) });
      return { report: saved.report, finished: carried.finished, rounds: saved.round };
    }
  }
  let round = 0;
  for (round = saved?.round ?? 1; round <= maxRounds; round++) {
    if (!saved || round > saved.round) carried.finished = await codeRound(ctx, ws, work, round, carried);
    const report = await validateRound(ctx, ws, work, round, carried);
    if (report.ok) break;
    // The last round's failure goes to the report, not to another round: no summary needed.
    if (round < maxRounds) carried.failure = await ctx.stage('summary', () => summariseFailures(ws.stageDeps, report));
  }
  const { report, finished } = carried;
  if (!report?.ok || !finished)
    throw new Escalation(
      {
        reason: 'rounds-exhausted',
        evidence: `the checks still fail after ${maxRounds} rounds of code ⇄ validate`,
      },
      report?.failed,
    );
  return { report, finished, rounds: Math.min(round, maxRounds) };
}

async function applySavedChange(
  ctx: JobContext,
  ws: Workspace,
  work: RoundsWork,
  saved: SavedChange,
): Promise<Finished> {
  await applyPatch(ws.tree, saved.patch);
  for (const f of saved.touched) ctx.touched.add(f);
  work.scopeRequests.push(...saved.scopeRequests);
  for (const r of saved.scopeRequests) work.editable.add(r.path);
  ctx.tried.push(...saved.tried);
  return { summary: saved.summary, ...(saved.threads ? { threads: saved.threads } : {}) };
}

async function codeRound(
  ctx: JobContext,
  ws: Workspace,
  work: RoundsWork,
  round: number,
  carried: Carried,
): Promise<Finished> {
  const { maxRounds, repoRules } = ctx.prepared;
  await ctx.postStatus({ phase: 'coding', round: { n: round, of: maxRounds } });
  const coded = await ctx.stage('code', () =>
    codeStage(ws.stageDeps, {
      issue: work.issue,
      plan: work.plan,
      review: work.review,
      repoRules,
      failure: carried.failure,
      touched: ctx.touched,
      editable: work.editable,
      scopeRequests: work.scopeRequests,
    }),
  );
  if (coded.kind !== 'done')
    throw new Escalation(
      coded.kind === 'stuck' ? coded : { reason: 'needs-info', evidence: coded.questions.join('; ') },
      carried.report?.failed,
    );
  return coded.value;
}

/**
 * Holds the change to the paths rule, saves it, runs the checks; ends the job when the round
 * changed nothing or failed the same way as the last.
 */
async function validateRound(
  ctx: JobContext,
  ws: Workspace,
  work: RoundsWork,
  round: number,
  carried: Carried,
): Promise<ValidationReport> {
  const { maxRounds } = ctx.prepared;
  await enforcePaths(ctx, ws.tree);
  const change = await diff(ws.tree);
  if (change === carried.lastDiff) {
    throw new Escalation(
      {
        reason: 'no-progress',
        evidence: `round ${round} left the change exactly as round ${round - 1} did, after the checks had failed`,
      },
      carried.report?.failed,
    );
  }
  carried.lastDiff = change;
  const finished = carried.finished!;
  const coded = {
    round,
    patch: await changePatch(ws.tree, [...ctx.touched]),
    baseSha: ws.tree.baseSha,
    summary: finished.summary,
    ...(finished.threads ? { threads: finished.threads } : {}),
    touched: [...ctx.touched],
    scopeRequests: work.scopeRequests,
  };
  await ctx.saveStage('change', { ...coded, validated: false, tried: [...ctx.tried] });
  await ctx.postStatus({ phase: 'validating', round: { n: round, of: maxRounds } });
  const report = await ctx.stage('validate', () => validateStage(ws.validateDeps, ws.checks));
  carried.report = report;
  await ctx.postStatus({ checks: checksOf(report, work.baseline) });
  ctx.tried.push(
    `round ${round}: edited ${[...ctx.touched].join(', ') || 'nothing'}; ${report.ok ? 'all checks passed' : `\`${report.failed?.command}\` failed`}`,
  );
  if (report.ok) {
    // A check may have rewritten files (a lint fix): the rule holds for what is committed.
    await enforcePaths(ctx, ws.tree);
    const slim = { ...report, results: report.results.map((r) => ({ ...r, output: '' })), failed: undefined };
    await ctx.saveStage('change', {
      ...coded,
      patch: await changePatch(ws.tree, [...ctx.touched]),
      validated: true,
      report: slim,
      tried: [...ctx.tried],
      at: new Date().toISOString(),
    });
    return report;
  }
  const signature = failureSignature(report);
  if (signature === carried.lastSignature) {
    throw new Escalation(
      {
        reason: 'same-failure',
        evidence: `rounds ${round - 1} and ${round} failed the same way (${signature.split('\n')[0]})`,
      },
      report.failed,
    );
  }
  carried.lastSignature = signature;
  return report;
}
