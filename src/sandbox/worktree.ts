import { createHash } from 'node:crypto';
import { appendFile, lstat, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { sanitise } from '../util/sanitise.js';
import { authEnv, git, GitError } from './git.js';
import { assertNoTokenInConfig } from './mirror.js';
import { withRetries } from './retry.js';
import { removeTree } from './host-tree.js';

/** A job's own checkout, a `--shared` clone of the mirror (its objects come from the mirror). */
/** Where installs put what they fetch, relative to the work tree (stages/toolchains.ts); git never sees it. */
export const TOOL_DIR = '.issue-agent';

function isUnder(dir: string, rel: string): boolean {
  const first = path.normalize(rel).split(path.sep)[0];
  return first === dir;
}

export interface WorkTree {
  path: string;
  mirrorPath: string;
  baseSha: string;
  branch: string;
  /** Digest of the files in .git that could make the host's git run code; see assertGitIntact. */
  gitControlDigest: string;
  remove(): Promise<void>;
}

export interface CreateWorkTreeOptions {
  dataDir: string;
  mirrorPath: string;
  jobKey: string;
  baseBranch: string;
  branch: string;
  /** Start from this commit instead of the base branch's head (a resumed job's own base). */
  baseSha?: string;
}

const PUSH_ATTEMPTS = 3;

/** Directory name for a job key: readable, but collision-free thanks to the hash suffix. */
export function safeJobDir(jobKey: string): string {
  const readable = jobKey
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 80);
  const hash = createHash('sha256').update(jobKey).digest('hex').slice(0, 10);
  return readable ? `${readable}-${hash}` : hash;
}

/**
 * Git's rules for a branch name (`git check-ref-format --branch`), checked here rather than
 * by spawning git twice per work tree; a leading '-' would also be read as an option.
 */
export function isValidBranchName(name: string): boolean {
  if (
    name === '' ||
    name === '@' ||
    name.startsWith('-') ||
    name.startsWith('/') ||
    name.endsWith('/') ||
    name.endsWith('.')
  )
    return false;
  if (name.includes('..') || name.includes('//') || name.includes('@{')) return false;
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(name)) return false;
  return name.split('/').every((part) => part !== '' && !part.startsWith('.') && !part.endsWith('.lock'));
}

function assertBranchName(name: string): void {
  if (!isValidBranchName(name)) throw new Error(`invalid branch name ${JSON.stringify(name)}`);
}

// The files in .git through which a repository could make the host's git run code or read
// elsewhere (filters, hooks paths, fsmonitor, alternates). The sandbox mounts .git read-only
// and the tools refuse it; this is the check that both held.
const GIT_CONTROL_FILES = ['config', 'info/attributes', 'objects/info/alternates', 'commondir'];

async function gitControlDigest(wtPath: string): Promise<string> {
  const h = createHash('sha256');
  for (const f of GIT_CONTROL_FILES) {
    h.update(`${f}\0`);
    h.update(await readFile(path.join(wtPath, '.git', f)).catch(() => Buffer.from('(absent)')));
  }
  return h.digest('hex');
}

/** Refuses to run the host's git on a work tree whose .git control files changed. */
export async function assertGitIntact(wt: WorkTree): Promise<void> {
  if ((await gitControlDigest(wt.path)) !== wt.gitControlDigest) {
    throw new Error(
      `${wt.path}/.git was modified during the job (config, attributes or alternates); refusing to run git on it`,
    );
  }
}

export async function createWorkTree(opts: CreateWorkTreeOptions): Promise<WorkTree> {
  assertBranchName(opts.baseBranch);
  assertBranchName(opts.branch);
  const root = path.join(path.resolve(opts.dataDir), 'worktrees');
  const wtPath = path.join(root, safeJobDir(opts.jobKey));
  await mkdir(root, { recursive: true });
  // A leftover from a crashed attempt of the same job must not leak into this one.
  await removeTree(wtPath);
  await git(['clone', '--shared', '--no-checkout', '--', opts.mirrorPath, wtPath], { cwd: root });
  if (opts.baseSha !== undefined && !/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/.test(opts.baseSha))
    throw new Error(`not a commit id: ${opts.baseSha}`);
  await git(['checkout', '-q', '-b', opts.branch, opts.baseSha ?? `refs/remotes/origin/${opts.baseBranch}`], {
    cwd: wtPath,
  });
  const baseSha = (await git(['rev-parse', 'HEAD'], { cwd: wtPath })).stdout.trim();
  // What installs fetch into the tree (stages/toolchains.ts) is never part of a change or a listing.
  await mkdir(path.join(wtPath, '.git', 'info'), { recursive: true });
  await appendFile(path.join(wtPath, '.git', 'info', 'exclude'), `\n/${TOOL_DIR}/\n`);
  await assertNoTokenInConfig(path.join(wtPath, '.git'), undefined);
  return {
    path: wtPath,
    mirrorPath: opts.mirrorPath,
    baseSha,
    branch: opts.branch,
    gitControlDigest: await gitControlDigest(wtPath),
    remove: () => removeTree(wtPath),
  };
}

