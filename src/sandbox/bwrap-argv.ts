import { createHash } from 'node:crypto';
import path from 'node:path';
import { EGRESS_FORWARDER, EGRESS_SOCKET, behindForwarder } from './egress/inside.js';
import type { SandboxLimits } from './limits.js';
import { isInside } from './run-request.js';
import type { RunRequest } from './runner.js';

/**
 * The bubblewrap command line of one sandboxed command, as a pure function of the plan and
 * of what the host looks like (gathered beforehand by bwrap-host.ts): no file is read here,
 * so tests can assert the exact argv.
 */

/** The uid and gid commands see inside the sandbox. */
export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;

/**
 * Host uids for sandboxes when the worker runs as root: one per work tree, picked by hash
 * from this range. RLIMIT_NPROC never binds host uid 0 (the kernel exempts it), so the
 * sandbox must be somebody else on the host; a uid of its own per job also keeps one job's
 * process budget from being eaten by another's. The range is above systemd's container
 * uids (up to 0x6FFFFFFF) and below its "foreign" range (0x7FFE0000), so no user owns it.
 */
export const HOST_UID_BASE = 0x70000000;
export const HOST_UID_RANGE = 1 << 20;

export const TMP_SIZE_BYTES = 2 * 1024 * 1024 * 1024;
export const SHM_SIZE_BYTES = 64 * 1024 * 1024;

/** Only what programs need to resolve names, verify TLS and find libraries; nothing with secrets. */
export const ETC_FILES = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  // The certificates and OpenSSL's config, never /etc/ssl/private.
  '/etc/ssl/certs',
  '/etc/ssl/openssl.cnf',
  '/etc/ca-certificates',
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/localtime',
];

export const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The files of the generated /etc directory bound over the sandbox's own. */
export const GENERATED_ETC_FILES = ['passwd', 'group', 'gitconfig'] as const;
export const FORWARDER_FILE = 'egress-forward.cjs';
/** The generated launcher that runs the host's node inside an image (see NODE_LAUNCHER). */
export const NODE_LAUNCHER_FILE = 'node-launcher.sh';

/**
 * On an image's root the host's node, its libraries and its loader are not there (or not
 * the same): the egress forwarder runs the host's own, bound here, through the host's loader.
 */
export const HOST_RUNTIME_DIR = '/run/issue-agent/host';
export const IMAGE_NODE = '/run/issue-agent/node';
// The image's preloads and node options are not the host node's: they could break the forwarder.
export const NODE_LAUNCHER = `#!/bin/sh\nunset LD_PRELOAD LD_AUDIT LD_LIBRARY_PATH NODE_OPTIONS NODE_PATH\nexec ${HOST_RUNTIME_DIR}/ld.so --library-path ${HOST_RUNTIME_DIR}/lib ${HOST_RUNTIME_DIR}/node "$@"\n`;
/** Where the generated git config goes on an image without an /etc/gitconfig to bind over. */
export const IMAGE_GITCONFIG = '/run/issue-agent/gitconfig';

/**
 * How the sandbox's processes appear on the host:
 * - 'host-uid': the worker is root; each command runs as an unprivileged uid of its own
 *   (setpriv before bwrap), so RLIMIT_NPROC binds and nothing in it is root on the host.
 * - 'self': the worker is not root; the sandbox runs as the worker's own uid.
 * - 'root-mapped': the worker is root but unprivileged user namespaces are refused, so the
 *   sandbox uid maps to host root (no capabilities); RLIMIT_NPROC does not bind it.
 */
export type SandboxMode = 'host-uid' | 'self' | 'root-mapped';

/** The helper programs the sandbox runs, by absolute path. */
export interface Tools {
  bwrap: string;
  prlimit: string;
  setpriv?: string;
  unshare?: string;
  mount?: string;
}

