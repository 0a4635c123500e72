import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, chownSync, constants, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hostUidFor, type SandboxMode, type Tools } from './bwrap-argv.js';
import { sandboxArgv } from './bwrap-host.js';
import { detectCgroups, type CgroupSupport } from './cgroup.js';
import { resolveLimits } from './limits.js';

/** Whether bubblewrap and util-linux's helpers exist on this host, and in which mode a sandbox starts. */

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

export interface BwrapProbe {
  tools: Tools;
  mode: SandboxMode;
  cgroups?: CgroupSupport;
  /** Why 'host-uid' could not be used, when the worker is root. */
  fallbackReason?: string;
}

const probes = new Map<string, BwrapProbe | Error>();

/** Runs `true` in a sandbox of `mode` on an empty work tree; undefined when it worked, else why not. */
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

/** Tries the best mode this worker can have: as root a host uid of its own, else (or failing that) the next one. */
function probeOnce(searchPath: string): BwrapProbe {
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
  return { tools, mode, ...(cgroups ? { cgroups } : {}), ...(why ? { fallbackReason: why } : {}) };
}

/**
 * Finds the tools and runs a trivial sandbox once per search path, so a host that cannot
 * sandbox fails at start-up, naming what to install, rather than at the first job.
 */
export function probeBwrap(searchPath: string): BwrapProbe {
  let probe = probes.get(searchPath);
  if (!probe) {
    try {
      probe = probeOnce(searchPath);
    } catch (err) {
      probe = err instanceof Error ? err : new Error(String(err));
    }
    probes.set(searchPath, probe);
  }
  if (probe instanceof Error) throw probe;
  return probe;
}
