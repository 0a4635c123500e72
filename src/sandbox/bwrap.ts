import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { isInside, resolveRunRequest } from './run-request.js';
import { DEFAULT_MAX_OUTPUT_BYTES, sandboxEnv, type RunRequest, type RunResult, type Runner } from './runner.js';
import { spawnCapped } from './spawn-capped.js';

export const SANDBOX_UID = 1000;
export const SANDBOX_GID = 1000;
const MAX_PROCESSES = 512;
const TMP_SIZE_BYTES = 2 * 1024 * 1024 * 1024;

/** Only what programs need to resolve names, verify TLS and find libraries; nothing with secrets. */
const ETC_FILES = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/localtime',
];

const SYSTEM_DIRS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

// src/sandbox/bwrap.ts (or dist/sandbox/bwrap.js) → the app's root, which holds .env and the key.
const APP_DIR = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));

/**
 * Paths whose exposure would hand repository code our secrets or other repositories:
 * nothing bound may be one of them or contain one.
 */
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

/** The system directories: symlinks recreated as symlinks (merged /usr), real directories bound read-only. */
function systemArgs(): string[] {
  const args = ['--ro-bind', '/usr', '/usr'];
  for (const dir of SYSTEM_DIRS) {
    let st;
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

let etcDir: string | undefined;

/** passwd/group naming the sandbox user, written once per process; tools like npm and git want a name for the uid. */
function generatedEtc(): string {
  if (etcDir && existsSync(etcDir)) return etcDir;
  etcDir = mkdtempSync(path.join(os.tmpdir(), 'issue-agent-sandbox-etc-'));
  writeFileSync(
    path.join(etcDir, 'passwd'),
    `root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nsandbox:x:${SANDBOX_UID}:${SANDBOX_GID}:sandbox:/tmp/home:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`,
    { mode: 0o444 },
  );
  writeFileSync(path.join(etcDir, 'group'), `root:x:0:\nsandbox:x:${SANDBOX_GID}:\nnogroup:x:65534:\n`, { mode: 0o444 });
  return etcDir;
}

/** Node's install prefix, when it is not already visible under /usr (nvm, /opt, …). */
function nodePrefixArgs(): string[] {
  const prefix = path.dirname(path.dirname(realpathSync(process.execPath)));
  if (isInside('/usr', prefix)) return [];
  assertBindable(prefix, 'the node prefix');
  return ['--ro-bind', prefix, prefix];
}

export interface BwrapArgsInput {
  workTree: string;
  cwd: string;
  command: string;
  network: RunRequest['network'];
  env: Record<string, string>;
  readOnlyPaths: string[];
  timeoutMs: number;
}

/** The full argv (prlimit wrapper + bwrap) for one command; exported so tests and reports can show it. */
export function bwrapArgv(input: BwrapArgsInput): string[] {
  assertBindable(input.workTree, 'the work tree');
  // RLIMIT_CPU sums all threads of a process, so a multi-threaded build would hit a
  // wall-clock-sized budget early; scaled by the cores it is only a backstop for the timer.
  const cpuSeconds = Math.max(1, Math.ceil(input.timeoutMs / 1000) * os.availableParallelism() + 1);
  // TODO: memory limit. RLIMIT_AS breaks V8 (it reserves large virtual ranges), so this
  // needs a cgroup (systemd-run --scope -p MemoryMax=… or a delegated cgroup v2 subtree).
  const argv = ['prlimit', `--nproc=${MAX_PROCESSES}`, `--cpu=${cpuSeconds}`, '--core=0', '--', 'bwrap'];
  argv.push('--unshare-all', '--unshare-user', '--disable-userns');
  if (input.network === 'full') argv.push('--share-net');
  argv.push('--die-with-parent', '--new-session');
  argv.push('--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID), '--hostname', 'sandbox');
  argv.push('--cap-drop', 'ALL');
  argv.push('--clearenv');
  for (const [k, v] of Object.entries(input.env)) argv.push('--setenv', k, v);

  argv.push(...systemArgs());
  for (const f of ETC_FILES) argv.push('--ro-bind-try', f, f);
  const etc = generatedEtc();
  argv.push('--ro-bind', path.join(etc, 'passwd'), '/etc/passwd', '--ro-bind', path.join(etc, 'group'), '/etc/group');
  const nodeArgs = nodePrefixArgs();
  argv.push(...nodeArgs);
  // If the app or DATA_DIR lives inside a bound system path (a global npm install under
  // /usr/local), hide it behind an empty tmpfs; the work tree is bound after, on top.
  const boundSources = ['/usr', ...(nodeArgs[1] ? [nodeArgs[1]] : [])];
  for (const secret of forbiddenRoots()) {
    if (secret !== '/' && boundSources.some((src) => isInside(src, secret))) argv.push('--tmpfs', secret);
  }
  argv.push('--proc', '/proc', '--dev', '/dev');
  argv.push('--size', String(TMP_SIZE_BYTES), '--tmpfs', '/tmp', '--dir', '/tmp/home');

  argv.push('--bind', input.workTree, input.workTree);
  // .git read-only: otherwise repository code could plant hooks or config (core.fsmonitor,
  // filters) that the host's git would run later with our privileges.
  const dotGit = path.join(input.workTree, '.git');
  let gitStat;
  try {
    gitStat = lstatSync(dotGit);
  } catch {
    gitStat = undefined;
  }
  if (gitStat?.isSymbolicLink()) throw new Error(`refusing to run: ${dotGit} is a symlink (bwrap would bind its target)`);
  if (gitStat) argv.push('--ro-bind', dotGit, dotGit);

  for (const p of input.readOnlyPaths) {
    const real = realpathSync(p);
    assertBindable(real, 'read-only path');
    argv.push('--ro-bind', real, real);
  }
  // Nothing else may appear on the root tmpfs; /tmp and the work tree stay writable.
  argv.push('--remount-ro', '/');
  argv.push('--chdir', input.cwd, '--', '/bin/sh', '-c', input.command);
  return argv;
}

let usable: true | Error | undefined;

/** Runs a trivial sandbox once per process; fails with how to fix it rather than at the first job. */
export function assertBwrapUsable(): void {
  if (usable === undefined) {
    const res = spawnSync(
      'bwrap',
      ['--unshare-all', '--unshare-user', '--disable-userns', '--die-with-parent', '--uid', String(SANDBOX_UID), '--gid', String(SANDBOX_GID), ...systemArgs(), '--', '/usr/bin/true'],
      { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 10_000 },
    );
    const prlimit = spawnSync('prlimit', ['--version'], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', timeout: 10_000 });
    if (res.error || res.status !== 0) {
      const why = res.error ? res.error.message : (res.stderr || `exit ${res.status}`).trim();
      usable = new Error(
        `bubblewrap is not usable (${why}). Install it (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap) ` +
          'and make sure user namespaces are allowed (sysctl kernel.unprivileged_userns_clone=1, or in containers run with ' +
          'a seccomp/AppArmor profile that permits them), or opt out explicitly with SANDBOX=unsandboxed (no isolation).',
      );
    } else if (prlimit.error || prlimit.status !== 0) {
      usable = new Error('prlimit (util-linux) is not usable; install util-linux, or opt out explicitly with SANDBOX=unsandboxed (no isolation).');
    } else {
      usable = true;
    }
  }
  if (usable !== true) throw usable;
}

/** Runs repository commands in bubblewrap: no host files but the system, the work tree and what the caller names. */
export function createBwrapRunner(log: Logger): Runner {
  assertBwrapUsable();
  if (process.getuid?.() === 0) {
    log.debug('the worker runs as root: the sandbox uid maps to host root without capabilities, and RLIMIT_NPROC is not enforced for it');
  }
  return {
    backend: 'bwrap',
    async run(req: RunRequest): Promise<RunResult> {
      const { workTree, cwd } = resolveRunRequest(req);
      const argv = bwrapArgv({
        workTree,
        cwd,
        command: req.command,
        network: req.network,
        env: sandboxEnv(req.env),
        readOnlyPaths: req.readOnlyPaths ?? [],
        timeoutMs: req.timeoutMs,
      });
      const [file, ...args] = argv;
      log.debug({ command: req.command, cwd, network: req.network, timeoutMs: req.timeoutMs }, 'sandbox run');
      return spawnCapped({
        command: req.command,
        file: file ?? 'prlimit',
        args,
        // The wrapper processes themselves get nothing from process.env either.
        env: { PATH: '/usr/bin:/bin' },
        // Host-side cwd for prlimit/bwrap only; the command's cwd is --chdir.
        cwd: '/',
        timeoutMs: req.timeoutMs,
        maxOutputBytes: req.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES,
        ...(req.signal ? { signal: req.signal } : {}),
      });
    },
  };
}

