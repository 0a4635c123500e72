import path from 'node:path';
import type { IssueText } from '../../agent/context.js';
import type { Plan } from '../../agent/tools/submit-plan.js';
import { checkpointOf } from '../../config/repo-config.js';
import { LABEL_NEEDS_INFO, WRITE_PERMISSIONS } from '../../github/facade.js';
import { branchName, issueKey } from '../../queue/jobs.js';
import type { Outcome } from '../../queue/outcome.js';
import type { PlanCheckpoint } from '../../queue/plan-store.js';
import { checkpointComment, checksOf, questionsComment } from '../../report/status.js';
import { planStage } from '../../stages/plan.js';
import { scopeStage } from '../../stages/scope.js';
import { validateStage } from '../../stages/validate.js';
import type { JobContext } from '../context.js';
import { deliverPullRequest } from '../deliver.js';
import { Escalation } from '../endings.js';
import { codeValidate } from '../rounds.js';
import { scopeComments } from '../scope-comments.js';
import { unapprovedEdit } from '../task-approval.js';
import { openWorkspace, type Workspace } from '../workspace.js';
import type { JobKind } from './kind.js';

type Issue = IssueText & { labels: string[] };

/** An issue labelled for the agent: scope → plan → code ⇄ validate → deliver, or escalate. */
export const issueJob: JobKind = {
  firstPhase: 'scoping',
  keepsWip: true,
  async run(ctx) {
    const issue = await approvedIssue(ctx);
    // A writer's go-ahead after a checkpoint: resume from that plan, not from scratch.
    const goAhead = await ctx.deps.planStore?.load(issueKey(ctx.job));
    if (goAhead)
      ctx.trace.write({
        type: 'note',
        message: 'resumed from a checkpointed plan',
        detail: { baseSha: goAhead.baseSha },
      });
    const naming = ctx.saved.naming ?? { branch: branchName(issue.number, issue.title), title: issue.title };
    if (!ctx.saved.naming) await ctx.saveStage('naming', naming);
    const open = () => openWorkspace(ctx, ctx.prepared.repo.defaultBranch, naming.branch);
    // A repository that names an image gets it set up, and its dependencies installed,
    // before any model call: an environment that cannot be made costs nothing.
    const early = ctx.prepared.environment ? await open() : undefined;
    const questions = await scope(ctx, issue, goAhead);
    if (questions) return questions;

    await ctx.postStatus({ phase: 'planning' });
    const ws = early ?? (await open());
    // The checks before the change: the PR shows red → green, and a check that already
    // fails on the default branch is visible as such.
    const baseline = await ctx.stage('baseline', () =>
      validateStage({ ...ws.validateDeps, stage: 'baseline' }, ws.checks),
    );
    await ctx.postStatus({ checks: checksOf(undefined, baseline) });
    const planned = await plan(ctx, ws, issue, goAhead);
    if (!('plan' in planned)) return planned;
    const { plan: thePlan } = planned;

    ctx.tried.push(...thePlan.steps.map((s) => `plan: ${s}`));
    await ctx.postStatus({ planSummary: thePlan.summary });
    const scopeRequests: Array<{ path: string; reason: string }> = [];
    const editable = new Set(thePlan.files_to_change.map((f) => path.normalize(f)));
    const done = await codeValidate(ctx, ws, { issue, plan: thePlan, editable, scopeRequests, baseline });
    return await deliverPullRequest(ctx, ws, {
      ...done,
      naming,
      plan: thePlan,
      scopeRequests,
      baseline,
      closes: ctx.deps.closesIssue === false ? undefined : issue.number,
      fromCheckpoint: goAhead !== undefined,
    });
  },
  async afterEscalation(ctx) {
    await ctx.deps.planStore?.clear(issueKey(ctx.job)).catch(() => {});
  },
};

/** The issue as a writer approved it, marked untrusted when its author cannot write. */
async function approvedIssue(ctx: JobContext): Promise<Issue> {
  const { gh, job } = ctx;
  const issueInfo = await gh.issue(job.issueNumber);
  // The task is what a writer approved: the text of the trigger, or edited since only by writers.
  const edited = job.snapshot && (await unapprovedEdit(gh, job.issueNumber, job.snapshot, issueInfo));
  if (edited) throw new Escalation({ reason: 'edited-after-trigger', evidence: `${edited}; nothing was run` });
  // An issue opened by someone without write access is data from outside: say so to the model.
  const issue: Issue = {
    ...issueInfo,
    authorIsWriter: issueInfo.author === job.sender || WRITE_PERMISSIONS.has(await gh.permission(issueInfo.author)),
    ...(job.instructions ? { note: { author: job.sender, text: job.instructions } } : {}),
  };
  ctx.asked = [issue.title];
  return issue;
}

