import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { chmod, chown, lchown, lstat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ETC_FILES,
  GENERATED_ETC_FILES,
  FORWARDER_FILE,
  NODE_LAUNCHER,
  NODE_LAUNCHER_FILE,
  SANDBOX_GID,
  SANDBOX_UID,
  SYSTEM_DIRS,
  boundNodePrefix,
  bwrapArgv,
  type HostFacts,
  type SandboxPlan,
  type SystemDir,
} from './bwrap-argv.js';
import { FORWARDER_SOURCE } from './egress/inside.js';
import { isInside } from './run-request.js';

/**
 * What the host holds for the sandbox: the files made before a run (the generated /etc,
 * the portal, the work tree handed to the sandbox's uid) and the facts read from the host
 * that the pure argument builder of bwrap-argv.ts takes as data.
 */

// src/sandbox/bwrap-host.ts (or dist/sandbox/bwrap-host.js) → the app's root, which holds .env and the key.
const APP_DIR = path.resolve(fileURLToPath(new URL('../../', import.meta.url)));

function realOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Paths whose exposure would hand repository code our secrets or other repositories: nothing bound may be one of them or contain one. */
export function forbiddenRoots(): string[] {
  const roots = ['/', '/root', APP_DIR, os.homedir()];
  if (process.env.DATA_DIR) roots.push(path.resolve(process.env.DATA_DIR));
  return roots.map(realOrSelf);
}

/** Node's real install prefix: the directory above the bin/ of the running node. */
function nodePrefix(): string {
  return path.dirname(path.dirname(realpathSync(process.execPath)));
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
  const prefix = boundNodePrefix(nodePrefix());
  const boundDirs = ['/usr', ...(prefix ? [prefix] : [])];
  const sources = ['/usr', ...SYSTEM_DIRS, ...ETC_FILES, ...(prefix ? [prefix] : [])];
  // What the argv covers with an empty tmpfs: a forbidden root inside /usr or the node prefix.
  const hidden = forbiddenRoots().filter((r) => r !== '/' && boundDirs.some((src) => isInside(src, r)));
  if (hidden.some((h) => isInside(h, real))) return undefined;
  return sources.find((src) => {
    try {
      return isInside(realpathSync(src), real);
    } catch {
      return false;
    }
  });
}

/** What an image's root has that the sandbox makes its own (a fresh /proc, /dev, /tmp; /run for our binds). */
const IMAGE_SKIPPED = new Set(['proc', 'dev', 'sys', 'tmp', 'run', 'lost+found']);

/** An image's top-level entries: directories bound from the rootfs, symlinks recreated (merged /usr). */
function imageSystemDirs(rootfs: string): SystemDir[] {
  const dirs: SystemDir[] = [];
  for (const name of readdirSync(rootfs).sort()) {
    if (IMAGE_SKIPPED.has(name)) continue;
    const source = path.join(rootfs, name);
    const st = lstatSync(source);
    if (st.isSymbolicLink()) dirs.push({ path: `/${name}`, kind: 'symlink', target: readlinkSync(source) });
    else if (st.isDirectory()) dirs.push({ path: `/${name}`, kind: 'directory', source });
  }
  return dirs;
}

/** Which of the generated /etc files an image has a regular file for (a mount needs one to cover). */
function imageEtc(rootfs: string): NonNullable<HostFacts['imageEtc']> {
  // Never through a symlink of the image's: its /etc may point anywhere on the host.
  const etc = path.join(rootfs, 'etc');
  if (!lstatSync(etc, { throwIfNoEntry: false })?.isDirectory()) return [];
  return GENERATED_ETC_FILES.filter((f) => {
    try {
      return lstatSync(path.join(rootfs, 'etc', f)).isFile();
    } catch {
      return false;
    }
  });
}

let runtime: NonNullable<HostFacts['hostRuntime']> | undefined;

/**
 * The host's dynamic loader and the system libraries node links: what the host's node needs
 * on an image. Read once: never an addon (`*.node`) or anything under a forbidden root that
 * the worker loaded later, by the names the loader asks for (libstdc++.so.6, not its target).
 */
