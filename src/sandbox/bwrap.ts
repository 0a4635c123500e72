import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  chmodSync,
  chownSync,
  constants,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
  type Stats,
} from 'node:fs';
import { chmod, chown, lchown, lstat, readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { createRunCgroup, detectCgroups, type CgroupSupport, type RunCgroup } from './cgroup.js';
import {
  diskMarker,
  diskUsage,
  formatBytes,
  memoryMarker,
  processesMarker,
  refusedMarker,
  resolveLimits,
  type LimitHit,
  type SandboxLimits,
} from './limits.js';
import { EGRESS_FORWARDER, EGRESS_SOCKET, FORWARDER_SOURCE, behindForwarder, proxyEnv } from './egress/inside.js';
import { openEgress, type EgressSession } from './egress/proxy.js';
import { isInside, resolveRunRequest } from './run-request.js';
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  sandboxEnv,
  type RunnerOptions,
  type RunRequest,
  type RunResult,
  type Runner,
} from './runner.js';
import { spawnCapped, type Watcher } from './spawn-capped.js';

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

const TMP_SIZE_BYTES = 2 * 1024 * 1024 * 1024;
export const SHM_SIZE_BYTES = 64 * 1024 * 1024;

// dash, bash, Node and Python when fork/clone fails with EAGAIN.
const FORK_REFUSED =
  /Cannot fork|fork: (retry: )?Resource temporarily unavailable|spawn EAGAIN|BlockingIOError: \[Errno 11\]/;

/** Only what programs need to resolve names, verify TLS and find libraries; nothing with secrets. */
const ETC_FILES = [
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

const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

// src/sandbox/bwrap.ts (or dist/sandbox/bwrap.js) → the app's root, which holds .env and the key.
const APP_DIR = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));

/**
 * How the sandbox's processes appear on the host:
 * - 'host-uid': the worker is root; each command runs as an unprivileged uid of its own
 *   (setpriv before bwrap), so RLIMIT_NPROC binds and nothing in it is root on the host.
 * - 'self': the worker is not root; the sandbox runs as the worker's own uid.
 * - 'root-mapped': the worker is root but unprivileged user namespaces are refused, so the
 *   sandbox uid maps to host root (no capabilities); RLIMIT_NPROC does not bind it.
 */
export type SandboxMode = 'host-uid' | 'self' | 'root-mapped';

/** Paths whose exposure would hand repository code our secrets or other repositories: nothing bound may be one of them or contain one. */
function forbiddenRoots(): string[] {
  const roots = ['/', '/root', APP_DIR, os.homedir()];
  if (process.env.DATA_DIR) roots.push(path.resolve(process.env.DATA_DIR));
  return roots.map((p) => {
    try {
      return realpathSync(p);
    } catch {
      return p;
    }
  });
}

function assertBindable(p: string, what: string): void {
  for (const root of forbiddenRoots()) {
    if (isInside(p, root)) throw new Error(`refusing to bind ${what} ${p} into the sandbox: it is or contains ${root}`);
  }
}

/**
 * The bound directory that makes `file` visible in the sandbox, or undefined when none does
 * (or the app's own directory hides it): for the secrets that must never be there.
 */
export function exposedToSandbox(file: string): string | undefined {
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    real = path.resolve(file);
  }
  const prefix = path.dirname(path.dirname(realpathSync(process.execPath)));
  const sources = ['/usr', ...SYSTEM_DIRS, ...ETC_FILES, ...(isInside('/usr', prefix) ? [] : [prefix])];
  // What sandboxArgv covers with an empty tmpfs: a forbidden root inside /usr or the node prefix.
  const hidden = forbiddenRoots().filter(
    (r) => r !== '/' && ['/usr', ...(isInside('/usr', prefix) ? [] : [prefix])].some((src) => isInside(src, r)),
  );
  if (hidden.some((h) => isInside(h, real))) return undefined;
  return sources.find((src) => {
    try {
      return isInside(realpathSync(src), real);
    } catch {
      return false;
    }
  });
}

/** The system directories: symlinks recreated as symlinks (merged /usr), real directories bound read-only. */
function systemArgs(): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const dir of SYSTEM_DIRS) {
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(dir), dir);
    else if (st.isDirectory()) args.push('--ro-bind', dir, dir);
  }
  return args;
}

/**
 * A directory of ours in the host's /tmp, the same for every worker process of this uid
 * (so none is left behind per process). /tmp is world-writable: one that someone else made,
 * or anyone may write, is not used; a fresh private one is made instead.
 */
