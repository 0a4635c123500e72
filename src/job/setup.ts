import { type Budgets, budgetStop, capBudgets } from '../agent/budget.js';
import { repositoryRules } from '../agent/context.js';
import { ModelClient } from '../agent/model.js';
import { priceOf } from '../agent/pricing.js';
import type { Stuck } from '../agent/stuck.js';
import type { Tier } from '../agent/tiers.js';
import { budgetsOf, parseRepoConfig, pathPolicyOf, REPO_CONFIG_PATH, type RepoConfig } from '../config/repo-config.js';
import { type RepoInfo, WRITE_PERMISSIONS } from '../github/facade.js';
import { environmentOf, isUsable } from '../config/environment.js';
import type { InstallNetworkPolicy } from '../sandbox/egress/policy.js';
import { EnvironmentError } from '../sandbox/environment/image-store.js';
import type { JobContext, JobSetup } from './context.js';
import { Escalation } from './endings.js';

const DEFAULT_MAX_ROUNDS = 3;

/**
 * Reads what the job runs under, and refuses to start when it may not: a sender without
 * write access now, a repository over its daily budget, a model without a price.
 */
export async function prepareJob(ctx: JobContext, repo: RepoInfo): Promise<JobSetup> {
  const { gh, deps, job, trace } = ctx;
  // Rules and config come from the default branch, never from a branch anyone can push.
  const readDefault = (p: string) => gh.fileText(p, repo.defaultBranch);
  // Permissions change between the trigger and the start (a queue may be long): the
  // sender must still be able to write, or nothing runs.
  // A CI fix has no person behind it: its authority is the app's own pull request, which a
  // writer's job opened (the kind checks the PR), and its bounds are ci.max_fix_attempts.
  const permission = job.kind === 'ci-fix' ? 'write' : await gh.permission(job.sender);
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
  const { budgets, capped } = capBudgets(budgetsOf(repoConfig), deps.costCaps);
  if (capped.length > 0)
    trace.write({ type: 'note', message: "budgets lowered to the operator's caps", detail: capped });
  await ctx.readSpentToday();
  const overToday = dailyStop(ctx, budgets);
  if (overToday) throw new Escalation(overToday);
  const guard = () => {
    ctx.checkStop();
    return budgetStop(ctx.spend, budgets, ctx.started) ?? dailyStop(ctx, budgets);
  };
  const repoRules = await repositoryRules(readDefault, repoConfig.instructions);
  const environment = await pullEnvironment(ctx, repoConfig, readDefault);
  return {
    repo,
    repoConfig,
    installPolicy,
    budgets,
    guard,
    repoRules,
    model: pricedModel(ctx, repoConfig),
    maxRounds: repoConfig.max_rounds ?? DEFAULT_MAX_ROUNDS,
    pathPolicy: pathPolicyOf(repoConfig),
    ...(environment ? { environment } : {}),
  };
}

/**
 * The repository's environment with its image pulled, before any model call: an image that
 * cannot be had, or a devcontainer this app cannot use, ends the job here at no model cost.
 */
async function pullEnvironment(
  ctx: JobContext,
  repoConfig: RepoConfig,
  read: (p: string) => Promise<string | undefined>,
): Promise<JobSetup['environment']> {
  const spec = await environmentOf(repoConfig, read);
  if (spec === undefined) return undefined;
  if (!isUsable(spec)) throw new EnvironmentError('unsupported', spec.from, spec.problem);
  const { environments, runner } = ctx.deps;
  if (!environments || runner.backend !== 'bwrap')
    throw new EnvironmentError(
      'unsupported',
      spec.image,
      `this worker runs ${runner.backend === 'bwrap' ? 'without image support' : 'without a sandbox (SANDBOX=unsandboxed)'}, so it cannot run commands on an image; ask its operator, or remove the environment from ${spec.from}`,
    );
  await ctx.postStatus({ environment: { image: spec.image, state: 'pulling' } });
  ctx.trace.write({ type: 'note', message: 'pulling the image', detail: { image: spec.image, from: spec.from } });
  const image = await environments.images.pull(spec.image, ctx.abort, ctx.leases);
  ctx.checkStop();
  ctx.trace.write({
    type: 'note',
    message: image.cached ? 'image already unpacked' : 'image pulled',
    detail: { image: image.pinned, bytes: image.bytes },
  });
  return { spec, image };
}

/** Fails closed: a total that is not a number (a damaged or forged Redis value) stops the job. */
function dailyStop(ctx: JobContext, budgets: Budgets): Stuck | undefined {
  const spent = ctx.spentToday;
  if (spent < budgets.dailyCostUsd && spent >= 0) return undefined;
  return {
    reason: 'budget-cost',
    evidence: `this repository has spent $${spent.toFixed(4)} today, its daily budget is $${budgets.dailyCostUsd}`,
  };
}

/** The model client; the repository may pick other models per tier, the key and gateway stay the operator's. */
function pricedModel(ctx: JobContext, repoConfig: RepoConfig): ModelClient {
  const models = { ...ctx.deps.config.models, ...repoConfig.models };
  // A model without a price would be counted at $0: no budget or daily cap could hold.
  const unpriced = (Object.entries(models) as Array<[string, string]>).filter(([, m]) => !priceOf(m));
  if (unpriced.length > 0) {
    const named = unpriced.map(
      ([tier, m]) => `${m} (${tier}${repoConfig.models?.[tier as Tier] ? `, from ${REPO_CONFIG_PATH}` : ''})`,
    );
    throw new Escalation({
      reason: 'unpriced-model',
      evidence: `no price is known for ${named.join(', ')}, so its spend could not be counted or bounded; nothing was run`,
    });
  }
  return new ModelClient({
    apiKey: ctx.deps.config.anthropicApiKey,
    baseURL: ctx.deps.config.anthropicBaseUrl,
    models,
    log: ctx.log,
    spend: ctx.spend,
    trace: ctx.trace,
    signal: ctx.abort,
  });
}