/**
 * Runs fn with a throwaway index on the base commit, filled by `fill`, so diffs see what
 * it adds without touching the real index later commits use.
 */
async function withTempIndex<T>(
  wt: WorkTree,
  fill: (env: Record<string, string>) => Promise<void>,
  fn: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  await assertGitIntact(wt);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'issue-agent-index-'));
  const env = { GIT_INDEX_FILE: path.join(dir, 'index') };
  try {
    await git(['read-tree', wt.baseSha], { cwd: wt.path, env });
    await fill(env);
    return await fn(env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** fn with a throwaway index holding the whole working tree, untracked files included. */
function withSnapshotIndex<T>(wt: WorkTree, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  // What installs fetched is never part of the change, whatever the repository's .gitignore re-includes.
  return withTempIndex(
    wt,
    async (env) => {
      await git(['add', '-A'], { cwd: wt.path, env });
      await git(['rm', '-r', '-q', '--cached', '--ignore-unmatch', '--', TOOL_DIR], { cwd: wt.path, env });
    },
    fn,
  );
}

const DIFF_FLAGS = ['--no-color', '--no-ext-diff', '--no-textconv', '--ignore-submodules=all'];

/** The whole change since the base commit: commits, staged, unstaged and untracked files. */
export function diff(wt: WorkTree): Promise<string> {
  return withSnapshotIndex(
    wt,
    async (env) => (await git(['diff', '--cached', ...DIFF_FLAGS, wt.baseSha, '--'], { cwd: wt.path, env })).stdout,
  );
}

/**
 * A regular file's text as committed on the base (default branch) commit: never read
 * through the work tree, so symlinks (to /proc/self/environ, to ../../.env) and anything
 * the job wrote are not followed. Undefined for a missing file, a link or a submodule.
 */
export async function readBaseFile(
  wt: Pick<WorkTree, 'path' | 'baseSha'>,
  relPath: string,
): Promise<string | undefined> {
  const listing = (
    await git(['ls-tree', '-z', wt.baseSha, '--', relPath], { cwd: wt.path, env: { GIT_LITERAL_PATHSPECS: '1' } })
  ).stdout;
  const entry = /^(\d{6}) blob ([0-9a-f]{40,64})\t/.exec(listing);
  if (!entry || (entry[1] !== '100644' && entry[1] !== '100755')) return undefined;
  return (await git(['cat-file', 'blob', entry[2]!], { cwd: wt.path })).stdout;
}

/** The regular files at the root of the base commit, name → blob id (a hash of the content): read from git, never the tree. */
export async function baseRootFiles(wt: Pick<WorkTree, 'path' | 'baseSha'>): Promise<Map<string, string>> {
  const listing = (await git(['ls-tree', '-z', wt.baseSha], { cwd: wt.path })).stdout;
  const files = new Map<string, string>();
  for (const entry of listing.split('\0')) {
    const m = /^(100644|100755) blob ([0-9a-f]{40,64})\t(.+)$/s.exec(entry);
    if (m) files.set(m[3]!, m[2]!);
  }
  return files;
}

/** The commit at HEAD, or undefined while nothing was committed on top of the base. */
export async function headIfCommitted(wt: WorkTree): Promise<string | undefined> {
  const head = (await git(['rev-parse', 'HEAD'], { cwd: wt.path })).stdout.trim();
  return head === wt.baseSha ? undefined : head;
}

/** The diffstat of what was committed on top of the base. */
export async function committedStat(wt: WorkTree): Promise<string> {
  await assertGitIntact(wt);
  return (await git(['diff', '--stat', ...DIFF_FLAGS, wt.baseSha, 'HEAD', '--'], { cwd: wt.path })).stdout;
}

export function diffStat(wt: WorkTree): Promise<string> {
  return withSnapshotIndex(
    wt,
    async (env) =>
      (await git(['diff', '--cached', '--stat', ...DIFF_FLAGS, wt.baseSha, '--'], { cwd: wt.path, env })).stdout,
  );
}

/**
 * The created files that can be committed: present, and not ignored by the repository's
 * .gitignore (a tool may write an ignored path; `git add` would refuse it).
 */
async function addable(wt: WorkTree, paths: string[]): Promise<string[]> {
  const present: string[] = [];
  for (const p of paths)
    if (
      !isUnder(TOOL_DIR, p) &&
      (await lstat(path.join(wt.path, p)).then(
        () => true,
        () => false,
      ))
    )
      present.push(p);
  if (present.length === 0) return [];
  const ignored = await git(['check-ignore', '--no-index', '-z', '--stdin'], {
    cwd: wt.path,
    input: `${present.join('\0')}\0`,
  }).catch(() => ({ stdout: '' }));
  const skip = new Set(ignored.stdout.split('\0').filter(Boolean));
  return present.filter((p) => !skip.has(p));
}

/**
 * The paths the change touches (tracked files changed or deleted, plus the created files
 * that will be committed), relative to the work tree.
 */
export async function changedPaths(wt: WorkTree, created: string[]): Promise<string[]> {
  // git's NUL-separated names, never the patch's headers: those quote names with non-ASCII
  // bytes, quotes or control characters ("a/caf\303\251"), which a paths rule would miss.
  return withChangeIndex(wt, created, async (env) => {
    // Submodule pointers count as changes whatever .gitmodules says: they are committed too.
    const out = (
      await git(
        ['diff', '--cached', '--name-only', '-z', '--no-renames', '--ignore-submodules=none', wt.baseSha, '--'],
        { cwd: wt.path, env },
      )
    ).stdout;
    return [...new Set(out.split('\0').filter(Boolean))];
  });
}

/** Runs `fn` with an index of its own holding the change: tracked files plus the given new paths. */
function withChangeIndex<T>(
  wt: WorkTree,
  paths: string[],
  fn: (env: Record<string, string>) => Promise<T>,
): Promise<T> {
  return withTempIndex(
    wt,
    async (env) => {
      await git(['add', '-u'], { cwd: wt.path, env });
      const created = await addable(wt, paths);
      if (created.length > 0)
        await git(['add', '-A', '--', ...created], { cwd: wt.path, env: { ...env, GIT_LITERAL_PATHSPECS: '1' } });
    },
    fn,
  );
}

/** Puts paths back as they are at the base commit (removing the ones that did not exist). */
export async function revertPaths(wt: WorkTree, paths: string[]): Promise<void> {
  await assertGitIntact(wt);
  for (const p of paths) {
    const existed = await git(['cat-file', '-e', `${wt.baseSha}:${p}`], { cwd: wt.path }).then(
      () => true,
      () => false,
    );
    if (existed) await git(['checkout', wt.baseSha, '--', p], { cwd: wt.path, env: { GIT_LITERAL_PATHSPECS: '1' } });
    else await rm(path.join(wt.path, p), { force: true });
  }
}

/**
 * The change as a binary patch on the base commit: tracked files plus the given new paths,
 * the same set `commitPaths` would commit. What a job checkpoints to resume from.
 */
export async function changePatch(wt: WorkTree, paths: string[]): Promise<string> {
  return withChangeIndex(
    wt,
    paths,
    async (env) =>
      (await git(['diff', '--cached', '--binary', ...DIFF_FLAGS, wt.baseSha, '--'], { cwd: wt.path, env })).stdout,
  );
}

/** Applies a patch from `changePatch` to a fresh work tree on the same base. */
export async function applyPatch(wt: WorkTree, patch: string): Promise<void> {
  if (patch.trim() === '') return;
  await assertGitIntact(wt);
  await git(['apply', '--whitespace=nowarn', '-'], { cwd: wt.path, input: patch });
}

/**
 * Commits every change to tracked files (what validation saw) plus the given new paths,
 * and no other untracked file, so installed dependencies, build output or files a test
 * wrote never reach the branch. Null when nothing changed.
 */
export async function commitPaths(
  wt: WorkTree,
  paths: string[],
  opts: { message: string; authorName: string; authorEmail: string; date?: string },
): Promise<string | null> {
  await assertGitIntact(wt);
  await git(['add', '-u'], { cwd: wt.path });
  const created = await addable(wt, paths);
  // Literal pathspecs: a file named ':(glob)**' is that file, not a pattern.
  if (created.length > 0)
    await git(['add', '-A', '--', ...created], { cwd: wt.path, env: { GIT_LITERAL_PATHSPECS: '1' } });
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
    // A fixed date makes the commit reproducible: the same change committed again after a
    // crash is the same commit, so a push that did land before the crash is not rejected.
    ...(opts.date ? { GIT_AUTHOR_DATE: opts.date, GIT_COMMITTER_DATE: opts.date } : {}),
  };
  // The message carries model-written text and goes to GitHub: the same sanitiser as comments.
  await git(['commit', '-q', '--no-verify', '-F', '-'], { cwd: wt.path, env, input: sanitise(opts.message) });
  return (await git(['rev-parse', 'HEAD'], { cwd: wt.path })).stdout.trim();
}

function isRejection(err: unknown): boolean {
  return (
    err instanceof GitError &&
    /\[rejected\]|non-fast-forward|fetch first|\[remote rejected\]|protected branch|permission|403|denied/i.test(
      err.stderrTail,
    )
  );
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
export async function push(
  wt: WorkTree,
  opts: { remoteUrl: string; branch: string; token?: string; retryDelayMs?: number },
): Promise<void> {
  assertBranchName(opts.branch);
  await assertGitIntact(wt);
  const env = opts.token ? authEnv(opts.token, /^https?:\/\//i.test(opts.remoteUrl) ? opts.remoteUrl : undefined) : {};
  try {
    await withRetries(
      () => git(['push', '--no-verify', '--', opts.remoteUrl, `HEAD:refs/heads/${opts.branch}`], { cwd: wt.path, env }),
      { attempts: PUSH_ATTEMPTS, baseDelayMs: opts.retryDelayMs ?? 1_000, retryable: (err) => !isRejection(err) },
    );
  } catch (err) {
    if (isRejection(err))
      throw new PushRejectedError(opts.branch, (err as GitError).stderrTail.trim().split('\n').slice(-3).join(' '));
    throw err;
  }
  await assertNoTokenInConfig(path.join(wt.path, '.git'), opts.token);
}
