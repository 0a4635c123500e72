import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { holdFileLock } from '../repo-lock.js';
import { diskUsage } from '../limits.js';
import { clearSetuid, privateRoot, RECORD_FILE } from './cache.js';
import { copyTree, removeTree } from '../host-tree.js';

/** What an install's result depends on: it is reused only when every part is the same. */
export interface DepsKey {
  /** The repository (its clone URL): an install runs the repository's own files, so it is never another's. */
  repository: string;
  /** What the commands run on: the set-up environment, the image digest, or the worker's system. */
  environment: string;
  command: string;
  /** The dependency manifests (name → content hash). */
  manifests: Readonly<Record<string, string>>;
}

interface DepsRecord {
  key: string;
  /** The directories kept, relative to the work tree. */
  dirs: string[];
  bytes: number;
}

/**
 * What a dependency install wrote in the work tree (node_modules, a virtual environment,
 * a module cache: stages/toolchains.ts), kept per DepsKey under DATA_DIR/environments/deps
 * and copied into the next job's tree instead of installing again. Entries are built aside
 * and renamed into place whole. Paths are checked component by component on the host: a
 * link the repository or its install planted in the tree is never followed.
 */
export class DepsCache {
  private readonly root: string;

  constructor(private readonly opts: { dataDir: string; log: Logger; maxBytes?: number }) {
    this.root = path.join(opts.dataDir, 'environments');
  }

  static key(k: DepsKey): string {
    const manifests = Object.keys(k.manifests)
      .sort()
      .map((m) => [m, k.manifests[m]]);
    return createHash('sha256')
      .update(JSON.stringify({ repository: k.repository, environment: k.environment, command: k.command, manifests }))
      .digest('hex');
  }

  /** Copies a kept install into `workTree`; undefined when there is none (or the tree already has those paths). */
  async restore(key: string, workTree: string): Promise<{ dirs: string[]; bytes: number } | undefined> {
    const entry = path.join(this.root, 'deps', key);
    await privateRoot(this.root);
    // Held while it is copied: an eviction waits, or the copy waits for the eviction.
    const release = await holdFileLock(path.join(this.root, 'deps', `${key}.lock`), 'shared', 600);
    if (!release) return undefined;
    try {
      return await this.restoreHeld(entry, key, workTree);
    } finally {
      await release();
    }
  }

  private async restoreHeld(
    entry: string,
    key: string,
    workTree: string,
  ): Promise<{ dirs: string[]; bytes: number } | undefined> {
    const record = await this.read(entry);
    if (!record) return undefined;
    for (const dir of record.dirs) if (!(await absentUnder(workTree, dir))) return undefined;
    const copied: string[] = [];
    try {
      for (const dir of record.dirs) {
        await mkdir(path.dirname(path.join(workTree, dir)), { recursive: true });
        await copyTree(path.join(entry, 'files', dir), path.join(workTree, dir));
        copied.push(dir);
      }
    } catch (err) {
      // Half a restore is worse than none: the install runs as if nothing were kept.
      for (const dir of copied) await removeTree(path.join(workTree, dir));
      this.opts.log.warn({ err, key }, 'could not restore the kept install; installing instead');
      return undefined;
    }
    return { dirs: record.dirs, bytes: record.bytes };
  }

  /** Keeps what the install wrote (the `dirs` that exist as real directories in the tree). */
  async save(key: string, workTree: string, dirs: readonly string[]): Promise<{ bytes: number } | undefined> {
    const entry = path.join(this.root, 'deps', key);
    if (existsSync(path.join(entry, RECORD))) return undefined;
    const present: string[] = [];
    for (const dir of dirs) if (await realDirectoryUnder(workTree, dir)) present.push(dir);
    if (present.length === 0) return undefined;
    const tmp = path.join(this.root, 'tmp', `deps-${key.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    try {
      await privateRoot(this.root);
      for (const dir of present) {
        await mkdir(path.dirname(path.join(tmp, 'files', dir)), { recursive: true, mode: 0o700 });
        await copyTree(path.join(workTree, dir), path.join(tmp, 'files', dir));
      }
      await clearSetuid(path.join(tmp, 'files'));
      const record: DepsRecord = { key, dirs: present, bytes: (await diskUsage(path.join(tmp, 'files'))) ?? 0 };
      // One install may not crowd every other repository's entries out of the caches.
      const most = (this.opts.maxBytes ?? 50 * 1024 ** 3) / 4;
      if (record.bytes > most) {
        this.opts.log.info({ key, bytes: record.bytes, most }, 'the install is too large to keep for the next job');
        return undefined;
      }
      await writeFile(path.join(tmp, RECORD), JSON.stringify(record));
      await mkdir(path.dirname(entry), { recursive: true });
      await rename(tmp, entry).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      });
      return { bytes: record.bytes };
    } catch (err) {
      // Not keeping an install costs the next job time, never correctness.
      this.opts.log.warn({ err, key }, 'could not keep the install for the next job');
      return undefined;
    } finally {
      await removeTree(tmp).catch((err: unknown) => this.opts.log.warn({ err }, 'could not remove a temporary copy'));
    }
  }

  private async read(entry: string): Promise<DepsRecord | undefined> {
    const file = path.join(entry, RECORD);
    if (!existsSync(file)) return undefined;
    const record = JSON.parse(await readFile(file, 'utf8')) as DepsRecord;
    const now = new Date();
    await utimes(file, now, now).catch(() => {});
    return record;
  }
}

const RECORD = RECORD_FILE.deps;

/** Every component of `rel` under `root` a real directory (none a link); the last one too. */
async function realDirectoryUnder(root: string, rel: string): Promise<boolean> {
  let at = root;
  for (const part of safeParts(rel)) {
    at = path.join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st?.isDirectory()) return false;
  }
  return true;
}

/** The parents of `rel` under `root` real directories or missing, and `rel` itself missing. */
async function absentUnder(root: string, rel: string): Promise<boolean> {
  const parts = safeParts(rel);
  let at = root;
  for (const [i, part] of parts.entries()) {
    at = path.join(at, part);
    const st = await lstat(at).catch(() => undefined);
    if (!st) return true;
    if (i === parts.length - 1 || !st.isDirectory()) return false;
  }
  return false;
}

function safeParts(rel: string): string[] {
  const parts = rel.split('/').filter(Boolean);
  if (parts.length === 0 || path.isAbsolute(rel) || parts.some((p) => p === '..' || p === '.'))
    throw new Error(`not a relative path inside the work tree: ${rel}`);
  return parts;
}