export interface SandboxPlan {
  tools: Tools;
  mode: SandboxMode;
  workTree: string;
  cwd: string;
  command: string;
  network: RunRequest['network'];
  /** With network 'registries': the host path of the egress proxy's socket. */
  egressSocket?: string;
  env: Record<string, string>;
  readOnlyPaths: string[];
  limits: Required<SandboxLimits>;
  /** Run on an image's root filesystem instead of the host's system directories. */
  root?: { rootfs: string; writable?: boolean };
  /** cgroup.procs files to join before anything runs. */
  cgroupProcs?: string[];
  cgroupHasPids?: boolean;
}

/**
 * A system directory as lstat found it; one that is missing or neither kind is left out.
 * On an image's root, a top-level entry of the image, bound from `source` under its rootfs.
 */
export type SystemDir =
  | { path: string; kind: 'directory'; source?: string }
  | { path: string; kind: 'symlink'; target: string };

/** A read-only path of the plan, resolved on the host. */
export interface ReadOnlyPath {
  /** Its real path (symlinks resolved): what is bound, at the same path. */
  real: string;
  isDirectory: boolean;
  /** st_mode, for the "others may read it" check of 'host-uid' mode. */
  mode: number;
}

/** What the argument builder needs to know about the host; bwrap-host.ts gathers it. */
export interface HostFacts {
  /** Real paths that nothing bound may be or contain: /, /root, the app, HOME, DATA_DIR. */
  forbiddenRoots: string[];
  /** SYSTEM_DIRS as they are on this host; with an image root, the image's top-level entries. */
  systemDirs: SystemDir[];
  /** With an image root: the generated /etc files the image has a file for, to bind over it. */
  imageEtc?: Array<(typeof GENERATED_ETC_FILES)[number]>;
  /**
   * With an image root and the install egress: the host's loader and node's libraries (by
   * the paths node loaded them from, whose names the loader looks for), for the forwarder.
   */
  hostRuntime?: { loader: string; libs: string[] };
  /** The host directory holding the generated passwd, group, gitconfig and egress forwarder. */
  etcDir: string;
  /** Node's real install prefix (the directory above its bin/). */
  nodePrefix: string;
  /** Node's real binary, which runs the egress forwarder inside the sandbox. */
  nodeBinary: string;
  /** In 'host-uid' mode: the empty host directory the setup script mounts the binds on. */
  portalDir?: string;
  /** The plan's readOnlyPaths, in the same order. */
  readOnlyPaths: ReadOnlyPath[];
  /** What `<workTree>/.git` is ('file' for anything that exists and is neither a directory nor a symlink). */
  dotGit: 'absent' | 'directory' | 'file' | 'symlink';
}

// Run as root in the command's own mount namespace, before privileges are dropped: joins
// the cgroups, then binds each source into the portal. Paths arrive as arguments, never
// spliced into the script.
export const SETUP_SCRIPT = [
  'set -eu',
  'mnt=$1; portal=$2; nprocs=$3; nbinds=$4; shift 4',
  'while [ "$nprocs" -gt 0 ]; do echo $$ > "$1"; shift; nprocs=$((nprocs - 1)); done',
  'if [ "$nbinds" -gt 0 ]; then "$mnt" -t tmpfs -o mode=0755,size=1m,nosuid,nodev issue-agent-portal "$portal"; fi',
  'i=0',
  'while [ "$i" -lt "$nbinds" ]; do',
  '  if [ -d "$1" ]; then mkdir "$portal/$i"; else : > "$portal/$i"; fi',
  '  "$mnt" --bind "$1" "$portal/$i"',
  '  shift; i=$((i + 1))',
  'done',
  'exec "$@"',
].join('\n');

/** The host uid of a work tree's sandbox in 'host-uid' mode: stable for the tree, so files it wrote stay its own. */
export function hostUidFor(workTree: string): number {
  const h = createHash('sha256').update(workTree).digest().readUInt32BE(0);
  return HOST_UID_BASE + (h % HOST_UID_RANGE);
}

/** Throws when `p` is or contains one of the forbidden roots. */
export function assertBindable(p: string, what: string, forbiddenRoots: readonly string[]): void {
  for (const root of forbiddenRoots) {
    if (isInside(p, root)) throw new Error(`refusing to bind ${what} ${p} into the sandbox: it is or contains ${root}`);
  }
}

