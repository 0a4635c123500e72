import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { mkdir, mkdtemp, readFile, rename, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { forbiddenAddress, privateNetworkList } from '../egress/forbidden-addresses.js';
import type { RunResult, Runner } from '../runner.js';
import { diskUsage, formatBytes } from '../limits.js';
import { spawnCapped, type Watcher } from '../spawn-capped.js';
import { clearSetuid, type Leases, privateRoot, RECORD_FILE } from './cache.js';
import { asked, type ImageRef, parseImageRef, pinned } from './image-ref.js';
import { skopeoInSandbox } from './skopeo.js';
import { removeTree } from '../host-tree.js';

/** How the worker reaches registries: the operator's settings, never the repository's. */
export interface RegistryAccess {
  /** REGISTRY_AUTH_FILE: a containers-auth.json. Read by skopeo on the host; never enters the sandbox. */
  authFile?: string;
  /** REGISTRY_INSECURE_HOSTS: `host:port` entries reached over plain HTTP (a registry on loopback, say). */
  insecureHosts: readonly string[];
  /** SANDBOX_EGRESS_PRIVATE_NETWORKS: private networks (CIDRs) the operator's registries live on. */
  privateNetworks?: readonly string[];
}

/** An image unpacked under DATA_DIR, once per digest. */
export interface PulledImage {
  /** The reference as the repository wrote it. */
  reference: string;
  /** `sha256:…`: what the job runs on, whatever the tag points at later. */
  digest: string;
  /** `registry/path@digest`. */
  pinned: string;
  /** The unpacked root filesystem. */
  rootfs: string;
  /** The image's environment (its PATH, say) and working directory, from its config. */
  env: string[];
  cwd: string;
  /** Disk used by the unpacked image. */
  bytes: number;
  /** True when it was already unpacked: no registry was asked. */
  cached: boolean;
}

export type EnvironmentFailure =
  | 'bad-reference'
  | 'not-found'
  | 'refused'
  | 'unreachable'
  | 'disk-full'
  | 'unsupported'
  | 'too-large'
  | 'setup-failed'
  | 'failed';

/** Why an image could not be made ready, naming the image: for the one comment a job ends with. */
export class EnvironmentError extends Error {
  constructor(
    readonly kind: EnvironmentFailure,
    readonly image: string,
    readonly detail: string,
    /** A setup command that failed, and the last lines of its output. */
    readonly command?: { command: string; tail: string },
  ) {
    super(`${image}: ${detail}`);
    this.name = 'EnvironmentError';
  }
}

export interface ImageStoreOptions {
  dataDir: string;
  access: RegistryAccess;
  log: Logger;
  /** Longest a pull (inspect, copy, unpack) may take. */
  timeoutMs?: number;
  /** The most an image may unpack to (ENVIRONMENTS_MAX_GB: one larger than every cache together is never kept). */
  maxBytes?: number;
  /** The worker's sandbox: skopeo runs in it, behind the egress proxy, for every registry the operator does not list. */
  runner?: Runner;
}

const DEFAULT_TIMEOUT_MS = 15 * 60_000;
const DEFAULT_MAX_UNPACKED_BYTES = 50 * 1024 ** 3;
const RECORD = RECORD_FILE.images;
const HOST_ENV = { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' };

interface ImageRecord {
  reference: string;
  digest: string;
  pinned: string;
  env: string[];
  cwd: string;
  bytes: number;
}

/**
 * Images pulled from their registries with skopeo, pinned by digest, and unpacked with umoci
 * (rootless) once per digest under DATA_DIR/environments/images. An entry is built in a
 * directory of its own and renamed into place whole, so workers sharing DATA_DIR never see
 * half of one; two that pull the same digest at once both succeed and one copy is kept.
 */
export class ImageStore {
  private readonly root: string;

  constructor(private readonly opts: ImageStoreOptions) {
    this.root = path.join(opts.dataDir, 'environments');
  }

  /** The image's root filesystem, pulled and unpacked if this digest is not here yet. */
  async pull(reference: string, signal?: AbortSignal, leases?: Leases): Promise<PulledImage> {
    const parsed = parseImageRef(reference);
    if (!parsed.ok) throw new EnvironmentError('bad-reference', reference, parsed.why);
    const ref = parsed.ref;
    // Private (mkdir's mode does not apply to a directory that exists): what images hold
    // must not be reachable by other users of the host.
    await privateRoot(this.root).catch((err: unknown) => {
      throw asEnvironmentError(err, reference);
    });
    await this.checkRegistryHost(ref).catch((err: unknown) => {
      throw asEnvironmentError(err, reference);
    });
    // The registry the repository names is asked every time, a pinned digest too: an image
    // another repository pulled is this one's only if its own registry serves it to us.
    const served = await this.resolve(ref, signal).catch((err: unknown) => {
      throw asEnvironmentError(err, reference);
    });
    const digest = ref.digest ?? served;
    const entry = this.entryDir(digest);
    // Held from before the entry is read, so it cannot be evicted from under the job.
    await leases?.take(this.root, 'images', path.basename(entry));
    const cached = await this.read(entry, ref, digest);
    if (cached) return cached;
    const tmp = path.join(this.root, 'tmp', `${digest.replace(':', '-')}-${randomBytes(6).toString('hex')}`);
    try {
      await mkdir(tmp, { recursive: true });
      await this.copy(ref, digest, tmp, signal);
      const record = await this.unpack(ref, digest, tmp, signal);
      await writeFile(path.join(tmp, 'bundle', RECORD), JSON.stringify(record));
      await mkdir(path.dirname(entry), { recursive: true });
      await rename(path.join(tmp, 'bundle'), entry).catch(async (err: NodeJS.ErrnoException) => {
        // Another worker renamed its copy first: that one is kept.
        if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
      });
    } catch (err) {
      throw asEnvironmentError(err, reference);
    } finally {
      await removeTree(tmp).catch((err: unknown) => this.opts.log.warn({ err }, 'could not remove a temporary copy'));
    }
    const ready = await this.read(entry, ref, digest, false);
    if (!ready) throw new EnvironmentError('failed', reference, `the unpacked image is missing from ${entry}`);
    this.opts.log.info({ image: ready.pinned, bytes: ready.bytes }, 'image unpacked');
    return ready;
  }

  /**
   * The worker asks registries from its own network: a repository must not point it at the
   * host's loopback services, the metadata service or a private network. Those are refused
   * unless the operator lists the registry (REGISTRY_INSECURE_HOSTS) or its private network
   * (SANDBOX_EGRESS_PRIVATE_NETWORKS).
   */
  private async checkRegistryHost(ref: ImageRef): Promise<void> {
    if (this.opts.access.insecureHosts.includes(ref.registry)) return;
    const host = ref.registry.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    const addresses = isIP(host)
      ? [{ address: host }]
      : await lookup(host, { all: true }).catch((err: NodeJS.ErrnoException) => {
          throw new EnvironmentError(
            'unreachable',
            ref.text,
            `the registry ${ref.registry} has no address (${err.code})`,
          );
        });
    const privateOk = privateNetworkList(this.opts.access.privateNetworks ?? []);
    for (const { address } of addresses) {
      const why = forbiddenAddress(address, privateOk);
      if (why)
        throw new EnvironmentError(
          'refused',
          ref.text,
          `the registry ${ref.registry} is at ${address}, a ${why} address the worker does not pull from; its operator can list it in REGISTRY_INSECURE_HOSTS, or its network in SANDBOX_EGRESS_PRIVATE_NETWORKS`,
        );
    }
  }

  private entryDir(digest: string): string {
    return path.join(this.root, 'images', digest.replace(':', '-'));
  }

  /** A complete entry (its record is written last), touched so the least recently used can go first. */
  private async read(entry: string, ref: ImageRef, digest: string, cached = true): Promise<PulledImage | undefined> {
    const recordFile = path.join(entry, RECORD);
    if (!existsSync(recordFile)) return undefined;
    const record = JSON.parse(await readFile(recordFile, 'utf8')) as ImageRecord;
    const now = new Date();
    await utimes(recordFile, now, now).catch(() => {});
    // The names are the asker's own, never those of whoever pulled the digest first.
    return { ...record, reference: ref.text, pinned: pinned(ref, digest), rootfs: path.join(entry, 'rootfs'), cached };
  }

  /**
   * The digest a tag points at now (the job then runs on that, whatever the tag says later),
   * or for a pinned reference the digest the registry serves for it: either way the registry
   * answered, with the operator's logins, that this repository's reference exists.
   */
  private async resolve(ref: ImageRef, signal?: AbortSignal): Promise<string> {
    const r = await this.skopeo(
      ref,
      ['inspect', ...this.tls(ref, 'tls-verify'), '--format', '{{.Digest}}', `docker://${asked(ref)}`],
      signal,
    );
    const digest = r.output.trim();
    if (r.exitCode !== 0 || !/^sha256:[a-f0-9]{64}$/.test(digest)) throw registryError(ref.text, r);
    return digest;
  }

  private async copy(ref: ImageRef, digest: string, tmp: string, signal?: AbortSignal): Promise<void> {
    const r = await this.skopeo(
      ref,
      [
        'copy',
        '--quiet',
        ...this.tls(ref, 'src-tls-verify'),
        `docker://${pinned(ref, digest)}`,
        `oci:${path.join(tmp, 'oci')}:image`,
      ],
      signal,
      tmp,
    );
    if (r.exitCode !== 0) throw registryError(ref.text, r);
  }

  private async unpack(ref: ImageRef, digest: string, tmp: string, signal?: AbortSignal): Promise<ImageRecord> {
    const bundle = path.join(tmp, 'bundle');
    // A small layer can unpack to a great deal: the unpacking stops at the cache's limit.
    const limit = this.opts.maxBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
    const r = await this.tool(
      'umoci',
      ['unpack', '--rootless', '--image', `${path.join(tmp, 'oci')}:image`, bundle],
      signal,
      tmp,
      [
        {
          everyMs: 1000,
          async check() {
            const used = await diskUsage(bundle);
            return used !== undefined && used > limit
              ? {
                  kind: 'disk',
                  marker: `[killed: the image unpacks to more than ${Math.round(limit / 1024 ** 3)} GiB]`,
                }
              : undefined;
          },
        },
      ],
    );
    const tooLarge = () =>
      new EnvironmentError(
        'too-large',
        ref.text,
        `the image unpacks to more than ${formatBytes(limit)}, the most the worker keeps (ENVIRONMENTS_MAX_GB)`,
      );
    if (r.limit === 'disk') throw tooLarge();
    if (r.exitCode !== 0) throw toolError(ref.text, 'umoci unpack', r);
    await clearSetuid(path.join(bundle, 'rootfs'));
    const config = await imageConfig(path.join(tmp, 'oci'));
    const bytes = (await diskUsage(path.join(bundle, 'rootfs'))) ?? 0;
    // Faster than the watch above can see: measured once more when it is done.
    if (bytes > limit) throw tooLarge();
    return {
      reference: ref.text,
      digest,
      pinned: pinned(ref, digest),
      env: config.Env ?? [],
      cwd: config.WorkingDir || '/',
      bytes,
    };
  }

  /** `--<flag>=false` for a registry the operator lists as plain HTTP; HTTPS everywhere else. */
  private tls(ref: ImageRef, flag: string): string[] {
    return this.opts.access.insecureHosts.includes(ref.registry) ? [`--${flag}=false`] : [];
  }

  /**
   * skopeo for `ref`: from the worker's own network for a registry the operator lists
   * (REGISTRY_INSECURE_HOSTS: a registry on loopback, say); for every other one in the
   * sandbox, behind the egress proxy, so that neither the registry nor a redirect it sends
   * reaches the worker's loopback services or the metadata service.
   */
  private async skopeo(ref: ImageRef, args: string[], signal?: AbortSignal, tmp?: string): Promise<RunResult> {
    const auth = this.opts.access.authFile;
    const [verb, ...rest] = args as [string, ...string[]];
    if (this.opts.access.insecureHosts.includes(ref.registry))
      return this.tool('skopeo', [verb, ...(auth ? ['--authfile', auth] : []), ...rest], signal, tmp);
    const runner = this.opts.runner;
    if (runner?.backend !== 'bwrap')
      throw new EnvironmentError(
        'unsupported',
        ref.text,
        'this worker pulls images only from inside its sandbox, and it has none (SANDBOX=unsandboxed)',
      );
    await mkdir(path.join(this.root, 'tmp'), { recursive: true });
    const dir = tmp ?? (await mkdtemp(path.join(this.root, 'tmp', 'inspect-')));
    try {
      const r = await skopeoInSandbox(
        {
          runner,
          registry: ref.registry,
          ...(auth ? { authFile: auth } : {}),
          privateNetworks: this.opts.access.privateNetworks ?? [],
          timeoutMs: this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
          ...(signal ? { signal } : {}),
        },
        dir,
        (files) => [...(files.auth ? ['--authfile', files.auth] : []), '--policy', files.policy, verb, ...rest],
      );
      return refusedEgress(r);
    } finally {
      if (!tmp) await removeTree(dir).catch(() => {});
    }
  }

  private tool(
    file: string,
    args: string[],
    signal?: AbortSignal,
    tmp?: string,
    watchers: Watcher[] = [],
  ): Promise<RunResult> {
    return spawnCapped({
      watchers,
      command: `${file} ${args[0]}`,
      file,
      args,
      // The host's tools with a bare environment: no credential of the worker's reaches them
      // but the auth file the operator names, and large blobs go under DATA_DIR, not /tmp.
      env: { ...HOST_ENV, HOME: this.root, ...(tmp ? { TMPDIR: tmp } : {}) },
      cwd: this.root,
      timeoutMs: this.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      maxOutputBytes: 64 * 1024,
      signal,
    });
  }
}

/** The image's own config (its Env and WorkingDir), read from the OCI layout skopeo wrote. */
async function imageConfig(layout: string): Promise<{ Env?: string[]; WorkingDir?: string }> {
  const blob = async (digest: string) =>
    JSON.parse(await readFile(path.join(layout, 'blobs', ...digest.split(':')), 'utf8')) as Record<string, unknown>;
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string }>;
  };
  const manifest = (await blob(index.manifests[0]!.digest)) as { config: { digest: string } };
  const config = (await blob(manifest.config.digest)) as { config?: { Env?: string[]; WorkingDir?: string } };
  return config.config ?? {};
}