function sharedTmpDir(name: string): string {
  const uid = process.getuid?.() ?? -1;
  const dir = path.join(os.tmpdir(), `${name}-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = lstatSync(dir);
  if (st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0) {
    if ((st.mode & 0o777) !== 0o755) chmodSync(dir, 0o755);
    return dir;
  }
  const own = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  chmodSync(own, 0o755);
  return own;
}

/** Writes a file by rename, so a concurrent worker never binds a half-written one. */
function writeIfChanged(file: string, content: string): void {
  try {
    if (readFileSync(file, 'utf8') === content) return;
  } catch {
    // Not there yet.
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode: 0o444 });
  renameSync(tmp, file);
}

let etcDir: string | undefined;

/**
 * passwd/group naming the sandbox user (npm and git want a name for the uid), and a git
 * config that trusts every directory: the work tree's .git stays owned by the host's user,
 * which git inside would otherwise refuse as "dubious ownership". Readable by the sandbox's
 * host uid.
 */
function generatedEtc(): string {
  if (etcDir && existsSync(etcDir)) return etcDir;
  const dir = sharedTmpDir('issue-agent-sandbox-etc');
  writeIfChanged(
    path.join(dir, 'passwd'),
    `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_GID}:sandbox:/tmp/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
  );
  writeIfChanged(path.join(dir, 'group'), `root:x:0:\nsandbox:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`);
  writeIfChanged(path.join(dir, 'gitconfig'), '[safe]\n\tdirectory = *\n');
  writeIfChanged(path.join(dir, 'egress-forward.cjs'), FORWARDER_SOURCE);
  etcDir = dir;
  return dir;
}

let portalDir: string | undefined;

/**
 * An empty host directory that each command's private mount namespace covers with a tmpfs
 * holding bind mounts of the work tree and read-only paths. The unprivileged sandbox uid
 * then reaches them whatever the modes of their parents (DATA_DIR may be 0700), and the
 * host's own permissions stay as they are. Nothing is ever mounted on it in the host's
 * namespace, so many commands and workers share it.
 */
function portal(): string {
  if (portalDir && existsSync(portalDir)) return portalDir;
  portalDir = sharedTmpDir('issue-agent-portal');
  return portalDir;
}

/** Node's install prefix, when it is not already visible under /usr (nvm, /opt, …). */
function nodePrefixArgs(): string[] {
  const prefix = path.dirname(path.dirname(realpathSync(process.execPath)));
  if (isInside('/usr', prefix)) return [];
  assertBindable(prefix, 'the node prefix');
  return ['--ro-bind', prefix, prefix];
}

/** The host uid of a work tree's sandbox in 'host-uid' mode: stable for the tree, so files it wrote stay its own. */
export function hostUidFor(workTree: string): number {
  const h = createHash('sha256').update(workTree).digest().readUInt32BE(0);
  return HOST_UID_BASE + (h % HOST_UID_RANGE);
}

export interface Tools {
  bwrap: string;
  prlimit: string;
  setpriv?: string;
  unshare?: string;
  mount?: string;
}

function findOnPath(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(':')) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // Next entry.
    }
  }
  return undefined;
}

const INSTALL_BWRAP = 'Debian/Ubuntu: apt-get install bubblewrap; Fedora/RHEL: dnf install bubblewrap';
const OPT_OUT = 'or, to run repository code with NO isolation, set SANDBOX=unsandboxed explicitly';

/** The helpers the sandbox needs, found on searchPath; throws naming the install command. */
export function findTools(searchPath: string): Tools {
  const bwrap = findOnPath('bwrap', searchPath);
  if (!bwrap)
    throw new Error(
      `bubblewrap (bwrap) is not installed (not found on PATH ${searchPath}). Install it (${INSTALL_BWRAP}), ${OPT_OUT}.`,
    );
  const prlimit = findOnPath('prlimit', searchPath);
  if (!prlimit)
    throw new Error(
      `prlimit is not installed (not found on PATH ${searchPath}). Install util-linux (apt-get install util-linux / dnf install util-linux), ${OPT_OUT}.`,
    );
  const tools: Tools = { bwrap, prlimit };
  for (const name of ['setpriv', 'unshare', 'mount'] as const) {
    const p = findOnPath(name, searchPath);
    if (p) tools[name] = p;
  }
  return tools;
}

