import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { authEnv, git, GitError } from './git.js';
import { assertNoTokenInConfig } from './mirror.js';
import { withRetries } from './retry.js';

/** A job's own checkout, a `--shared` clone of the mirror (its objects come from the mirror). */
export interface WorkTree {
  path: string;
  mirrorPath: string;
  baseSha: string;
  branch: string;
  remove(): Promise<void>;
}

export interface CreateWorkTreeOptions {
  dataDir: string;
  mirrorPath: string;
  jobKey: string;
  baseBranch: string;
  branch: string;
}

const PUSH_ATTEMPTS = 3;

/** Directory name for a job key: readable, but collision-free thanks to the hash suffix. */
export function safeJobDir(jobKey: string): string {
  const readable = jobKey.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[.-]+/, '').slice(0, 80);
  const hash = createHash('sha256').update(jobKey).digest('hex').slice(0, 10);
  return readable ? `${readable}-${hash}` : hash;
}

async function assertBranchName(name: string): Promise<void> {
  // A leading '-' would be read as an option; check-ref-format covers the rest.
  if (name.startsWith('-')) throw new Error(`invalid branch name ${JSON.stringify(name)}`);
  try {
    await git(['check-ref-format', '--branch', name], { cwd: os.tmpdir() });
  } catch {
    throw new Error(`invalid branch name ${JSON.stringify(name)}`);
  }
}

export async function createWorkTree(opts: CreateWorkTreeOptions): Promise<WorkTree> {
  await assertBranchName(opts.baseBranch);
  await assertBranchName(opts.branch);
  const root = path.join(path.resolve(opts.dataDir), 'worktrees');
  const wtPath = path.join(root, safeJobDir(opts.jobKey));
  await mkdir(root, { recursive: true });
  // A leftover from a crashed attempt of the same job must not leak into this one.
  await rm(wtPath, { recursive: true, force: true });
  await git(['clone', '--shared', '--no-checkout', '--', opts.mirrorPath, wtPath], { cwd: root });
  await git(['checkout', '-q', '-b', opts.branch, `refs/remotes/origin/${opts.baseBranch}`], { cwd: wtPath });
  const baseSha = (await git(['rev-parse', 'HEAD'], { cwd: wtPath })).stdout.trim();
  await assertNoTokenInConfig(path.join(wtPath, '.git'), undefined);
  return {
    path: wtPath,
    mirrorPath: opts.mirrorPath,
    baseSha,
    branch: opts.branch,
    remove: () => rm(wtPath, { recursive: true, force: true }),
  };
}

/**
 * Runs fn with a throwaway index holding the whole working tree (untracked files
 * included), so diffs see new files without touching the real index later commits use.
 */
async function withSnapshotIndex<T>(wt: WorkTree, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'issue-agent-index-'));
  const env = { GIT_INDEX_FILE: path.join(dir, 'index') };
  try {
    await git(['read-tree', wt.baseSha], { cwd: wt.path, env });
    await git(['add', '-A'], { cwd: wt.path, env });
    return await fn(env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv', '--ignore-submodules=all'];

/** The whole change since the base commit: commits, staged, unstaged and untracked files. */
export function diff(wt: WorkTree): Promise<string> {
  return withSnapshotIndex(wt, async (env) => (await git(['diff', '--cached', ...DIFF_FLAGS, wt.baseSha, '--'], { cwd: wt.path, env })).stdout);
}

export function diffStat(wt: WorkTree): Promise<string> {
  return withSnapshotIndex(wt, async (env) => (await git(['diff', '--cached', '--stat', ...DIFF_FLAGS, wt.baseSha, '--'], { cwd: wt.path, env })).stdout);
}

/** Commits everything in the work tree; null when there is nothing to commit. */
export async function commitAll(wt: WorkTree, opts: { message: string; authorName: string; authorEmail: string }): Promise<string | null> {
  await git(['add', '-A'], { cwd: wt.path });
  try {
    await git(['diff', '--cached', '--quiet', '--ignore-submodules=all'], { cwd: wt.path });
    return null;
  } catch (err) {
    if (!(err instanceof GitError) || err.exitCode !== 1) throw err;
  }
  // Identity per commit, in env: nothing is written to the clone's config.
  const env = {
    GIT_AUTHOR_NAME: opts.authorName,
    GIT_AUTHOR_EMAIL: opts.authorEmail,
    GIT_COMMITTER_NAME: opts.authorName,
    GIT_COMMITTER_EMAIL: opts.authorEmail,
  };
  await git(['commit', '-q', '--no-verify', '-F', '-'], { cwd: wt.path, env, input: opts.message });
  return (await git(['rev-parse', 'HEAD'], { cwd: wt.path })).stdout.trim();
}

function isRejection(err: unknown): boolean {
  return err instanceof GitError && /\[rejected\]|non-fast-forward|fetch first|\[remote rejected\]|protected branch|permission|403|denied/i.test(err.stderrTail);
}

/** The remote refused the push (the branch has other commits, or protection): retrying will not help. */
export class PushRejectedError extends Error {
  constructor(
    readonly branch: string,
    readonly detail: string,
  ) {
    super(`the push to ${branch} was rejected: ${detail}`);
    this.name = 'PushRejectedError';
  }
}

/** Pushes HEAD to `branch` on the remote; never forced, so someone else's commits are never overwritten. */
export async function push(wt: WorkTree, opts: { remoteUrl: string; branch: string; token?: string; retryDelayMs?: number }): Promise<void> {
  await assertBranchName(opts.branch);
  const env = opts.token ? authEnv(opts.token, /^https?:\/\//i.test(opts.remoteUrl) ? opts.remoteUrl : undefined) : {};
  try {
    await withRetries(
      () => git(['push', '--no-verify', '--', opts.remoteUrl, `HEAD:refs/heads/${opts.branch}`], { cwd: wt.path, env }),
      { attempts: PUSH_ATTEMPTS, baseDelayMs: opts.retryDelayMs ?? 1_000, retryable: (err) => !isRejection(err) },
    );
  } catch (err) {
    if (isRejection(err)) throw new PushRejectedError(opts.branch, (err as GitError).stderrTail.trim().split('\n').slice(-3).join(' '));
    throw err;
  }
  await assertNoTokenInConfig(path.join(wt.path, '.git'), opts.token);
}
