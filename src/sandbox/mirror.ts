import { readFile, rename, rm, mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { authEnv, git, tokenFingerprints } from './git.js';
import { withLock } from './repo-lock.js';
import { withRetries } from './retry.js';

export interface EnsureMirrorOptions {
  dataDir: string;
  /** The repository's clone_url (https), or a local path / file:// URL in tests. Never with credentials in it. */
  cloneUrl: string;
  /** Installation token; omitted for local remotes. */
  token?: string;
  log: Logger;
  /** Backoff base between network retries; default 1 s. */
  retryDelayMs?: number;
}

const ATTEMPTS = 3;
const SAFE_PART = /[^A-Za-z0-9._-]/g;

function safePart(part: string, what: string): string {
  const cleaned = part.replace(SAFE_PART, '_');
  if (cleaned === '' || cleaned === '.' || cleaned === '..' || part === '..' || part === '.') {
    throw new Error(`cannot derive a mirror path: invalid ${what} ${JSON.stringify(part)}`);
  }
  return cleaned;
}

/** `${dataDir}/mirrors/<host>/<owner>/<repo>.git`; local remotes live under host `local`. */
export function mirrorPathFor(dataDir: string, cloneUrl: string): string {
  let host = 'local';
  let pathname: string;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(cloneUrl)) {
    const u = new URL(cloneUrl);
    if (u.username || u.password)
      throw new Error('cloneUrl must not carry credentials; the token travels in the environment of each git command');
    if (u.protocol !== 'file:') host = u.host;
    pathname = decodeURIComponent(u.pathname);
  } else if (path.isAbsolute(cloneUrl)) {
    pathname = cloneUrl;
  } else if (!cloneUrl.includes(':')) {
    pathname = path.resolve(cloneUrl);
  } else {
    throw new Error(
      `unsupported clone URL ${JSON.stringify(cloneUrl)}: expected http(s)://, file:// or an absolute path`,
    );
  }
  const parts = pathname.split('/').filter((p) => p !== '');
  if (parts.some((p) => p === '..')) throw new Error(`refusing clone URL with '..' in its path: ${cloneUrl}`);
  const repo = parts.at(-1);
  const owner = parts.at(-2) ?? '_';
  if (!repo) throw new Error(`cannot derive a repository name from ${JSON.stringify(cloneUrl)}`);
  return path.join(
    path.resolve(dataDir),
    'mirrors',
    safePart(host, 'host'),
    safePart(owner, 'owner'),
    `${safePart(repo.replace(/\.git$/, ''), 'repository')}.git`,
  );
}

/** Fails loudly if the token (or its header form) was ever written into a git config. */
export async function assertNoTokenInConfig(gitDir: string, token: string | undefined): Promise<void> {
  let config: string;
  try {
    config = await readFile(path.join(gitDir, 'config'), 'utf8');
  } catch {
    return;
  }
  const leaked =
    /extraheader|x-access-token|authorization:/i.test(config) ||
    (token ? tokenFingerprints(token).some((t) => config.includes(t)) : false);
  if (leaked) throw new Error(`credentials found in ${path.join(gitDir, 'config')}; refusing to continue`);
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * One bare mirror per repository, cloned once and then fetched incrementally; returns
 * its path. The token only ever lives in the environment of the one git command.
 */
export async function ensureMirror(opts: EnsureMirrorOptions): Promise<string> {
  const mirror = mirrorPathFor(opts.dataDir, opts.cloneUrl);
  // A relative local path would mean something else from the mirror's directory.
  const cloneUrl = /^[a-z][a-z0-9+.-]*:\/\//i.test(opts.cloneUrl) ? opts.cloneUrl : path.resolve(opts.cloneUrl);
  const env = opts.token ? authEnv(opts.token, cloneUrl) : {};
  const log = opts.log.child({ mirror });
  const retry = {
    attempts: ATTEMPTS,
    baseDelayMs: opts.retryDelayMs ?? 1_000,
    onRetry: (err: unknown, attempt: number) => log.warn({ err, attempt }, 'mirror update failed; retrying'),
  };
  return withLock(mirror, async () => {
    if (await exists(path.join(mirror, 'HEAD'))) {
      // The URL can change (renamed repository); it is stored without credentials.
      await git(['remote', 'set-url', 'origin', cloneUrl], { cwd: mirror });
      await withRetries(() => git(['fetch', '--prune', '--no-auto-gc', 'origin'], { cwd: mirror, env }), retry);
      log.debug('mirror fetched');
    } else {
      await mkdir(path.dirname(mirror), { recursive: true });
      // Clone next to the final path and rename, so a half-finished clone is never taken for a mirror.
      const partial = `${mirror}.partial-${process.pid}`;
      await withRetries(async () => {
        await rm(partial, { recursive: true, force: true });
        await git(['clone', '--mirror', '--', cloneUrl, partial], { cwd: path.dirname(mirror), env });
      }, retry);
      await rm(mirror, { recursive: true, force: true });
      await rename(partial, mirror);
      log.info('mirror cloned');
    }
    await assertNoTokenInConfig(mirror, opts.token);
    return mirror;
  });
}
