import { checkPathPolicy } from '../agent/tools/path-policy.js';
import { REPO_CONFIG_PATH, stuckLimitsOf } from '../config/repo-config.js';
import type { EnvironmentSpec } from '../config/environment.js';
import { installNetworkFor } from '../sandbox/egress/policy.js';
import type { ReadyEnvironment } from '../sandbox/environment/environments.js';
import { EnvironmentError } from '../sandbox/environment/image-store.js';
import { onRoot } from '../sandbox/runner.js';
import { dependencyManifests } from '../stages/manifests.js';
import { ensureMirror } from '../sandbox/mirror.js';
import {
  baseRootFiles,
  changedPaths,
  createWorkTree,
  readBaseFile,
  revertPaths,
  type WorkTree,
} from '../sandbox/worktree.js';
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
  /** The repository's image, when it names one: every command of the job runs on it. */
  environment?: WorkspaceEnvironment;
}

/** The environment the job ran on, for the PR body: the image, where it was named, and its setup. */
export interface WorkspaceEnvironment {
  spec: EnvironmentSpec;
  ready: ReadyEnvironment;
  /** The setup commands' results when they ran in this job; none when the set-up environment was reused. */
  setup: CheckResult[];
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
  const environment = await readyEnvironment(ctx, tree, mirrorPath, installNet);
  const runner = environment ? onRoot(deps.runner, environment.ready.root) : deps.runner;
  stageDeps.runner = runner;
  const validateDeps: ValidateDeps = {
    runner,
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
  return { tree, stageDeps, validateDeps, checks, installed, ...(environment ? { environment } : {}) };
}

/**
 * The repository's image, set up for it: its setup commands run once per environment (on a
 * private copy of the image, with the install step's network) and the result is kept for the
 * next job; a failing command ends the job with its output, before any model call of its own.
 */
async function readyEnvironment(
  ctx: JobContext,
  tree: WorkTree,
  mirrorPath: string,
  installNet: ReturnType<typeof installNetworkFor>,
): Promise<WorkspaceEnvironment | undefined> {
  const declared = ctx.prepared.environment;
  const environments = ctx.deps.environments;
  if (!declared || !environments) return undefined;
  const { spec, image } = declared;
  const setup: CheckResult[] = [];
  const inputs = dependencyManifests(await baseRootFiles(tree));
  if (spec.setup.length > 0) await ctx.postStatus({ environment: { image: spec.image, state: 'setting up' } });
  const ready = await environments.ready(
    image,
    { repository: ctx.prepared.repo.cloneUrl, commands: spec.setup, inputs },
    async (root) => {
      const deps: ValidateDeps = {
        runner: onRoot(ctx.deps.runner, root),
        workTree: tree.path,
        sandboxReadOnlyPaths: [mirrorPath],
        trace: ctx.trace,
        stage: 'setup',
        signal: ctx.abort,
        egress: installNet.egress,
      };
      for (const command of spec.setup) {
        const result = await runCheck(deps, { name: 'setup', command, source: 'config', network: installNet.network });
        setup.push(result);
        ctx.checkStop();
        if (!result.ok)
          throw new EnvironmentError(
            'setup-failed',
            spec.image,
            `its setup command \`${command}\` (from ${spec.from}) ${result.timedOut ? 'timed out' : `failed with exit code ${result.exitCode}`}`,
            { command, tail: result.tail },
          );
      }
    },
  );
  await ctx.postStatus({ environment: { image: spec.image, state: 'ready', cached: ready.setup?.cached === true } });
  ctx.trace.write({
    type: 'note',
    message: 'environment ready',
    detail: { image: image.pinned, from: spec.from, setup: ready.setup, ignored: spec.ignored },
  });
  return { spec, ready, setup };
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
