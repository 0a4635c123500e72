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
  await mkdir(path.dirname(lockPath), { recursive: true });
  // `flock -w` gives up after the timeout with exit code 1; `cat` holds the lock until we
  // close its stdin. "locked" on stdout is the moment the lock is ours.
  const child = spawn(
    'flock',
    ['-x', '-w', String(timeoutSeconds), lockPath, 'sh', '-c', 'echo locked; exec cat >/dev/null'],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('locked')) resolve();
    });
    child.once('error', (err) =>
      reject(new Error(`could not run flock to lock ${lockPath} (is util-linux installed?): ${err.message}`)),
    );
    child.once('exit', (code) =>
      reject(
        new Error(
          `could not lock ${lockPath} within ${timeoutSeconds}s (flock exit ${code}): ${stderr.trim() || 'another process holds it'}`,
        ),
      ),
    );
  });
  try {
    return await fn();
  } finally {
    // The child may be gone already (killed): then the lock went with it.
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.stdin.end();
      await exited;
    }
  }
}