/**
 * What skopeo's error says, as one of the failures a person can act on. The message quotes
 * the image's name and digest, whose hex can hold "404" or "403": statuses are matched as
 * whole words, and a connection that failed is told first, whatever else the line says.
 */
export function registryError(image: string, r: Pick<RunResult, 'output' | 'timedOut' | 'exitCode'>): EnvironmentError {
  const said = lastLine(r);
  if (/dial tcp|no such host|connection refused|i\/o timeout|HTTP response to HTTPS client/i.test(said) || r.timedOut)
    return new EnvironmentError('unreachable', image, `the registry could not be reached (${said || 'timed out'})`);
  if (/manifest unknown|name unknown|not found|\b404\b/i.test(said))
    return new EnvironmentError('not-found', image, `the registry has no such image or tag (${said})`);
  if (/unauthorized|authentication required|denied|forbidden|\b40[13]\b/i.test(said))
    return new EnvironmentError(
      'refused',
      image,
      `the registry refused the pull (${said}); the operator's REGISTRY_AUTH_FILE may lack a login for it`,
    );
  if (/no space left/i.test(said)) return new EnvironmentError('disk-full', image, `the disk is full (${said})`);
  if (/timeout/i.test(said))
    return new EnvironmentError('unreachable', image, `the registry could not be reached (${said})`);
  return new EnvironmentError('failed', image, `skopeo failed (${said || `exit ${r.exitCode}`})`);
}

