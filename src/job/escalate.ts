import { UnrecoverableError } from 'bullmq';
import { LABEL_STUCK } from '../github/facade.js';
import type { Outcome } from '../queue/outcome.js';
import { escalationComment } from '../report/escalation.js';
import { commitPaths, headIfCommitted, push } from '../sandbox/worktree.js';
import { notAddressedReply } from '../stages/revise.js';
import { failureExcerpt } from '../stages/validate.js';
import type { JobContext } from './context.js';
import { assertOwnBranch } from './deliver.js';
import type { Escalation } from './endings.js';
import { enforcePaths } from './workspace.js';

/**
 * Escalate: the job stops and says so, with what was asked and tried, where it stuck, the
 * files touched and (where the repository wants it) the work pushed to a WIP branch.
 */
export async function escalate(ctx: JobContext, esc: Escalation, keepsWip: boolean): Promise<Outcome> {
  ctx.log.info({ reason: esc.stuck.reason, evidence: esc.stuck.evidence }, 'escalating');
  ctx.trace.write({ type: 'note', message: 'escalated', detail: esc.stuck });
  await report(ctx, esc, keepsWip).catch((reportErr: unknown) => {
    // The work is over; running it again would not help. The worker's final handler
    // tries once more to say so on the issue.
    throw new UnrecoverableError(
      `could not report the escalation (${esc.stuck.reason}): ${reportErr instanceof Error ? reportErr.message : String(reportErr)}`,
    );
  });
  return {
    kind: 'stuck',
    reason: esc.stuck.reason,
    evidence: esc.stuck.evidence,
    failingCommand: esc.failure?.command,
  };
}

/** Pushes what there is to a work-in-progress branch, replies in the review threads, then posts the report. */
async function report(ctx: JobContext, esc: Escalation, keepsWip: boolean): Promise<void> {
  const wip = keepsWip ? await pushWip(ctx, esc) : undefined;
  // One reply per review thread, saying why nothing was done for it.
  for (const t of ctx.reviewThreads) {
    await ctx.thread
      .reply(ctx.job.issueNumber, t.commentId, notAddressedReply(esc.stuck.reason))
      .catch((err: unknown) => ctx.log.warn({ err }, 'could not reply in a review thread'));
  }
  await ctx.end(
    LABEL_STUCK,
    escalationComment({
      asked: ctx.asked,
      tried: ctx.tried,
      reason: esc.stuck.reason,
      evidence: esc.stuck.evidence,
      failingCommand: esc.failure?.command,
      failureExcerpt: esc.failure ? failureExcerpt(esc.failure) : undefined,
      filesTouched: [...ctx.touched].sort(),
      ...(ctx.firewall ? { firewall: ctx.firewall } : {}),
      wip,
      spend: ctx.spendFigures(),
      kind: ctx.job.kind,
    }),
  );
}

/**
 * The stopped work on `agent/wip/…`, when there is a work tree with changes. A revision never
 * pushes half-done work (the PR's branch is what reviewers read); an issue's only where the
 * repository asks, since a pushed branch runs its push workflows.
 */
async function pushWip(ctx: JobContext, esc: Escalation): Promise<{ branch: string; url: string } | undefined> {
  const { wt, job, setup } = ctx;
  if (!wt || ctx.touched.size === 0 || !setup) return undefined;
  // `push_wip_branch` of the repository's config, or the CLI's local branches.
  if (ctx.deps.alwaysKeepWip !== true && setup.repoConfig.push_wip_branch !== true) return undefined;
  const { repo } = setup;
  const wipBranch = `agent/wip/issue-${job.issueNumber}-attempt-${job.attempt}`;
  try {
    // A change that passed the checks may already be committed (a rejected push).
    await enforcePaths(ctx, wt);
    const sha =
      (await commitPaths(wt, [...ctx.touched], {
        message: `WIP: ${ctx.asked[0] ?? ctx.key}\n\nStopped: ${esc.stuck.reason}`,
        authorName: ctx.deps.bot.name,
        authorEmail: ctx.deps.bot.email,
      })) ?? (await headIfCommitted(wt));
    if (!sha) return undefined;
    assertOwnBranch(ctx, wipBranch);
    await push(wt, { remoteUrl: repo.cloneUrl, branch: wipBranch, token: await ctx.gh.gitToken() });
    return { branch: wipBranch, url: `${repo.htmlUrl}/tree/${wipBranch}` };
  } catch (err) {
    ctx.log.warn({ err }, 'could not push the work-in-progress branch');
    return undefined;
  }
}
