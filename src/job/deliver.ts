import { UnrecoverableError } from 'bullmq';
import { describeTallies, tallyToolCalls } from '../agent/tools/stats.js';
import type { Plan } from '../agent/tools/submit-plan.js';
import type { PullDetail } from '../github/facade.js';
import { isOwnBranch, issueKey } from '../queue/jobs.js';
import type { Outcome } from '../queue/outcome.js';
import { prBody } from '../report/pr-body.js';
import { checksOf, plain, statusComment } from '../report/status.js';
import { commitPaths, committedStat, PushRejectedError, push, type WorkTree } from '../sandbox/worktree.js';
import { type ReviewTask, threadReply } from '../stages/revise.js';
import type { ValidationReport } from '../stages/validate.js';
import type { JobContext } from './context.js';
import { Escalation } from './endings.js';
import type { RoundsResult } from './rounds.js';
import type { Workspace } from './workspace.js';

/** What an issue job delivers: the validated change, and what the PR body tells of it. */
export interface IssueDelivery extends RoundsResult {
  naming: { branch: string; title: string };
  plan: Plan;
  scopeRequests: Array<{ path: string; reason: string }>;
  baseline: ValidationReport;
  /** The issue the commit and the PR close, as GitHub answered it (none for the CLI's local tasks). */
  closes: number | undefined;
  /** The job went on from a plan that waited for a go-ahead: that plan is done with. */
  fromCheckpoint: boolean;
}

/**
 * Deliver, for an issue: commit as the app, push the job's own branch (never forced), open
 * or update its PR, and end the job with the link. Pushing is the job's, never the model's.
 */
export async function deliverPullRequest(ctx: JobContext, ws: Workspace, d: IssueDelivery): Promise<Outcome> {
  const { gh, deps, job } = ctx;
  const { branch, title } = d.naming;
  const { closes } = d;
  await ctx.postStatus({ phase: 'delivering' });
  ctx.checkStop();
  // Pushed before a crash: the branch has the commit; only the PR is left to open.
  let pushed = ctx.saved.pushed?.branch === branch ? ctx.saved.pushed : undefined;
  if (!pushed) {
    const sha = await commitPaths(ws.tree, [...ctx.touched], {
      message: [title, d.finished.summary, ...(closes !== undefined ? [`Closes #${closes}`] : [])].join('\n\n'),
      authorName: deps.bot.name,
      authorEmail: deps.bot.email,
      date: ctx.saved.change?.at,
    });
    if (!sha) throw new Escalation({ reason: 'no-progress', evidence: 'the checks pass but the change is empty' });
    const stat = await committedStat(ws.tree);
    await pushOrEscalate(
      ctx,
      ws.tree,
      branch,
      `the branch \`${branch}\` already has other commits or is protected`,
      'Delete or merge that branch, then re-add the label',
    );
    pushed = { sha, branch, stat };
    await ctx.saveStage('pushed', pushed);
  }
  const { sha, stat } = pushed;
  const pr = await gh.openOrUpdatePull({
    head: branch,
    base: ctx.prepared.repo.defaultBranch,
    title,
    // Marked ready by the web once every check on its head passed.
    draft: ctx.prepared.repoConfig.pull_request?.draft_until_green === true,
    body: prBody({
      closes,
      summary: d.finished.summary,
      acceptanceCriteria: ctx.asked,
      plan: d.plan,
      scopeRequests: d.scopeRequests,
      toolCalls: describeTallies(tallyToolCalls(ctx.toolCalls)),
      install: ws.installed,
      environment: ws.environment && {
        image: ws.environment.spec.image,
        pinned: ws.environment.ready.image.pinned,
        from: ws.environment.spec.from,
        setup: ws.environment.setup,
        reused: ws.environment.ready.setup?.cached === true,
        ignored: ws.environment.spec.ignored,
      },
      baseline: d.baseline,
      final: d.report,
      diffStat: stat,
      spend: ctx.spend.describe(),
      rounds: d.rounds,
    }),
  });
  ctx.status.spend = ctx.spend.describe();
  await ctx.end(undefined, statusComment(Object.assign(ctx.status, { phase: 'done', pullUrl: pr.htmlUrl })));
  ctx.trace.write({ type: 'note', message: 'delivered', detail: { pr: pr.htmlUrl, sha } });
  if (d.fromCheckpoint) await deps.planStore?.clear(issueKey(job));
  return { kind: 'pr', url: pr.htmlUrl, number: pr.number, created: pr.created };
}

/**
 * Deliver, for a revision: a new commit on the PR's branch (never a force push), a reply
 * in each review thread, and the revision's summary on the status comment.
 */
