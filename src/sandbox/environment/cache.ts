import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, readFile, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { holdFileLock } from '../repo-lock.js';
import { spawnCapped } from '../spawn-capped.js';
import { removeTree } from '../host-tree.js';

/**
 * The three caches under DATA_DIR/environments, bounded together: unpacked images, set-up
 * environments and kept installs. Each entry is a directory with a record file, written
 * last and touched at each use, whose mtime orders the least recently used first. A job
 * holds a shared lock on each entry it runs on (a lease); eviction takes the entry's lock
 * exclusively without waiting, so an entry in use is never removed from under a job.
 */
export type CacheKind = 'images' | 'setups' | 'deps';

export const RECORD_FILE: Readonly<Record<CacheKind, string>> = {
  images: 'image.json',
  setups: 'setup.json',
  deps: 'deps.json',
};

const KINDS = Object.keys(RECORD_FILE) as CacheKind[];

export type CacheUsage = Record<CacheKind, { entries: number; bytes: number }>;

interface Entry {
  kind: CacheKind;
  name: string;
  bytes: number;
  usedAt: number;
}

function lockFile(root: string, kind: CacheKind, name: string): string {
  return path.join(root, kind, `${name}.lock`);
}

/**
 * DATA_DIR/environments, private to the worker's user whether or not it existed (mkdir's
 * mode applies only to what it makes): what images and installs hold is nobody else's.
 */
export async function privateRoot(root: string): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  await chmod(root, 0o700);
}

/** Clears setuid and setgid bits under `dir`: none is kept at rest (the sandbox ignores them anyway: no_new_privs). */
export async function clearSetuid(dir: string): Promise<void> {
  const r = await spawnCapped({
    command: 'find -perm /6000',
    file: 'find',
    args: [dir, '-xdev', '-type', 'f', '-perm', '/6000', '-exec', 'chmod', 'ug-s', '{}', '+'],
    env: { PATH: '/usr/bin:/bin' },
    cwd: '/',
    timeoutMs: 10 * 60_000,
    maxOutputBytes: 16 * 1024,
  });
  if (r.exitCode !== 0)
    throw new Error(`could not clear setuid bits under ${dir}: ${r.output.trim().split('\n').pop()}`);
}

/** A job's holds on the entries it runs on; let go when the job ends. */
export class Leases {
  private readonly held = new Map<string, () => Promise<void>>();

  /** Holds `kind/name` under `root` (waiting while an eviction of it finishes). */
  async take(root: string, kind: CacheKind, name: string): Promise<void> {
    const file = lockFile(root, kind, name);
    if (this.held.has(file)) return;
    const release = await holdFileLock(file, 'shared', 600);
    if (!release) throw new Error(`could not hold ${kind}/${name}: its eviction did not finish within 600 s`);
    this.held.set(file, release);
  }

  async releaseAll(): Promise<void> {
    const all = [...this.held.values()];
    this.held.clear();
    await Promise.all(all.map((r) => r()));
  }
}

async function entries(root: string): Promise<Entry[]> {
  const all: Entry[] = [];
  for (const kind of KINDS) {
    const dir = path.join(root, kind);
    if (!existsSync(dir)) continue;
    for (const name of await readdir(dir)) {
      if (name.endsWith('.lock')) continue;
      const record = path.join(dir, name, RECORD_FILE[kind]);
      const st = await stat(record).catch(() => undefined);
      if (!st) continue;
      const bytes = await readFile(record, 'utf8').then(
        (t) => Number((JSON.parse(t) as { bytes?: unknown }).bytes) || 0,
        () => 0,
      );
      all.push({ kind, name, bytes, usedAt: st.mtimeMs });
    }
  }
  return all;
}

/** Entries and bytes per cache, from the records. */
export async function cacheUsage(root: string): Promise<CacheUsage> {
  const usage = Object.fromEntries(KINDS.map((k) => [k, { entries: 0, bytes: 0 }])) as CacheUsage;
  for (const e of await entries(root)) {
    usage[e.kind].entries++;
    usage[e.kind].bytes += e.bytes;
  }
  return usage;
}

/**
 * Evicts the least recently used entries until the caches hold at most `maxBytes`; an entry a
 * job holds is skipped. Answers what went. An evicted entry is renamed away whole first, so
 * no reader sees half of one.
 */
export async function pruneCache(
  root: string,
  maxBytes: number,
  log: Logger,
): Promise<Array<{ kind: CacheKind; name: string; bytes: number }>> {
  const all = (await entries(root)).sort((a, b) => a.usedAt - b.usedAt);
  let total = all.reduce((n, e) => n + e.bytes, 0);
  const evicted: Array<{ kind: CacheKind; name: string; bytes: number }> = [];
  for (const e of all) {
    if (total <= maxBytes) break;
    const release = await holdFileLock(lockFile(root, e.kind, e.name), 'exclusive', 0);
    if (!release) continue;
    try {
      const trash = path.join(root, 'tmp', `evicted-${e.name.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
      await mkdir(path.dirname(trash), { recursive: true });
      await rename(path.join(root, e.kind, e.name), trash);
      await removeTree(trash);
      total -= e.bytes;
      evicted.push({ kind: e.kind, name: e.name, bytes: e.bytes });
    } catch (err) {
      log.warn({ err, kind: e.kind, name: e.name }, 'could not evict a cached environment');
    } finally {
      await release();
    }
  }
  if (evicted.length > 0)
    log.info(
      { evicted: evicted.length, freedBytes: evicted.reduce((n, e) => n + e.bytes, 0), total },
      'environment cache pruned',
    );
  if (total > maxBytes)
    log.warn({ total, maxBytes }, 'the environment cache is over its limit: every entry left is in use');
  return evicted;
}