/** Scope: is this a bounded, verifiable task? Decided before anything is cloned; questions end the job. */
async function scope(ctx: JobContext, issue: Issue, goAhead: PlanCheckpoint | undefined): Promise<Outcome | undefined> {
  if (goAhead) {
    ctx.asked = [...goAhead.acceptanceCriteria];
    return undefined;
  }
  if (ctx.saved.scope) {
    ctx.asked = [...ctx.saved.scope.acceptanceCriteria];
    return undefined;
  }
  const { gh, trace, log } = ctx;
  const { repo, model, guard, repoRules } = ctx.prepared;
  const [{ comments, unread }, layout] = await Promise.all([
    gh.issueComments(issue.number),
    gh.rootEntries(repo.defaultBranch),
  ]);
  if (unread > 0)
    trace.write({
      type: 'note',
      message: `the thread is long: about ${unread} comments in its middle were not read`,
      detail: { read: comments.length },
    });
  const scoped = await ctx.stage('scope', async () =>
    scopeStage(
      { model, trace, log, onToolCall: ctx.onToolCall, guard },
      { issue, comments: await scopeComments(ctx, issue, comments), layout, rules: repoRules },
    ),
  );
  if (scoped.kind === 'needs-info') return await askForInformation(ctx, issue, scoped.questions);
  if (scoped.kind === 'stuck') throw new Escalation(scoped);
  ctx.asked = [...scoped.value.acceptanceCriteria];
  await ctx.saveStage('scope', { acceptanceCriteria: ctx.asked });
  return undefined;
}

/** Plan, unless a go-ahead or an earlier attempt has one; a plan past the checkpoint rule waits for a writer. */
async function plan(
  ctx: JobContext,
  ws: Workspace,
  issue: Issue,
  goAhead: PlanCheckpoint | undefined,
): Promise<{ plan: Plan } | Outcome> {
  if (goAhead) {
    if (goAhead.baseSha !== ws.tree.baseSha)
      ctx.trace.write({
        type: 'note',
        message: 'the default branch moved since the checkpointed plan',
        detail: { planned: goAhead.baseSha, now: ws.tree.baseSha },
      });
    return { plan: goAhead.plan };
  }
  if (ctx.saved.plan) return { plan: ctx.saved.plan };
  const planned = await ctx.stage('plan', () =>
    planStage(ws.stageDeps, {
      issue,
      acceptanceCriteria: ctx.asked,
      repoRules: ctx.prepared.repoRules,
      checks: ws.checks.map((c) => c.command),
    }),
  );
  if (planned.kind === 'needs-info') return await askForInformation(ctx, issue, planned.questions);
  if (planned.kind === 'stuck') throw new Escalation(planned);
  await ctx.saveStage('plan', planned.value);
  return (await pauseForGoAhead(ctx, ws, planned.value)) ?? { plan: planned.value };
}

/** The checkpoint: a plan that is unsure or large waits, on the thread, for a writer's go-ahead. */
async function pauseForGoAhead(ctx: JobContext, ws: Workspace, plan: Plan): Promise<Outcome | undefined> {
  const rule = checkpointOf(ctx.prepared.repoConfig);
  const reasons = [
    ...(plan.confidence < rule.minConfidence ? [`confidence ${plan.confidence} is below ${rule.minConfidence}`] : []),
    ...(plan.files_to_change.length > rule.maxFiles
      ? [`${plan.files_to_change.length} files to change is more than ${rule.maxFiles}`]
      : []),
    ...(plan.estimated_changed_lines > rule.maxLines
      ? [`about ${plan.estimated_changed_lines} changed lines is more than ${rule.maxLines}`]
      : []),
  ];
  const store = ctx.deps.planStore;
  if (reasons.length === 0 || !store) return undefined;
  await store.save(issueKey(ctx.job), { plan, acceptanceCriteria: ctx.asked, baseSha: ws.tree.baseSha });
  await ctx.end(LABEL_NEEDS_INFO, checkpointComment(plan, reasons, ctx.spend.describe()));
  ctx.trace.write({ type: 'note', message: 'checkpoint after planning', detail: reasons });
  return { kind: 'checkpoint', reasons };
}

/** A vague or unbounded task gets questions back, not a guess. */
async function askForInformation(ctx: JobContext, issue: IssueText, questions: string[]): Promise<Outcome> {
  await ctx.end(LABEL_NEEDS_INFO, questionsComment(questions, issue.author));
  ctx.trace.write({ type: 'note', message: 'needs information', detail: questions });
  return { kind: 'needs-info', questions };
}
