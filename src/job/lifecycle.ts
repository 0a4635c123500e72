import { ModelCallAborted } from '../agent/model.js';
import { REPO_CONFIG_PATH, RepoConfigError } from '../config/repo-config.js';
import { LABEL_STUCK, type RepoInfo } from '../github/facade.js';
import type { JobData } from '../queue/jobs.js';
import type { Outcome } from '../queue/outcome.js';
import { configErrorComment } from '../report/config-error.js';
import { statusComment } from '../report/status.js';
import { JobContext, type JobDeps } from './context.js';
import { Stopped, toEscalation } from './endings.js';
import { escalate } from './escalate.js';
import { JOB_KINDS, type JobKind } from './kinds/index.js';
import { prepareJob } from './setup.js';

/**
 * One job, whatever its kind: open the status comment and the labels, read the repository
 * and its budgets, run the kind's stages, and end in exactly one way (delivered, questions,
 * a plan waiting for a go-ahead, stopped, a config error, or an escalation). A shutdown
 * (`Interrupted`), an infrastructure error and an escalation that could not be reported
 * (`UnrecoverableError`) leave by throwing, for the worker to resume, retry or report.
 * Delivering is the job's, never the model's: no tool reaches GitHub and no token enters the sandbox.
 */
export async function runJob(job: JobData, deps: JobDeps): Promise<Outcome> {
  const kind = JOB_KINDS[job.kind];
  const ctx = new JobContext(job, deps, kind.firstPhase);
  await ctx.open();
  const repo = await ctx.gh.repoInfo();
  await ctx.thread.begin();
  try {
    ctx.setup = await prepareJob(ctx, repo);
    return await kind.run(ctx);
  } catch (caught) {
    return await endOnError(ctx, kind, caught, repo);
  } finally {
    await ctx.close();
  }
}

/** How a thrown stop, config error or escalation ends the job; anything else is thrown on. */
async function endOnError(ctx: JobContext, kind: JobKind, caught: unknown, repo: RepoInfo): Promise<Outcome> {
  // A model call cut short by the stop or the shutdown ends as that stop or shutdown.
  const err = caught instanceof ModelCallAborted ? (ctx.stopRequested() ?? caught) : caught;
  if (err instanceof Stopped) return await endStopped(ctx, err);
  if (err instanceof RepoConfigError) return await endOnConfigError(ctx, err, repo);
  const esc = toEscalation(err);
  if (!esc) throw err;
  const outcome = await escalate(ctx, esc, kind.keepsWip);
  await kind.afterEscalation?.(ctx);
  return outcome;
}

async function endStopped(ctx: JobContext, stop: Stopped): Promise<Outcome> {
  ctx.log.info({ by: stop.by }, 'stopped on request');
  ctx.trace.write({ type: 'note', message: 'stopped', detail: { by: stop.by } });
  const { status, spend } = ctx;
  Object.assign(status, {
    stoppedAt: status.phase,
    phase: 'stopped',
    stoppedBy: stop.by,
    spend: spend.calls > 0 ? spend.describe() : undefined,
  });
  await ctx.end(undefined, statusComment(status));
  return { kind: 'stopped', by: stop.by };
}

/** Nothing ran: the file is explained, the way the web explains it. */
async function endOnConfigError(ctx: JobContext, err: RepoConfigError, repo: RepoInfo): Promise<Outcome> {
  await ctx.end(
    LABEL_STUCK,
    configErrorComment(err, {
      ref: repo.defaultBranch,
      fileUrl: `${repo.htmlUrl}/blob/${repo.defaultBranch}/${REPO_CONFIG_PATH}`,
    }),
  );
  return { kind: 'invalid-config', problems: err.problems.length };
}
