import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';

const tails = new Map<string, Promise<unknown>>();

/**
 * Serialises work on one mirror: within this process by a promise chain, and across
 * processes that share the DATA_DIR (several workers on one host, compose replicas on one
 * volume) by an flock(2) on `<mirror>.lock`, held by a small `flock` child for as long as
 * `fn` runs. If this process dies, the child's stdin closes, it exits and the lock is free.
 */
export async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = tails.get(key) ?? Promise.resolve();
  const locked = () => withFileLock(`${key}.lock`, fn);
  const run = previous.then(locked, locked);
  const tail = run.catch(() => undefined);
  tails.set(key, tail);
  try {
    return await run;
  } finally {
    if (tails.get(key) === tail) tails.delete(key);
  }
}

/** Runs `fn` holding an exclusive flock on `lockPath` (made if missing). */
export async function withFileLock<T>(lockPath: string, fn: () => Promise<T>, timeoutSeconds = 600): Promise<T> {
  const release = await holdFileLock(lockPath, 'exclusive', timeoutSeconds);
  if (!release) throw new Error(`could not lock ${lockPath} within ${timeoutSeconds}s: another process holds it`);
  try {
    return await fn();
  } finally {
    await release();
  }
}

/**
 * Takes an flock on `lockPath` (made if missing), shared or exclusive, waiting up to
 * `waitSeconds` (0: not at all), and answers how to let it go; undefined when another
 * process holds it. A small `flock` child holds it: if this process dies, the child's stdin
 * closes, it exits and the lock is free.
 */
export async function holdFileLock(
  lockPath: string,
  mode: 'shared' | 'exclusive',
  waitSeconds: number,
): Promise<(() => Promise<void>) | undefined> {
  await mkdir(path.dirname(lockPath), { recursive: true });
  // `cat` holds the lock until we close its stdin; "locked" on stdout is the moment it is ours.
  const child = spawn(
    'flock',
    [
      mode === 'shared' ? '-s' : '-x',
      ...(waitSeconds > 0 ? ['-w', String(waitSeconds)] : ['-n']),
      lockPath,
      'sh',
      '-c',
      'echo locked; exec cat >/dev/null',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const got = await new Promise<boolean>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve(true);
    });
    child.once('error', (err) =>
      reject(new Error(`could not run flock to lock ${lockPath} (is util-linux installed?): ${err.message}`)),
    );
    child.once('exit', (code) => {
      // flock answers 1 when the lock is held elsewhere (-n, or -w ran out).
      if (code === 1) resolve(false);
      else reject(new Error(`could not lock ${lockPath} (flock exit ${code}): ${stderr.trim()}`));
    });
  });
  if (!got) return undefined;
  return async () => {
    // The child may be gone already (killed): then the lock went with it.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await exited;
    }
  };
}
