import { realpathSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import os from 'node:os';
import type { Logger } from 'pino';
import { hostUidFor, type SandboxMode, type Tools } from './bwrap-argv.js';
import { exposedToSandbox, handTreeTo, sandboxArgv } from './bwrap-host.js';
import { probeBwrap, type BwrapProbe } from './bwrap-probe.js';
import { createRunCgroup, type CgroupSupport, type RunCgroup } from './cgroup.js';
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
import { proxyEnv } from './egress/inside.js';
import { openEgress, type EgressSession } from './egress/proxy.js';
import { resolveRunRequest } from './run-request.js';
import {
  commandEnv,
  DEFAULT_MAX_OUTPUT_BYTES,
  type RunnerOptions,
  type RunRequest,
  type RunResult,
  type Runner,
} from './runner.js';
import { spawnCapped, type Watcher } from './spawn-capped.js';

// dash, bash, Node and Python when fork/clone fails with EAGAIN.
const FORK_REFUSED =
  /Cannot fork|fork: (retry: )?Resource temporarily unavailable|spawn EAGAIN|BlockingIOError: \[Errno 11\]/;

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

export interface BwrapRunner extends Runner {
  readonly backend: 'bwrap';
  readonly mode: SandboxMode;
  /** How each limit is enforced on this host, for logs and tests. */
  readonly enforcement: Enforcement;
}

type Enforcement = {
  processes: string;
  memory: string;
  fileSize: string;
  cpu: string;
  disk: string;
  wallTime: string;
};

/** What the runner learnt at start-up and every command shares. */
interface RunnerSetup {
  log: Logger;
  tools: Tools;
  mode: SandboxMode;
  cgroups: CgroupSupport | undefined;
  cores: number;
  limits: Partial<SandboxLimits> | undefined;
}

function describeEnforcement(mode: SandboxMode, cgroups: CgroupSupport | undefined): Enforcement {
  return {
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
}

/** 'root-mapped' runs repository code as host root: refused unless the operator allowed it, and then said loudly. */
function acceptRootMapped(log: Logger, probe: BwrapProbe, opts: RunnerOptions): void {
  if (!opts.allowRootMapped) {
    throw new Error(
      `the worker runs as root but cannot start the sandbox as an unprivileged uid (${probe.fallbackReason ?? 'unknown reason'}): its commands would run as host root without capabilities, ` +
        "able to read root-only files in the directories bound into it, and with no process-count limit. Install util-linux's setpriv, unshare and mount, or run the worker as a user other than root; " +
        'to run like this anyway, set SANDBOX_ALLOW_ROOT_MAPPED=1.',
    );
  }
  log.warn(
    { sandbox: 'bwrap', mode: probe.mode, reason: probe.fallbackReason },
    'the worker runs as root and cannot start the sandbox as an unprivileged uid: the process-count limit is NOT enforced (a fork bomb is bounded only by the time limit)',
  );
}

function refuseExposedSecrets(secretFiles: readonly string[]): void {
  for (const file of secretFiles) {
    const bound = exposedToSandbox(file);
    if (bound)
      throw new Error(
        `${file} is inside ${bound}, which the sandbox binds read-only: repository code could read it. Move it out of ${bound} (the App's key and .env must never be visible in the sandbox).`,
      );
  }
}

/** A cgroup of the command's own, or undefined (rlimits only) when none can be made. */
async function openRunCgroup(
  log: Logger,
  cgroups: CgroupSupport | undefined,
  limits: Required<SandboxLimits>,
): Promise<RunCgroup | undefined> {
  if (!cgroups) return undefined;
  try {
    return await createRunCgroup(cgroups, limits);
  } catch (err) {
    log.warn({ err }, 'could not make a cgroup for the command; it runs with rlimits only');
    return undefined;
  }
}

/** The checks made while the command runs: the work tree's disk use and the process count. */
function runWatchers(
  workTree: string,
  limits: Required<SandboxLimits>,
  mode: SandboxMode,
  cgroup: RunCgroup | undefined,
  writableRoot?: { rootfs: string; bytesBefore: number },
): Watcher[] {
  const watchers: Watcher[] = [];
  // An environment's setup writes into its copy of the image, outside the work tree: what it
  // adds there has the work tree's limit too.
  if (writableRoot)
    watchers.push({
      everyMs: 500,
      async check() {
        const used = await diskUsage(writableRoot.rootfs);
        const added = used === undefined ? 0 : used - writableRoot.bytesBefore;
        return added > limits.maxWorkTreeBytes ? diskMarker(added, limits, true, 'the setup added') : undefined;
      },
    });
  watchers.push({
    // A small tree is measured in a few ms; a large one is spaced out by spawnCapped
    // (ten times the measuring time). What a command writes between two looks is
    // the overshoot: write speed × this interval.
    everyMs: 250,
    async check() {
      const used = await diskUsage(workTree);
      return used !== undefined && used > limits.maxWorkTreeBytes ? diskMarker(used, limits, true) : undefined;
    },
  });
  // Fork refusals alone do not stop a fork bomb: it spins at the limit until the
  // timer. Two looks in a row at the limit end it at once.
  const countTasks = cgroup?.hasPids
    ? () => cgroup.pidsCurrent()
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
  return watchers;
}

/** The limit a finished command hit, if any: OOM kills, refused forks, the work tree's size. */
function limitHitAfterExit(
  workTree: string,
  limits: Required<SandboxLimits>,
  cgroup: RunCgroup | undefined,
): (output: string) => Promise<LimitHit | undefined> {
  return async (output) => {
    const ev = cgroup ? await cgroup.events() : undefined;
    if (ev && ev.oomKills > 0) return memoryMarker(ev.oomKills, limits);
    // The pids cgroup counts what it refused; RLIMIT_NPROC (a host uid of its own) can
    // refuse first, and then only the shells' and runtimes' own words show it.
    const hits = cgroup?.hasPids ? (ev?.pidsMaxHits ?? 0) : 0;
    if (hits > 0 || FORK_REFUSED.test(output)) return refusedMarker(limits, hits > 0 ? hits : undefined);
    const used = await diskUsage(workTree);
    return used !== undefined && used > limits.maxWorkTreeBytes ? diskMarker(used, limits, false) : undefined;
  };
}

/** One command: the tree handed over, a cgroup and (for installs) the egress opened, run, all closed again. */
async function runInSandbox(setup: RunnerSetup, req: RunRequest): Promise<RunResult> {
  const { log, tools, mode } = setup;
  const { workTree, cwd } = resolveRunRequest(req);
  const limits = resolveLimits(req.timeoutMs, setup.cores, setup.limits, req.limits);
  if (mode === 'host-uid') await handTreeTo(workTree, hostUidFor(workTree));
  // An environment's setup writes into its copy of the image: the sandbox's uid must own it.
  if (mode === 'host-uid' && req.root?.writable) await handTreeTo(realpathSync(req.root.rootfs), hostUidFor(workTree));
  const writableRoot = req.root?.writable
    ? { rootfs: realpathSync(req.root.rootfs), bytesBefore: (await diskUsage(req.root.rootfs)) ?? 0 }
    : undefined;
  let egress: EgressSession | undefined;
  const cgroup = await openRunCgroup(log, setup.cgroups, limits);
  try {
    if (req.network === 'registries')
      egress = await openEgress({
        rules: req.egress?.rules ?? [],
        privateNetworks: req.egress?.privateNetworks ?? [],
        log,
      });
    const [file, ...args] = sandboxArgv({
      tools,
      mode,
      workTree,
      cwd,
      command: req.command,
      network: req.network,
      ...(egress ? { egressSocket: egress.socketPath } : {}),
      env: commandEnv(req, egress ? proxyEnv() : {}),
      ...(req.root ? { root: { rootfs: realpathSync(req.root.rootfs), writable: req.root.writable === true } } : {}),
      readOnlyPaths: req.readOnlyPaths ?? [],
      limits,
      ...(cgroup ? { cgroupProcs: cgroup.procsFiles, cgroupHasPids: cgroup.hasPids } : {}),
    });
    log.debug({ command: req.command, cwd, network: req.network, timeoutMs: req.timeoutMs }, 'sandbox run');
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
      watchers: runWatchers(workTree, limits, mode, cgroup, writableRoot),
      limits,
      afterExit: limitHitAfterExit(workTree, limits, cgroup),
    });
    return egress ? { ...result, egress: egress.report() } : result;
  } finally {
    await egress?.close();
    await cgroup?.remove();
  }
}

/** Runs repository commands in bubblewrap: no host files but the system, the work tree and what the caller names. */
export function createBwrapRunner(log: Logger, opts: RunnerOptions = {}): BwrapRunner {
  const searchPath = opts.searchPath ?? process.env.PATH ?? '/usr/bin:/bin';
  const probe = probeBwrap(searchPath);
  const { tools, mode, cgroups } = probe;
  const cores = os.availableParallelism();
  const defaults = resolveLimits(60_000, cores, opts.limits);
  const enforcement = describeEnforcement(mode, cgroups);
  if (mode === 'root-mapped') acceptRootMapped(log, probe, opts);
  refuseExposedSecrets(opts.secretFiles ?? []);
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
  const setup: RunnerSetup = { log, tools, mode, cgroups, cores, limits: opts.limits };
  return {
    backend: 'bwrap',
    mode,
    enforcement,
    run: (req) => runInSandbox(setup, req),
  };
}