/** The node prefix when it must be bound: not already visible under /usr (nvm, /opt, …). */
export function boundNodePrefix(nodePrefix: string): string | undefined {
  return isInside('/usr', nodePrefix) ? undefined : nodePrefix;
}

/** The read-only paths' real paths, refused when forbidden or, as an unprivileged uid, unreadable. */
function checkedReadOnly(plan: SandboxPlan, host: HostFacts): string[] {
  return host.readOnlyPaths.map(({ real, isDirectory, mode }) => {
    assertBindable(real, 'read-only path', host.forbiddenRoots);
    if (plan.mode === 'host-uid') {
      // The portal makes the parents irrelevant, but the path itself must let "others" in.
      const needed = isDirectory ? 0o005 : 0o004;
      if ((mode & needed) !== needed) {
        throw new Error(
          `the sandbox runs as an unprivileged uid and cannot read ${real} (mode ${(mode & 0o777).toString(8)}); make it readable by others (chmod o+rX) to bind it`,
        );
      }
    }
    return real;
  });
}

/**
 * Where bwrap finds a host path: itself, or in 'host-uid' mode its bind under the portal
 * (`sources` are what the setup script binds there, in order).
 */
function portalSource(sources: readonly string[], portalDir: string | undefined): (real: string) => string {
  return (real) => {
    if (portalDir === undefined) return real;
    for (const [i, s] of sources.entries()) {
      if (real === s || isInside(s, real)) return path.join(portalDir, String(i), path.relative(s, real));
    }
    throw new Error(`internal: ${real} is not a portal source`);
  };
}

/** prlimit and its limits, the first program of every command. */
function rlimitArgs(plan: SandboxPlan): string[] {
  const { tools, limits } = plan;
  return [
    tools.prlimit,
    // With a pids cgroup that one is the exact limit (it counts refusals, for the marker);
    // RLIMIT_NPROC stays a little above it as the backstop.
    `--nproc=${limits.maxProcesses + (plan.cgroupHasPids ? 16 : 0)}`,
    // Soft below hard: SIGXCPU first, which the shell reports as "CPU time limit exceeded"
    // (exit 152); SIGKILL only for a process that ignores it.
    `--cpu=${limits.maxCpuSeconds}:${limits.maxCpuSeconds + 5}`,
    `--as=${limits.maxAddressSpaceBytes}`,
    `--fsize=${limits.maxFileBytes}`,
    '--core=0',
    '--',
  ];
}

/** Still root: a private mount namespace, the cgroups joined and the portal filled, then privileges dropped. */
function rootSideArgs(plan: SandboxPlan, sources: readonly string[], portalDir: string | undefined): string[] {
  const { tools } = plan;
  const hostUid = plan.mode === 'host-uid';
  const procs = plan.cgroupProcs ?? [];
  const argv: string[] = [];
  if (hostUid) {
    if (!tools.unshare || !tools.setpriv) throw new Error('internal: host-uid mode without unshare and setpriv');
    // A private mount namespace (util-linux unshare makes it private by default) for the portal.
    argv.push(tools.unshare, '--mount', '--');
  }
  if (hostUid || procs.length > 0) {
    argv.push(
      '/bin/sh',
      '-c',
      SETUP_SCRIPT,
      'sandbox-setup',
      tools.mount ?? 'mount',
      portalDir ?? '',
      String(procs.length),
      String(sources.length),
      ...procs,
      ...sources,
    );
  }
  if (hostUid) {
    const uid = String(hostUidFor(plan.workTree));
    argv.push(
      tools.setpriv!,
      `--reuid=${uid}`,
      `--regid=${uid}`,
      '--clear-groups',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--no-new-privs',
      '--',
    );
  }
  return argv;
}

