import { spawnCapped } from './spawn-capped.js';

/**
 * Removes a directory tree that repository code may have shaped: GNU rm walks it with
 * openat, so a tree thousands of levels deep (deeper than PATH_MAX, where Node's recursive
 * rm fails) goes too. It never follows a link, and does not cross into another file system
 * (a bind mount of the same one it would enter: none is made under the trees it removes).
 * Throws, naming the path, when something is left.
 */
export async function removeTree(dir: string): Promise<void> {
  const r = await spawnCapped({
    command: 'rm -rf',
    file: 'rm',
    args: ['-rf', '--one-file-system', '--', dir],
    env: { PATH: '/usr/bin:/bin' },
    cwd: '/',
    timeoutMs: 10 * 60_000,
    maxOutputBytes: 16 * 1024,
  });
  if (r.exitCode !== 0)
    throw new Error(`could not remove ${dir}: ${r.output.trim().split('\n').pop() ?? `exit ${r.exitCode}`}`);
}

/**
 * Copies a tree as it is (modes, times, links as links: `-P` follows none, on the command line
 * or below), sharing blocks where the file system can (reflink). Throws with cp's last line.
 */
export async function copyTree(from: string, to: string, timeoutMs = 15 * 60_000): Promise<void> {
  const r = await spawnCapped({
    command: 'cp -a',
    file: 'cp',
    args: ['-a', '-P', '--reflink=auto', '--', from, to],
    env: { PATH: '/usr/bin:/bin' },
    cwd: '/',
    timeoutMs,
    maxOutputBytes: 16 * 1024,
  });
  if (r.exitCode !== 0) throw new Error(`cp failed: ${r.output.trim().split('\n').pop() ?? `exit ${r.exitCode}`}`);
}
