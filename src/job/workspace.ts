import { checkPathPolicy } from '../agent/tools/path-policy.js';
import { REPO_CONFIG_PATH, stuckLimitsOf } from '../config/repo-config.js';
import type { EnvironmentSpec } from '../config/environment.js';
import { installNetworkFor } from '../sandbox/egress/policy.js';
import type { ReadyEnvironment } from '../sandbox/environment/environments.js';
import { EnvironmentError } from '../sandbox/environment/image-store.js';
import { onRoot, withEnv } from '../sandbox/runner.js';
import { DepsCache } from '../sandbox/environment/deps-cache.js';
import { toolchainEnv } from '../stages/toolchains.js';
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
import { onPullRequest } from '../queue/jobs.js';
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
  // A revision's tree holds the agent's and contributors' commits.
  const installNet = installNetworkFor(installPolicy, repoConfig, { changesInTree: onPullRequest(ctx.job.kind) });
  for (const message of installNet.notes) trace.write({ type: 'note', message });
  const rootFiles = await baseRootFiles(tree);
  const environment = await readyEnvironment(ctx, tree, mirrorPath, installNet, rootFiles);
  const { install, checks, toolchain } = await detectChecks((p) => readBaseFile(tree, p), repoConfig, [
    ...rootFiles.keys(),
  ]);
  if (checks.length === 0) {
    throw new Escalation({
      reason: 'no-checks',
      evidence: `no test, lint or typecheck command was found; name them under commands in ${REPO_CONFIG_PATH}`,
    });
  }
  // Every command of the job: on the image, with the toolchain's variables (a virtual
  // environment active, module caches in the tree).
  const tool = toolchainEnv(toolchain, tree.path);
  const runner = withEnv(
    environment ? onRoot(deps.runner, environment.ready.root) : deps.runner,
    tool.env,
    tool.pathPrefix,
  );
  const stageDeps: StageDeps = {
    model,
    runner,
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
  const validateDeps: ValidateDeps = {
    runner,
    workTree: tree.path,
    sandboxReadOnlyPaths: [mirrorPath],
    trace,
    stage: 'validate',
    signal: ctx.abort,
    egress: installNet.egress,
  };
  if (install) install.network = installNet.network;
  const installed = install
    ? await installDependencies(ctx, validateDeps, install, {
        outputs: toolchain?.outputs ?? [],
        environment: environment?.ready.setup?.key ?? environment?.ready.image.digest ?? hostSystem(),
        manifests: dependencyManifests(rootFiles),
      })
    : undefined;
  ctx.firewall = installed?.egress;
  if (installed && !installed.ok)
    throw new Escalation(
      { reason: 'install-failed', evidence: 'the install command failed before any change' },
      installed,
    );
  // What this job added may take the caches over their limit: the oldest entries no job holds go.
  await deps.environments?.prune();
  return { tree, stageDeps, validateDeps, checks, installed, ...(environment ? { environment } : {}) };
}

/**
 * Whose files a setup or an install ran on, for the caches' keys: the repository, and for a
 * tree that is not its default branch's (a revision's, which holds the agent's and
 * contributors' commits) this job alone, so what ran there is never a later job's.
 */
function treeIdentity(ctx: JobContext): string {
  const repo = ctx.prepared.repo.cloneUrl;
  return onPullRequest(ctx.job.kind) ? `${repo} (the tree of ${ctx.key})` : repo;
}

/** The worker's own system, as far as an install depends on it. */
function hostSystem(): string {
  return `host ${process.platform} ${process.arch} node ${process.version}`;
}

/**
 * The install, or what the same install left for an earlier job of this repository on the
 * same environment and manifests, copied into the tree; a successful install is kept.
 */
async function installDependencies(
  ctx: JobContext,
  validateDeps: ValidateDeps,
  install: Check,
  on: { outputs: string[]; environment: string; manifests: Record<string, string> },
): Promise<CheckResult> {
  const cache = ctx.deps.environments?.deps;
  const tree = ctx.wt!;
  const key =
    cache && on.outputs.length > 0
      ? DepsCache.key({
          repository: treeIdentity(ctx),
          environment: on.environment,
          command: install.command,
          manifests: on.manifests,
        })
      : undefined;
  return ctx.stage('install', async () => {
    const started = Date.now();
    const restored = key ? await cache!.restore(key, tree.path) : undefined;
    if (restored) {
      ctx.trace.write({ type: 'note', message: 'install reused', detail: { key, ...restored } });
      return reusedInstall(install, Date.now() - started);
    }
    const result = await runCheck({ ...validateDeps, stage: 'install' }, install);
    if (result.ok && key) {
      const kept = await cache!.save(key, tree.path, on.outputs);
      if (kept) ctx.trace.write({ type: 'note', message: 'install kept', detail: { key, ...kept } });
    }
    return result;
  });
}

function reusedInstall(install: Check, durationMs: number): CheckResult {
  return {
    name: 'install',
    command: install.command,
    ok: true,
    exitCode: 0,
    timedOut: false,
    durationMs,
    tail: 'reused what the same install left for an earlier job',
    output: '',
    reused: true,
  };
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
  rootFiles: ReadonlyMap<string, string>,
): Promise<WorkspaceEnvironment | undefined> {
  const declared = ctx.prepared.environment;
  const environments = ctx.deps.environments;
  if (!declared || !environments) return undefined;
  const { spec, image } = declared;
  const setup: CheckResult[] = [];
  const inputs = dependencyManifests(rootFiles);
  if (spec.setup.length > 0) await ctx.postStatus({ environment: { image: spec.image, state: 'setting up' } });
  const ready = await environments.ready(
    image,
    { repository: treeIdentity(ctx), commands: spec.setup, inputs },
    async (root) => {
      const deps: ValidateDeps = {
        runner: onRoot(ctx.deps.runner, root),
        workTree: tree.path,
        sandboxReadOnlyPaths: [mirrorPath],
        trace: ctx.trace,
        stage: 'setup',
        // Setup comes before any model call, where the budget is checked: the job's time bounds it here.
        timeoutMs: Math.max(1000, ctx.started + ctx.prepared.budgets.maxMinutes * 60_000 - Date.now()),
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
            `(from ${spec.from}) ${result.timedOut ? 'timed out' : `failed with exit code ${result.exitCode}`}`,
            { command, tail: result.tail },
          );
      }
    },
    ctx.leases,
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