/** bwrap itself: the namespaces, the sandbox user and the whole environment. */
function namespaceArgs(plan: SandboxPlan): string[] {
  const argv = [plan.tools.bwrap, '--unshare-all', '--unshare-user', '--disable-userns'];
  if (plan.network === 'full') argv.push('--share-net');
  argv.push('--die-with-parent', '--new-session');
  argv.push('--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID), '--hostname', 'sandbox');
  argv.push('--cap-drop', 'ALL');
  argv.push('--clearenv');
  for (const [k, v] of Object.entries(plan.env)) argv.push('--setenv', k, v);
  return argv;
}

/**
 * An image's root read-only (read-write for an environment's setup): its top-level entries (symlinks recreated), with the generated
 * passwd, group and git config where the image has a file to bind them over.
 */
function imageRootArgs(
  host: HostFacts,
  source: (real: string) => string,
  mountedInside: readonly string[],
  writable: boolean,
): string[] {
  const argv: string[] = [];
  for (const dir of host.systemDirs) {
    // A read-only bind takes no mount point under it: the work tree cannot sit inside the image's /var.
    const under = mountedInside.find((p) => isInside(dir.path, p));
    if (under !== undefined)
      throw new Error(
        `the image has its own ${dir.path}, which holds ${under}: the sandbox cannot mount it there. Put DATA_DIR (and read-only paths) under a directory the image does not have, such as /srv or /data`,
      );
    if (dir.kind === 'symlink') argv.push('--symlink', dir.target, dir.path);
    else argv.push(writable ? '--bind' : '--ro-bind', source(dir.source ?? dir.path), dir.path);
  }
  const has = new Set(host.imageEtc ?? []);
  for (const f of GENERATED_ETC_FILES) if (has.has(f)) argv.push('--ro-bind', path.join(host.etcDir, f), `/etc/${f}`);
  if (!has.has('gitconfig')) {
    argv.push('--ro-bind', path.join(host.etcDir, 'gitconfig'), IMAGE_GITCONFIG);
    argv.push('--setenv', 'GIT_CONFIG_SYSTEM', IMAGE_GITCONFIG);
  }
  return argv;
}

/** The host's node, its libraries and loader, and the launcher that runs them: the egress forwarder on an image. */
function hostRuntimeArgs(host: HostFacts): string[] {
  const runtime = host.hostRuntime;
  if (!runtime) throw new Error("internal: an image root with the install egress but without the host's runtime");
  const argv = ['--ro-bind', runtime.loader, `${HOST_RUNTIME_DIR}/ld.so`];
  for (const lib of runtime.libs) argv.push('--ro-bind', lib, `${HOST_RUNTIME_DIR}/lib/${path.basename(lib)}`);
  argv.push('--ro-bind', host.nodeBinary, `${HOST_RUNTIME_DIR}/node`);
  argv.push('--ro-bind', path.join(host.etcDir, NODE_LAUNCHER_FILE), IMAGE_NODE);
  for (const p of [runtime.loader, ...runtime.libs, host.nodeBinary])
    assertBindable(p, 'the host runtime', host.forbiddenRoots);
  return argv;
}

/** The system read-only: /usr, the system directories (merged /usr symlinks recreated), /etc's few files, node. */
function systemArgs(host: HostFacts): string[] {
  const argv = ['--ro-bind', '/usr', '/usr'];
  for (const dir of host.systemDirs) {
    if (dir.kind === 'symlink') argv.push('--symlink', dir.target, dir.path);
    else argv.push('--ro-bind', dir.path, dir.path);
  }
  for (const f of ETC_FILES) argv.push('--ro-bind-try', f, f);
  for (const f of GENERATED_ETC_FILES) argv.push('--ro-bind', path.join(host.etcDir, f), `/etc/${f}`);
  const prefix = boundNodePrefix(host.nodePrefix);
  if (prefix) {
    assertBindable(prefix, 'the node prefix', host.forbiddenRoots);
    argv.push('--ro-bind', prefix, prefix);
  }
  // If the app or DATA_DIR lives inside a bound system path (a global npm install under
  // /usr/local), hide it behind an empty tmpfs; the work tree is bound after, on top.
  const boundSources = ['/usr', ...(prefix ? [prefix] : [])];
  for (const secret of host.forbiddenRoots) {
    if (secret !== '/' && boundSources.some((src) => isInside(src, secret))) argv.push('--tmpfs', secret);
  }
  return argv;
}

/**
 * A fresh /proc of the sandbox's own pid namespace: no host process, no host environ.
 * bwrap's /dev is a tmpfs of half the RAM owned by the sandbox user: it is made read-only
 * (its device nodes still work), and /dev/shm, where programs expect to write, gets a
 * tmpfs with a size of its own, so filling either stops early.
 */
function procDevTmpArgs(): string[] {
  return [
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--perms',
    '1777',
    '--size',
    String(SHM_SIZE_BYTES),
    '--tmpfs',
    '/dev/shm',
    '--remount-ro',
    '/dev',
    '--size',
    String(TMP_SIZE_BYTES),
    '--tmpfs',
    '/tmp',
    '--dir',
    '/tmp/home',
  ];
}

/** The work tree read-write with its .git read-only, the read-only paths, and the egress socket. */
function workTreeArgs(
  plan: SandboxPlan,
  host: HostFacts,
  readOnly: readonly string[],
  egressSocket: string | undefined,
  source: (real: string) => string,
): string[] {
  const argv = ['--bind', source(plan.workTree), plan.workTree];
  // .git read-only: otherwise repository code could plant hooks or config (core.fsmonitor,
  // filters) that the host's git would run later with our privileges.
  const dotGit = path.join(plan.workTree, '.git');
  if (host.dotGit === 'symlink')
    throw new Error(`refusing to run: ${dotGit} is a symlink (bwrap would bind its target)`);
  if (host.dotGit !== 'absent') argv.push('--ro-bind', source(dotGit), dotGit);

  for (const real of readOnly) argv.push('--ro-bind', source(real), real);
  // The install egress: the sandbox keeps its own network namespace (loopback only); the
  // proxy's socket is its one way out, through a forwarder on its loopback.
  if (egressSocket) {
    argv.push('--bind', source(egressSocket), EGRESS_SOCKET);
    argv.push('--ro-bind', path.join(host.etcDir, FORWARDER_FILE), EGRESS_FORWARDER);
    if (plan.root) argv.push(...hostRuntimeArgs(host));
  }
  return argv;
}

/** The full argv (prlimit, the root-side setup, setpriv, bwrap) for one command. */
export function bwrapArgv(plan: SandboxPlan, host: HostFacts): string[] {
  assertBindable(plan.workTree, 'the work tree', host.forbiddenRoots);
  const hostUid = plan.mode === 'host-uid';
  const readOnly = checkedReadOnly(plan, host);
  if (plan.network === 'registries' && !plan.egressSocket)
    throw new Error('internal: network "registries" without the egress proxy\'s socket');
  const egressSocket = plan.network === 'registries' ? plan.egressSocket : undefined;
  if (hostUid && host.portalDir === undefined) throw new Error('internal: host-uid mode without the portal');
  // In 'host-uid' mode every host path the sandbox gets goes through the portal.
  if (plan.root) assertBindable(plan.root.rootfs, "the image's root", host.forbiddenRoots);
  const sources = hostUid
    ? [plan.workTree, ...readOnly, ...(egressSocket ? [egressSocket] : []), ...(plan.root ? [plan.root.rootfs] : [])]
    : [];
  const portalDir = hostUid ? host.portalDir : undefined;
  const source = portalSource(sources, portalDir);
  const node = plan.root ? IMAGE_NODE : host.nodeBinary;

  return [
    ...rlimitArgs(plan),
    ...rootSideArgs(plan, sources, portalDir),
    ...namespaceArgs(plan),
    ...(plan.root
      ? imageRootArgs(host, source, [plan.workTree, ...readOnly], plan.root.writable === true)
      : systemArgs(host)),
    ...procDevTmpArgs(),
    ...workTreeArgs(plan, host, readOnly, egressSocket, source),
    // Nothing else may appear on the root tmpfs; /tmp and the work tree stay writable.
    '--remount-ro',
    '/',
    '--chdir',
    plan.cwd,
    '--',
    ...(egressSocket ? behindForwarder(node, plan.command) : ['/bin/sh', '-c', plan.command]),
  ];
}