function hostRuntime(): NonNullable<HostFacts['hostRuntime']> {
  if (runtime) return runtime;
  const report = process.report.getReport() as { sharedObjects?: string[] };
  const node = realpathSync(process.execPath);
  const forbidden = forbiddenRoots().filter((r) => r !== '/');
  const objects = [...new Set(report.sharedObjects ?? [])].filter(
    (p) =>
      path.isAbsolute(p) &&
      !p.endsWith('.node') &&
      realpathSync(p) !== node &&
      !forbidden.some((r) => isInside(r, realpathSync(p))),
  );
  const loader = objects.find((p) => /\/ld-(linux|musl)[^/]*\.so/.test(p));
  if (!loader) throw new Error("cannot find the host's dynamic loader among node's shared objects");
  runtime = { loader, libs: objects.filter((p) => p !== loader) };
  return runtime;
}

/** SYSTEM_DIRS as lstat sees them: symlinks (merged /usr) with their targets, real directories. */
function systemDirs(): SystemDir[] {
  const dirs: SystemDir[] = [];
  for (const dir of SYSTEM_DIRS) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(dir);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) dirs.push({ path: dir, kind: 'symlink', target: readlinkSync(dir) });
    else if (st.isDirectory()) dirs.push({ path: dir, kind: 'directory' });
  }
  return dirs;
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
function writeIfChanged(file: string, content: string, mode = 0o444): void {
  try {
    if (readFileSync(file, 'utf8') === content) return;
  } catch {
    // Not there yet.
  }
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
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
  writeIfChanged(path.join(dir, FORWARDER_FILE), FORWARDER_SOURCE);
  writeIfChanged(path.join(dir, NODE_LAUNCHER_FILE), NODE_LAUNCHER, 0o555);
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

function dotGitKind(workTree: string): HostFacts['dotGit'] {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(path.join(workTree, '.git'));
  } catch {
    return 'absent';
  }
  if (st.isSymbolicLink()) return 'symlink';
  return st.isDirectory() ? 'directory' : 'file';
}

/**
 * Prepares the host for `plan` (the generated /etc, in 'host-uid' mode the portal) and
 * reads what the argument builder needs to know about it.
 */
export function prepareHost(plan: SandboxPlan): HostFacts {
  const readOnlyPaths = plan.readOnlyPaths.map((p) => {
    const real = realpathSync(p);
    const st = statSync(real);
    return { real, isDirectory: st.isDirectory(), mode: st.mode };
  });
  const nodeBinary = realpathSync(process.execPath);
  const rootfs = plan.root ? realpathSync(plan.root.rootfs) : undefined;
  return {
    forbiddenRoots: forbiddenRoots(),
    systemDirs: rootfs ? imageSystemDirs(rootfs) : systemDirs(),
    ...(rootfs ? { imageEtc: imageEtc(rootfs) } : {}),
    ...(rootfs && plan.network === 'registries' ? { hostRuntime: hostRuntime() } : {}),
    etcDir: generatedEtc(),
    nodePrefix: path.dirname(path.dirname(nodeBinary)),
    nodeBinary,
    ...(plan.mode === 'host-uid' ? { portalDir: portal() } : {}),
    readOnlyPaths,
    dotGit: dotGitKind(plan.workTree),
  };
}

/** The full argv (prlimit, the root-side setup, setpriv, bwrap) for one command on this host; exported so tests and reports can show it. */
export function sandboxArgv(plan: SandboxPlan): string[] {
  return bwrapArgv(plan, prepareHost(plan));
}

/** The paths under `workTree` (but not in .git) that are not owned by `uid` as user and group. */
function notOwnedBy(workTree: string, uid: number): Promise<string[]> {
  return new Promise<string[]>((resolve, reject) => {
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
}

/**
 * In 'host-uid' mode the sandbox's uid must own what it may write: the tree's files (those
 * the host's git or file tools made since the last command) are handed to it. The tree's
 * root stays the host user's, with the sandbox's group allowed to write, so the host's git
 * still trusts it; .git is left alone (it is read-only inside anyway).
 */
export async function handTreeTo(workTree: string, uid: number): Promise<void> {
  const top = await lstat(workTree);
  if (top.gid !== uid) await chown(workTree, top.uid, uid);
  if ((top.mode & 0o070) !== 0o070) await chmod(workTree, (top.mode & 0o7777) | 0o070);
  const list = await notOwnedBy(workTree, uid);
  // No sandbox process of this tree is alive here, so nothing can swap a path for a link
  // between find and lchown; lchown never follows the last component anyway.
  for (const rel of list) {
    await lchown(path.join(workTree, rel), uid, uid).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'ENOENT') throw e;
    });
  }
}
