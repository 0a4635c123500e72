const tails = new Map<string, Promise<unknown>>();

/**
 * Serialises work on one key (a mirror path) within this process.
 * TODO: cross-process locking (flock on a lock file next to the mirror) once several
 * worker processes share one DATA_DIR on the same host.
 */
export async function withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const previous = tails.get(key) ?? Promise.resolve();
  const run = previous.then(fn, fn);
  const tail = run.catch(() => undefined);
  tails.set(key, tail);
  try {
    return await run;
  } finally {
    if (tails.get(key) === tail) tails.delete(key);
  }
}