export async function deliverRevision(
  ctx: JobContext,
  pull: PullDetail,
  task: ReviewTask,
  { report, finished }: Pick<RoundsResult, 'report' | 'finished'>,
): Promise<Outcome> {
  const { deps } = ctx;
  await ctx.postStatus({ phase: 'delivering' });
  ctx.checkStop();
  let sha = ctx.saved.pushed?.branch === pull.headRef ? ctx.saved.pushed.sha : null;
  if (!ctx.saved.pushed) {
    sha = await commitPaths(ctx.wt!, [...ctx.touched], {
      message: `Address review on #${pull.number}\n\n${defuseClosing(finished.summary)}`,
      authorName: deps.bot.name,
      authorEmail: deps.bot.email,
      date: ctx.saved.change?.at,
    });
    if (sha) {
      await pushOrEscalate(
        ctx,
        ctx.wt!,
        pull.headRef,
        `\`${pull.headRef}\` moved while the revision ran`,
        'Comment `/agent retry` to revise the branch as it is now',
      );
      await ctx.saveStage('pushed', { sha, branch: pull.headRef, stat: '' });
    }
  }
  const outcomes = new Map((finished.threads ?? []).map((t) => [t.comment_id, t]));
  const replied = new Set(ctx.saved.replied ?? []);
  for (const t of task.threads) {
    if (replied.has(t.commentId)) continue;
    await ctx.thread.reply(pull.number, t.commentId, threadReply(outcomes.get(t.commentId), sha));
    replied.add(t.commentId);
    await ctx.saveStage('replied', [...replied]);
  }
  ctx.status.spend = ctx.spend.describe();
  Object.assign(ctx.status, { phase: 'done', checks: checksOf(report), pullUrl: pull.htmlUrl });
  const revision = `**Revision${sha ? ` ${sha.slice(0, 7)}` : ''}:** ${plain(finished.summary, 1_000)}`;
  await ctx.end(undefined, `${statusComment(ctx.status)}\n\n${revision}`);
  ctx.trace.write({ type: 'note', message: 'revised', detail: { sha, threads: task.threads.length } });
  return { kind: 'revised', sha, threads: task.threads.length };
}

/**
 * Deliver, for a CI fix: one new commit on the PR's branch (never a force push), named for
 * the checks it fixes; CI on the new head decides what happens next.
 */
export async function deliverCiFix(
  ctx: JobContext,
  pull: PullDetail,
  checks: string[],
  { report, finished }: Pick<RoundsResult, 'report' | 'finished'>,
): Promise<string | null | 'moved'> {
  const { deps } = ctx;
  await ctx.postStatus({ phase: 'delivering' });
  ctx.checkStop();
  if (ctx.saved.pushed?.branch === pull.headRef) return ctx.saved.pushed.sha;
  // A check's name is CI's text: one line, and no `#n` or `@login` that GitHub would act on in a commit.
  const first =
    (checks[0] ?? 'CI')
      .replace(/[\s#@]+/g, ' ')
      .trim()
      .slice(0, 40) || 'CI';
  const named = `${first}${checks.length > 1 ? ` and ${checks.length - 1} more` : ''}`;
  const summary = defuseClosing(finished.summary);
  const firstLine = summary.split('\n')[0]!.trim();
  const subject = `Fix ${named}: ${firstLine}`;
  const sha = await commitPaths(ctx.wt!, [...ctx.touched], {
    message: `${subject.length > 72 ? `${subject.slice(0, 71).trimEnd()}…` : subject}\n\n${summary}`,
    authorName: deps.bot.name,
    authorEmail: deps.bot.email,
    date: ctx.saved.change?.at,
  });
  if (!sha) return null;
  assertOwnBranch(ctx, pull.headRef);
  try {
    await push(ctx.wt!, {
      remoteUrl: ctx.prepared.repo.cloneUrl,
      branch: pull.headRef,
      token: await ctx.gh.gitToken(),
    });
  } catch (err) {
    // Someone pushed meanwhile: never forced; CI on their head decides.
    if (err instanceof PushRejectedError) return 'moved';
    throw err;
  }
  await ctx.saveStage('pushed', { sha, branch: pull.headRef, stat: '' });
  Object.assign(ctx.status, { checks: checksOf(report) });
  return sha;
}

/**
 * A model's summary in a commit on the PR's branch, written after reading a reviewer's or
 * CI's text: a closing keyword in it ("Fixes #12") would close that issue when the PR merges.
 * The number is kept, in parentheses, which GitHub does not read as one.
 */
export function defuseClosing(text: string): string {
  return text.replace(/\b(close[sd]?|fix(?:e[sd])?|resolve[sd]?)(\s*:?\s+)([\w.-]+\/[\w.-]+)?#(\d+)/gi, '$1$2($3#$4)');
}

/** Pushes the job's own branch; a rejected push (moved, protected) ends in an escalation, never a force push. */
async function pushOrEscalate(ctx: JobContext, tree: WorkTree, branch: string, what: string, next: string) {
  assertOwnBranch(ctx, branch);
  try {
    await push(tree, { remoteUrl: ctx.prepared.repo.cloneUrl, branch, token: await ctx.gh.gitToken() });
  } catch (err) {
    if (!(err instanceof PushRejectedError)) throw err;
    throw new Escalation({
      reason: 'push-rejected',
      evidence: `${what} (${err.detail}); the change was not force-pushed. ${next}`,
    });
  }
}

/** The app never pushes to a ref that is not this job's own, whatever a stored record says. */
export function assertOwnBranch(ctx: JobContext, branch: string): void {
  const { job } = ctx;
  if (!isOwnBranch(job, branch))
    throw new UnrecoverableError(
      `refusing to push ${JSON.stringify(branch)}: not a branch of ${job.kind === 'issue' ? `issue #${job.issueNumber}` : 'the app'}`,
    );
}