function toolError(image: string, what: string, r: RunResult): EnvironmentError {
  const said = lastLine(r);
  if (/no space left/i.test(said)) return new EnvironmentError('disk-full', image, `the disk is full (${said})`);
  return new EnvironmentError('failed', image, `${what} failed (${said || `exit ${r.exitCode}`})`);
}

function asEnvironmentError(err: unknown, image: string): EnvironmentError {
  if (err instanceof EnvironmentError) return err;
  const e = err as NodeJS.ErrnoException;
  const missing = e instanceof Error && /could not start (skopeo|umoci|du): .*ENOENT/.exec(e.message);
  if (missing)
    return new EnvironmentError(
      'failed',
      image,
      `${missing[1]} is not installed on the worker (Debian: apt-get install skopeo umoci)`,
    );
  if (e?.code === 'ENOSPC') return new EnvironmentError('disk-full', image, `the disk is full (${e.message})`);
  return new EnvironmentError('failed', image, e instanceof Error ? e.message : String(err));
}

/** A pull the egress proxy refused a connection of says so, naming where it tried to go. */
function refusedEgress(r: RunResult): RunResult {
  const refused = r.egress?.refused ?? [];
  if (r.exitCode === 0 || refused.length === 0) return r;
  const where = refused.map((x) => `${x.destination} (${x.reason})`).join(', ');
  return { ...r, output: `${r.output}\nthe pull was refused a connection to ${where}` };
}

/** skopeo's last line, its `msg="…"` when it logs one. */
function lastLine(r: Pick<RunResult, 'output'>): string {
  const lines = r.output.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  return (/msg="((?:[^"\\]|\\.)*)"/.exec(last)?.[1] ?? last).replace(/\\"/g, '"').slice(0, 500);
}
