import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { ImageRoot, Runner } from '../runner.js';
import { diskUsage } from '../limits.js';
import {
  type CacheUsage,
  cacheUsage,
  clearSetuid,
  type Leases,
  privateRoot,
  pruneCache,
  RECORD_FILE,
} from './cache.js';
import { DepsCache } from './deps-cache.js';
import { EnvironmentError, ImageStore, type PulledImage, type RegistryAccess } from './image-store.js';
import { copyTree, removeTree } from '../host-tree.js';

/** The commands that set an image up for a repository, and what else they read. */
export interface SetupSpec {
  /**
   * The repository it is set up for (its clone URL). Setup runs the repository's commands on
   * its files, so what one repository's setup made is never another's environment.
   */
  repository: string;
  commands: readonly string[];
  /**
   * What the commands read besides the image, e.g. the dependency manifests' hashes
   * (path → sha256): a change to one makes a new environment.
   */
  inputs: Readonly<Record<string, string>>;
}

/** An image made ready to run a repository's commands on. */
export interface ReadyEnvironment {
  image: PulledImage;
  /** What every command of the job runs on (read-only). */
  root: ImageRoot;
  /** With setup commands: the set-up copy of the image. */
  setup?: { key: string; cached: boolean; bytes: number };
}

/**
 * Runs the setup commands on `root` (a private, writable copy of the image), in order; throws
 * an EnvironmentError naming the command that failed, with its output's tail.
 */
export type SetupRun = (root: ImageRoot) => Promise<void>;

const RECORD = RECORD_FILE.setups;
/** ENVIRONMENTS_MAX_GB's default. */
export const DEFAULT_MAX_BYTES = 50 * 1024 ** 3;

interface SetupRecord {
  key: string;
  digest: string;
  commands: string[];
  bytes: number;
}

/**
 * Set-up environments: a copy of an image on which a repository's setup commands ran, kept
 * once per (repository, image digest, commands, inputs) under DATA_DIR/environments/setups. Built in a
 * directory of its own and renamed into place whole, as images are, so workers sharing
 * DATA_DIR never see half of one; a failed setup leaves nothing behind.
 */
export class Environments {
  private readonly root: string;
  /** Dependency installs kept for the next job (deps-cache.ts). */
  readonly deps: DepsCache;

  constructor(
    readonly images: ImageStore,
    private readonly opts: { dataDir: string; log: Logger; copyTimeoutMs?: number; maxBytes?: number },
  ) {
    this.root = path.join(opts.dataDir, 'environments');
    this.deps = new DepsCache(opts);
  }

  /** The store of a worker (or the CLI): images and set-up environments under `dataDir`. */
  static open(opts: {
    dataDir: string;
    access: RegistryAccess;
    log: Logger;
    maxBytes?: number;
    /** The worker's sandbox, where skopeo runs for registries the operator does not list. */
    runner?: Runner;
  }): Environments {
    return new Environments(new ImageStore(opts), opts);
  }

  /** Entries and bytes of each cache (images, set-up environments, kept installs), for /metrics. */
  usage(): Promise<CacheUsage> {
    return cacheUsage(this.root);
  }

  /** Evicts the least recently used entries no job holds until the caches fit their limit. */
  async prune(): Promise<void> {
    await pruneCache(this.root, this.opts.maxBytes ?? DEFAULT_MAX_BYTES, this.opts.log).catch((err: unknown) =>
      this.opts.log.warn({ err }, 'could not prune the environment cache'),
    );
  }

  /** The image, and with setup commands the set-up copy of it, made now unless already here. */
  async ready(
    image: PulledImage,
    setup: SetupSpec | undefined,
    run: SetupRun,
    leases?: Leases,
  ): Promise<ReadyEnvironment> {
    const plain: ImageRoot = { rootfs: image.rootfs, env: image.env };
    if (!setup || setup.commands.length === 0) return { image, root: plain };
    const key = setupKey(image.digest, setup);
    const entry = path.join(this.root, 'setups', key);
    await leases?.take(this.root, 'setups', key);
    const cached = await this.read(entry);
    if (cached) return { image, root: { ...plain, rootfs: path.join(entry, 'rootfs') }, setup: cached };

    const tmp = path.join(this.root, 'tmp', `setup-${key.slice(0, 16)}-${randomBytes(6).toString('hex')}`);
    try {
      await privateRoot(this.root);
      await mkdir(tmp, { recursive: true, mode: 0o700 });
      const rootfs = path.join(tmp, 'rootfs');
      await this.copy(image, rootfs);
      await run({ rootfs, env: image.env, writable: true });
      await clearSetuid(rootfs);
      const bytes = (await diskUsage(rootfs)) ?? image.bytes;
      const record: SetupRecord = { key, digest: image.digest, commands: [...setup.commands], bytes };
      await writeFile(path.join(tmp, RECORD), JSON.stringify(record));
      await mkdir(path.dirname(entry), { recursive: true });
      await rename(tmp, entry).catch((err: NodeJS.ErrnoException) => {
        // Another worker set up the same environment first: that one is kept.
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      });
    } catch (err) {
      throw asSetupError(err, image.reference);
    } finally {
      await removeTree(tmp).catch((err: unknown) => this.opts.log.warn({ err }, 'could not remove a temporary copy'));
    }
    const ready = await this.read(entry, false);
    if (!ready)
      throw new EnvironmentError('failed', image.reference, `the set-up environment is missing from ${entry}`);
    this.opts.log.info({ image: image.pinned, key, bytes: ready.bytes }, 'environment set up');
    return { image, root: { ...plain, rootfs: path.join(entry, 'rootfs') }, setup: ready };
  }

  /** A complete entry (its record is written last), touched so the least recently used can go first. */
  private async read(entry: string, cached = true): Promise<ReadyEnvironment['setup']> {
    const recordFile = path.join(entry, RECORD);
    if (!existsSync(recordFile)) return undefined;
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as SetupRecord;
    const now = new Date();
    await utimes(recordFile, now, now).catch(() => {});
    return { key: record.key, cached, bytes: record.bytes };
  }

  /** A private copy of the image's root filesystem: shared blocks where the file system can (reflink). */
  private async copy(image: PulledImage, to: string): Promise<void> {
    await copyTree(image.rootfs, to, this.opts.copyTimeoutMs).catch((err: Error) => {
      if (/no space left/i.test(err.message))
        throw new EnvironmentError('disk-full', image.reference, `the disk is full (${err.message})`);
      throw new EnvironmentError('failed', image.reference, `copying the image for its setup failed (${err.message})`);
    });
  }
}

/** The set-up environment's name: the repository, the image's digest, the commands in order, and their inputs. */
export function setupKey(digest: string, setup: SetupSpec): string {
  const inputs = Object.keys(setup.inputs)
    .sort()
    .map((k) => [k, setup.inputs[k]]);
  return createHash('sha256')
    .update(JSON.stringify({ repository: setup.repository, digest, commands: setup.commands, inputs }))
    .digest('hex');
}

function asSetupError(err: unknown, image: string): EnvironmentError {
  if (err instanceof EnvironmentError) return err;
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return new EnvironmentError('disk-full', image, `the disk is full (${e.message})`);
  return new EnvironmentError('failed', image, e instanceof Error ? e.message : String(err));
}