// Run as root in the command's own mount namespace, before privileges are dropped: joins
// the cgroups, then binds each source into the portal. Paths arrive as arguments, never
// spliced into the script.
const SETUP_SCRIPT = [
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
  /** cgroup.procs files to join before anything runs. */
  cgroupProcs?: string[];
  cgroupHasPids?: boolean;
}

/** The full argv (prlimit, the root-side setup, setpriv, bwrap) for one command; exported so tests and reports can show it. */
export function sandboxArgv(plan: SandboxPlan): string[] {
  const { tools, limits } = plan;
  assertBindable(plan.workTree, 'the work tree');
  const hostUid = plan.mode === 'host-uid';
  const readOnly = plan.readOnlyPaths.map((p) => {
    const real = realpathSync(p);
    assertBindable(real, 'read-only path');
    if (hostUid) {
      // The portal makes the parents irrelevant, but the path itself must let "others" in.
      const st = statSync(real);
      const needed = st.isDirectory() ? 0o005 : 0o004;
      if ((st.mode & needed) !== needed) {
        throw new Error(
          `the sandbox runs as an unprivileged uid and cannot read ${real} (mode ${(st.mode & 0o777).toString(8)}); make it readable by others (chmod o+rX) to bind it`,
        );
      }
    }
    return real;
  });
  if (plan.network === 'registries' && !plan.egressSocket)
    throw new Error('internal: network "registries" without the egress proxy\'s socket');
  const egressSocket = plan.network === 'registries' ? plan.egressSocket : undefined;
  // In 'host-uid' mode every host path the sandbox gets goes through the portal.
  const sources = hostUid ? [plan.workTree, ...readOnly, ...(egressSocket ? [egressSocket] : [])] : [];
  const source = (real: string): string => {
    if (!hostUid) return real;
    for (const [i, s] of sources.entries()) {
      if (real === s || isInside(s, real)) return path.join(portal(), String(i), path.relative(s, real));
    }
    throw new Error(`internal: ${real} is not a portal source`);
  };

  const procs = plan.cgroupProcs ?? [];
  const argv = [
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
      hostUid ? portal() : '',
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

  argv.push(tools.bwrap, '--unshare-all', '--unshare-user', '--disable-userns');
  if (plan.network === 'full') argv.push('--share-net');
  argv.push('--die-with-parent', '--new-session');
  argv.push('--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID), '--hostname', 'sandbox');
  argv.push('--cap-drop', 'ALL');
  argv.push('--clearenv');
  for (const [k, v] of Object.entries(plan.env)) argv.push('--setenv', k, v);

  argv.push(...systemArgs());
  for (const f of ETC_FILES) argv.push('--ro-bind-try', f, f);
  const etc = generatedEtc();
  for (const f of ['passwd', 'group', 'gitconfig']) argv.push('--ro-bind', path.join(etc, f), `/etc/${f}`);
  const nodeArgs = nodePrefixArgs();
  argv.push(...nodeArgs);
  // If the app or DATA_DIR lives inside a bound system path (a global npm install under
  // /usr/local), hide it behind an empty tmpfs; the work tree is bound after, on top.
  const boundSources = ['/usr', ...(nodeArgs[1] ? [nodeArgs[1]] : [])];
  for (const secret of forbiddenRoots()) {
    if (secret !== '/' && boundSources.some((src) => isInside(src, secret))) argv.push('--tmpfs', secret);
  }
  // A fresh /proc of the sandbox's own pid namespace: no host process, no host environ.
  // bwrap's /dev is a tmpfs of half the RAM owned by the sandbox user: it is made read-only
  // (its device nodes still work), and /dev/shm, where programs expect to write, gets a
  // tmpfs with a size of its own, so filling either stops early.
  argv.push(
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
  );
  argv.push('--size', String(TMP_SIZE_BYTES), '--tmpfs', '/tmp', '--dir', '/tmp/home');

  argv.push('--bind', source(plan.workTree), plan.workTree);
  // .git read-only: otherwise repository code could plant hooks or config (core.fsmonitor,
  // filters) that the host's git would run later with our privileges.
  const dotGit = path.join(plan.workTree, '.git');
  let gitStat: Stats | undefined;
  try {
    gitStat = lstatSync(dotGit);
  } catch {
    gitStat = undefined;
  }
  if (gitStat?.isSymbolicLink())
    throw new Error(`refusing to run: ${dotGit} is a symlink (bwrap would bind its target)`);
  if (gitStat) argv.push('--ro-bind', source(dotGit), dotGit);

  for (const real of readOnly) argv.push('--ro-bind', source(real), real);
  // The install egress: the sandbox keeps its own network namespace (loopback only); the
  // proxy's socket is its one way out, through a forwarder on its loopback.
  if (egressSocket) {
    argv.push('--bind', source(egressSocket), EGRESS_SOCKET);
    argv.push('--ro-bind', path.join(etc, 'egress-forward.cjs'), EGRESS_FORWARDER);
  }
  // Nothing else may appear on the root tmpfs; /tmp and the work tree stay writable.
  argv.push('--remount-ro', '/');
  argv.push(
    '--chdir',
    plan.cwd,
    '--',
    ...(egressSocket ? behindForwarder(realpathSync(process.execPath), plan.command) : ['/bin/sh', '-c', plan.command]),
  );
  return argv;
}

/**
 * In 'host-uid' mode the sandbox's uid must own what it may write: the tree's files (those
 * the host's git or file tools made since the last command) are handed to it. The tree's
 * root stays the host user's, with the sandbox's group allowed to write, so the host's git
 * still trusts it; .git is left alone (it is read-only inside anyway).
 */
async function handTreeTo(workTree: string, uid: number): Promise<void> {
  const top = await lstat(workTree);
  if (top.gid !== uid) await chown(workTree, top.uid, uid);
  if ((top.mode & 0o070) !== 0o070) await chmod(workTree, (top.mode & 0o7777) | 0o070);
  const list = await new Promise<string[]>((resolve, reject) => {
    const child = spawn(
      'find',
      [
        '.',
        '-path',
        './.git',
        '-prune',
        '-o',
        '(',
        '!',
        '-uid',
        String(uid),
        '-o',
        '!',
        '-gid',
        String(uid),
        ')',
        '-print0',
      ],
      {
        cwd: workTree,
        env: { PATH: '/usr/bin:/bin' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const chunks: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0
        ? resolve(
            Buffer.concat(chunks)
              .toString('utf8')
              .split('\0')
              .filter((p) => p && p !== '.'),
          )
        : reject(new Error(`find in ${workTree} failed: ${err.trim()}`)),
    );
  });
  // No sandbox process of this tree is alive here, so nothing can swap a path for a link
  // between find and lchown; lchown never follows the last component anyway.
  for (const rel of list) {
    await lchown(path.join(workTree, rel), uid, uid).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}

/** Tasks (threads included) whose real uid is `uid`, from the host's /proc. */
async function tasksOfUid(uid: number): Promise<number> {
  let total = 0;
  const entries = await readdir('/proc').catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((e) => /^\d+$/.test(e))
      .map(async (pid) => {
        const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
        const u = /^Uid:\s+(\d+)/m.exec(status);
        if (u && Number(u[1]) === uid) total += Number(/^Threads:\s+(\d+)/m.exec(status)?.[1] ?? 1);
      }),
  );
  return total;
}

export interface BwrapProbe {
  tools: Tools;
  mode: SandboxMode;
  cgroups?: CgroupSupport;
  /** Why 'host-uid' could not be used, when the worker is root. */
  fallbackReason?: string;
}

const probes = new Map<string, BwrapProbe | Error>();

function trySandbox(tools: Tools, mode: SandboxMode): string | undefined {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'issue-agent-probe-'));
  try {
    if (mode === 'host-uid') {
      chownSync(dir, 0, hostUidFor(dir));
      chmodSync(dir, 0o770);
    }
    const argv = sandboxArgv({
      tools,
      mode,
      workTree: dir,
      cwd: dir,
      command: 'true',
      network: 'none',
      env: { PATH: '/usr/bin:/bin' },
      readOnlyPaths: [],
      limits: resolveLimits(10_000, 1),
    });
    const [file, ...args] = argv;
    const res = spawnSync(file!, args, { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 10_000, cwd: '/' });
    if (res.error) return res.error.message;
    if (res.status !== 0) return (res.stderr || `exit ${res.status}`).trim();
    return undefined;
  } finally {
    spawnSync('rm', ['-rf', '--', dir]);
  }
}

/**
 * Finds the tools and runs a trivial sandbox once per search path, so a host that cannot
 * sandbox fails at start-up, naming what to install, rather than at the first job.
 */
export function probeBwrap(searchPath: string): BwrapProbe {
  let probe = probes.get(searchPath);
  if (!probe) {
    try {
      const tools = findTools(searchPath);
      const isRoot = process.getuid?.() === 0;
      let mode: SandboxMode = isRoot ? 'host-uid' : 'self';
      let why = '';
      let failure: string | undefined;
      if (mode === 'host-uid') {
        why =
          !tools.setpriv || !tools.unshare || !tools.mount
            ? 'setpriv, unshare or mount (util-linux) is missing'
            : (trySandbox(tools, 'host-uid') ?? '');
        if (why) {
          mode = 'root-mapped';
          failure = trySandbox(tools, mode);
        }
      } else {
        failure = trySandbox(tools, mode);
      }
      if (failure) {
        throw new Error(
          `bubblewrap is installed but cannot make a sandbox (${failure}${why ? `; as an unprivileged uid: ${why}` : ''}). ` +
            'Make sure user namespaces are allowed (sysctl user.max_user_namespaces > 0; on Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0 ' +
            `or an AppArmor profile for bwrap; in containers a seccomp/AppArmor profile that permits them). Install: ${INSTALL_BWRAP}; ${OPT_OUT}.`,
        );
      }
      const cgroups = isRoot ? detectCgroups() : undefined;
      probe = { tools, mode, ...(cgroups ? { cgroups } : {}), ...(why ? { fallbackReason: why } : {}) };
    } catch (err) {
      probe = err instanceof Error ? err : new Error(String(err));
    }
    probes.set(searchPath, probe);
  }
  if (probe instanceof Error) throw probe;
  return probe;
}

export interface BwrapRunner extends Runner {
  readonly backend: 'bwrap';
  readonly mode: SandboxMode;
  /** How each limit is enforced on this host, for logs and tests. */
  readonly enforcement: {
    processes: string;
    memory: string;
    fileSize: string;
    cpu: string;
    disk: string;
    wallTime: string;
  };
}

/** Runs repository commands in bubblewrap: no host files but the system, the work tree and what the caller names. */
export function createBwrapRunner(log: Logger, opts: RunnerOptions = {}): BwrapRunner {
  const searchPath = opts.searchPath ?? process.env.PATH ?? '/usr/bin:/bin';
  const probe = probeBwrap(searchPath);
  const { tools, mode, cgroups } = probe;
  const cores = os.availableParallelism();
  const defaults = resolveLimits(60_000, cores, opts.limits);
  const enforcement = {
    processes: [
      mode === 'root-mapped'
        ? 'NOT by RLIMIT_NPROC (the sandbox is host root)'
        : `RLIMIT_NPROC${mode === 'host-uid' ? ' under a host uid of its own' : " (shared with the worker's uid)"}`,
      ...(cgroups?.pidsParent ? [`cgroup v${cgroups.version} pids.max`] : []),
    ].join(' + '),
    memory: cgroups?.memoryParent
      ? `cgroup v${cgroups.version} memory limit + RLIMIT_AS per process`
      : 'RLIMIT_AS per process only (no writable cgroup memory controller)',
    fileSize: 'RLIMIT_FSIZE',
    cpu: 'RLIMIT_CPU per process',
    disk: 'work-tree watchdog (du while the command runs)',
    wallTime: 'timer, whole process group killed',
  };
  if (mode === 'root-mapped') {
    if (!opts.allowRootMapped) {
      throw new Error(
        `the worker runs as root but cannot start the sandbox as an unprivileged uid (${probe.fallbackReason ?? 'unknown reason'}): its commands would run as host root without capabilities, ` +
          "able to read root-only files in the directories bound into it, and with no process-count limit. Install util-linux's setpriv, unshare and mount, or run the worker as a user other than root; " +
          'to run like this anyway, set SANDBOX_ALLOW_ROOT_MAPPED=1.',
      );
    }
    log.warn(
      { sandbox: 'bwrap', mode, reason: probe.fallbackReason },
      'the worker runs as root and cannot start the sandbox as an unprivileged uid: the process-count limit is NOT enforced (a fork bomb is bounded only by the time limit)',
    );
  }
  for (const file of opts.secretFiles ?? []) {
    const bound = exposedToSandbox(file);
    if (bound)
      throw new Error(
        `${file} is inside ${bound}, which the sandbox binds read-only: repository code could read it. Move it out of ${bound} (the App's key and .env must never be visible in the sandbox).`,
      );
  }
  log.info(
    {
      sandbox: 'bwrap',
      mode,
      limits: {
        processes: defaults.maxProcesses,
        memory: formatBytes(defaults.maxMemoryBytes),
        addressSpace: formatBytes(defaults.maxAddressSpaceBytes),
        fileSize: formatBytes(defaults.maxFileBytes),
        workTree: formatBytes(defaults.maxWorkTreeBytes),
      },
      enforcement,
    },
    'sandbox ready',
  );

  return {
    backend: 'bwrap',
    mode,
    enforcement,
    async run(req: RunRequest): Promise<RunResult> {
      const { workTree, cwd } = resolveRunRequest(req);
      const limits = resolveLimits(req.timeoutMs, cores, opts.limits, req.limits);
      if (mode === 'host-uid') await handTreeTo(workTree, hostUidFor(workTree));
      let egress: EgressSession | undefined;
      let cgroup: RunCgroup | undefined;
      if (cgroups) {
        try {
          cgroup = await createRunCgroup(cgroups, limits);
        } catch (err) {
          log.warn({ err }, 'could not make a cgroup for the command; it runs with rlimits only');
        }
      }
      try {
        if (req.network === 'registries')
          egress = await openEgress({
            rules: req.egress?.rules ?? [],
            privateNetworks: req.egress?.privateNetworks ?? [],
            log,
          });
        const argv = sandboxArgv({
          tools,
          mode,
          workTree,
          cwd,
          command: req.command,
          network: req.network,
          ...(egress ? { egressSocket: egress.socketPath } : {}),
          env: egress ? { ...sandboxEnv(req.env), ...proxyEnv() } : sandboxEnv(req.env),
          readOnlyPaths: req.readOnlyPaths ?? [],
          limits,
          ...(cgroup ? { cgroupProcs: cgroup.procsFiles, cgroupHasPids: cgroup.hasPids } : {}),
        });
        const [file, ...args] = argv;
        log.debug({ command: req.command, cwd, network: req.network, timeoutMs: req.timeoutMs }, 'sandbox run');

        const watchers: Watcher[] = [
          {
            // A small tree is measured in a few ms; a large one is spaced out by spawnCapped
            // (ten times the measuring time). What a command writes between two looks is
            // the overshoot: write speed × this interval.
            everyMs: 250,
            async check() {
              const used = await diskUsage(workTree);
              return used !== undefined && used > limits.maxWorkTreeBytes ? diskMarker(used, limits, true) : undefined;
            },
          },
        ];
        // Fork refusals alone do not stop a fork bomb: it spins at the limit until the
        // timer. Two looks in a row at the limit end it at once.
        const countTasks = cgroup?.hasPids
          ? () => cgroup!.pidsCurrent()
          : mode === 'host-uid'
            ? () => tasksOfUid(hostUidFor(workTree))
            : undefined;
        if (countTasks) {
          let strikes = 0;
          watchers.push({
            everyMs: 300,
            async check() {
              const n = await countTasks();
              strikes = n !== undefined && n >= limits.maxProcesses - 1 ? strikes + 1 : 0;
              return strikes >= 2 ? processesMarker(limits) : undefined;
            },
          });
        }

        const result = await spawnCapped({
          command: req.command,
          file: file!,
          args,
          // The wrapper processes themselves get nothing from process.env either.
          env: { PATH: '/usr/bin:/bin' },
          // Host-side cwd for the wrappers only; the command's cwd is --chdir.
          cwd: '/',
          timeoutMs: req.timeoutMs,
          maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
          ...(req.signal ? { signal: req.signal } : {}),
          watchers,
          limits,
          async afterExit(output): Promise<LimitHit | undefined> {
            const ev = cgroup ? await cgroup.events() : undefined;
            if (ev && ev.oomKills > 0) return memoryMarker(ev.oomKills, limits);
            // The pids cgroup counts what it refused; RLIMIT_NPROC (a host uid of its own) can
            // refuse first, and then only the shells' and runtimes' own words show it.
            const hits = cgroup?.hasPids ? (ev?.pidsMaxHits ?? 0) : 0;
            if (hits > 0 || FORK_REFUSED.test(output)) return refusedMarker(limits, hits > 0 ? hits : undefined);
            const used = await diskUsage(workTree);
            return used !== undefined && used > limits.maxWorkTreeBytes ? diskMarker(used, limits, false) : undefined;
          },
        });
        return egress ? { ...result, egress: egress.report() } : result;
      } finally {
        await egress?.close();
        await cgroup?.remove();
      }
    },
  };
}
