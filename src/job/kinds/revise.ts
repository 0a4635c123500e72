import path from 'node:path';
import type { IssueText } from '../../agent/context.js';
import { type PullDetail, WRITE_PERMISSIONS } from '../../github/facade.js';
import { issueOfBranch } from '../../queue/jobs.js';
import type { ReviewTask } from '../../stages/revise.js';
import type { JobContext } from '../context.js';
import { deliverRevision } from '../deliver.js';
import { Escalation } from '../endings.js';
import { codeValidate } from '../rounds.js';
import { openWorkspace } from '../workspace.js';
import type { JobKind } from './kind.js';

/** Review feedback on the app's own PR: code ⇄ validate on its branch → push + a reply per thread, or escalate. */
export const reviseJob: JobKind = {
  firstPhase: 'coding',
  // A revision never pushes half-done work: the PR's branch is what reviewers read.
  keepsWip: false,
  async run(ctx) {
    const pull = await revisablePull(ctx);
    const { task, reviews } = await reviewTask(ctx, pull);
    ctx.reviewThreads = task.threads;
    ctx.asked = [
      ...task.notes.map((n) => `${n.author}: ${n.body.split('\n')[0]}`),
      ...task.threads.map((t) => `${t.path}${t.line ? `:${t.line}` : ''}: ${t.body.split('\n')[0]}`),
    ];
    await ctx.postStatus({ reviewCount: reviews || undefined, pullUrl: pull.htmlUrl });
    const issue = await linkedIssue(ctx, pull);
    // Pushed before a crash: the branch already holds the revision; only the replies are left.
    const { saved } = ctx;
    const pushedChange =
      saved.pushed?.branch === pull.headRef && saved.change?.validated && saved.change.report
        ? saved.change
        : undefined;
    const revised = pushedChange
      ? { report: pushedChange.report!, finished: { summary: pushedChange.summary, threads: pushedChange.threads } }
      : await codeValidate(ctx, await openWorkspace(ctx, pull.headRef, pull.headRef), {
          issue,
          review: task,
          editable: new Set(
            [...(await ctx.gh.pullFiles(pull.number)), ...task.threads.map((t) => t.path)].map((f) =>
              path.normalize(f),
            ),
          ),
          scopeRequests: [],
        });
    return await deliverRevision(ctx, pull, task, revised);
  },
};

/** Only open pull requests on the app's own `agent/` branches of this repository are revised. */
export async function revisablePull(ctx: JobContext): Promise<PullDetail> {
  const pull = await ctx.gh.pull(ctx.job.issueNumber);
  ctx.asked = [`review feedback on #${pull.number}`];
  if (pull.state !== 'open' || !pull.sameRepo || !pull.headRef.startsWith('agent/')) {
    throw new Escalation({
      reason: 'not-revisable',
      evidence: `#${pull.number} is ${pull.state}${pull.sameRepo ? '' : ' and comes from a fork'}; only open pull requests on the app's own agent/ branches are revised`,
    });
  }
  return pull;
}

/** The review feedback this job addresses, taken from the queue once: review bodies, retry notes, line comments. */
async function reviewTask(ctx: JobContext, pull: PullDetail): Promise<{ task: ReviewTask; reviews: number }> {
  const { gh, job } = ctx;
  const feedback = (await ctx.deps.feedback?.()) ?? [];
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
  return { task, reviews: feedback.filter((f) => f.reviewId !== undefined).length };
}

/** The issue behind the PR is context; from someone without write access it is marked untrusted. */
export async function linkedIssue(ctx: JobContext, pull: PullDetail): Promise<IssueText> {
  const { gh, job } = ctx;
  const linked = issueOfBranch(pull.headRef);
  const found = linked ? await gh.issue(linked).catch(() => undefined) : undefined;
  if (!found) return { number: pull.number, title: pull.title, body: '', author: job.sender, authorIsWriter: true };
  return {
    ...found,
    authorIsWriter: found.author === job.sender || WRITE_PERMISSIONS.has(await gh.permission(found.author)),
  };
}
