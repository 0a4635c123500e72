import { checkPathPolicy } from '../agent/tools/path-policy.js';
import { REPO_CONFIG_PATH, stuckLimitsOf } from '../config/repo-config.js';
import { installNetworkFor } from '../sandbox/egress/policy.js';
import { ensureMirror } from '../sandbox/mirror.js';
import { changedPaths, createWorkTree, readBaseFile, revertPaths, type WorkTree } from '../sandbox/worktree.js';
import type { StageDeps } from '../stages/types.js';
import { type CheckResult, type Check, detectChecks, runCheck, type ValidateDeps } from '../stages/validate.js';
import type { JobContext } from './context.js';
import { Escalation } from './endings.js';

/** A work tree with the repository's checks found and installed: where code ⇄ validate runs. */
export interface Workspace {
  tree: WorkTree;
  stageDeps: StageDeps;
  validateDeps: ValidateDeps;
  checks: Check[];
  installed: CheckResult | undefined;
}

/** A work tree on `branch` (made from `base`), with the checks found and installed. */
export async function openWorkspace(ctx: JobContext, base: string, branch: string): Promise<Workspace> {
  const { deps, trace, log } = ctx;
  const { repo, repoConfig, installPolicy, model, guard } = ctx.prepared;
  const mirrorPath = await ensureMirror({
    dataDir: deps.config.dataDir,
    cloneUrl: repo.cloneUrl,
    token: await ctx.gh.gitToken(),
    log,
  });
  // A resumed change goes back onto the commit it was made on, even if the branch moved
  // since (or is our own pushed commit): the same change then makes the same commit.
  const tree = await createWorkTree({
    dataDir: deps.config.dataDir,
    mirrorPath,
    jobKey: ctx.key,
    baseBranch: base,
    branch,
    baseSha: ctx.saved.change?.baseSha,
  });
  ctx.wt = tree;
  trace.write({ type: 'note', message: 'work tree ready', detail: { branch, base, baseSha: tree.baseSha } });
  const stageDeps: StageDeps = {
    model,
    runner: deps.runner,
    workTree: tree.path,
    sandboxReadOnlyPaths: [mirrorPath],
    trace,
    log,
    onToolCall: ctx.onToolCall,
    guard,
    stuckLimits: stuckLimitsOf(repoConfig),
    pathPolicy: ctx.prepared.pathPolicy,
    signal: ctx.abort,
  };
  // A revision's tree holds the agent's and contributors' commits.
  const installNet = installNetworkFor(installPolicy, repoConfig, { changesInTree: ctx.job.kind === 'revise' });
  for (const message of installNet.notes) trace.write({ type: 'note', message });
  const validateDeps: ValidateDeps = {
    runner: deps.runner,
    workTree: tree.path,
    sandboxReadOnlyPaths: [mirrorPath],
    trace,
    stage: 'validate',
    signal: ctx.abort,
    egress: installNet.egress,
  };
  const { install, checks } = await detectChecks((p) => readBaseFile(tree, p), repoConfig);
  if (install) install.network = installNet.network;
  if (checks.length === 0) {
    throw new Escalation({
      reason: 'no-checks',
      evidence: `no test, lint or typecheck command was found; name them under commands in ${REPO_CONFIG_PATH}`,
    });
  }
  const installed = install
    ? await ctx.stage('install', () => runCheck({ ...validateDeps, stage: 'install' }, install))
    : undefined;
  ctx.firewall = installed?.egress;
  if (installed && !installed.ok)
    throw new Escalation(
      { reason: 'install-failed', evidence: 'the install command failed before any change' },
      installed,
    );
  return { tree, stageDeps, validateDeps, checks, installed };
}

/**
 * The repository's `paths` rule holds for the whole change, not only for the file tools:
 * a command (a formatter, `sed`, a lint fix) that touched a denied file is undone.
 */
export async function enforcePaths(ctx: JobContext, tree: WorkTree): Promise<void> {
  const policy = ctx.setup?.pathPolicy;
  if (!policy || (policy.allow.length === 0 && policy.deny.length === 0)) return;
  const denied = (await changedPaths(tree, [...ctx.touched])).filter((p) => !checkPathPolicy(policy, p).ok);
  if (denied.length === 0) return;
  await revertPaths(tree, denied);
  for (const p of denied) ctx.touched.delete(p);
  ctx.tried.push(
    `undid changes to ${denied.join(', ')}: the paths rule of ${REPO_CONFIG_PATH} does not let the agent change them`,
  );
  ctx.trace.write({ type: 'note', message: 'undid changes to denied paths', detail: denied });
}
