import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Where this process may make child cgroups with a memory and a pids controller. cgroup v2
 * (one hierarchy) and v1 (one per controller) are both found through /proc/self; either
 * part may be missing (a read-only /sys/fs/cgroup in a container, a v2 parent that holds
 * processes and so cannot hand controllers down).
 */
export interface CgroupSupport {
  version: 1 | 2;
  memoryParent?: string;
  pidsParent?: string;
}

/** One command's cgroup(s). */
export interface RunCgroup {
  /** cgroup.procs files the command's first process writes its pid into before it runs anything. */
  procsFiles: string[];
  hasMemory: boolean;
  hasPids: boolean;
  pidsCurrent(): Promise<number | undefined>;
  events(): Promise<{ oomKills: number; pidsMaxHits: number }>;
  /** Kills whatever is left and removes the cgroup(s). */
  remove(): Promise<void>;
}

interface Mount {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

const PREFIX = 'issue-agent-';

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

function mounts(): Mount[] {
  const out: Mount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    if (!l[3] || !l[4] || !r[0]) continue;
    out.push({
      root: unescapeMount(l[3]),
      mountPoint: unescapeMount(l[4]),
      fsType: r[0],
      superOptions: (r[2] ?? '').split(','),
    });
  }
  return out;
}

function ownCgroups(): Array<{ controllers: string[]; path: string }> {
  return readFileSync('/proc/self/cgroup', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [, controllers = '', ...rest] = line.split(':');
      return { controllers: controllers.split(',').filter(Boolean), path: rest.join(':') };
    });
}

function dirOf(mount: Mount, cgPath: string): string | undefined {
  const rel = path.posix.relative(mount.root, cgPath);
  if (rel.startsWith('..')) return undefined;
  return path.join(mount.mountPoint, rel);
}

/** Makes and removes a probe child; true when it has the controller's files and accepts a limit. */
function probe(parent: string, file: string, value: string): boolean {
  const child = path.join(parent, `${PREFIX}probe-${process.pid}`);
  try {
    mkdirSync(child);
  } catch {
    return false;
  }
  try {
    if (!existsSync(path.join(child, file))) return false;
    writeFileSync(path.join(child, file), value);
    return true;
  } catch {
    return false;
  } finally {
    try {
      rmdirSync(child);
    } catch {
      // Left for removeStale on the next start.
    }
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Empty cgroups left by a worker that crashed (its pid is in the name). */
function removeStale(parent: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^issue-agent-(?:probe-)?(\d+)(?:-\d+)?$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      rmdirSync(path.join(parent, name));
    } catch {
      // Still has processes, or not ours to remove.
    }
  }
}

/** What this host allows, probed once at start-up; undefined when no controller is usable. */
export function detectCgroups(): CgroupSupport | undefined {
  let all: Mount[];
  let own: Array<{ controllers: string[]; path: string }>;
  try {
    all = mounts();
    own = ownCgroups();
  } catch {
    return undefined;
  }
  const v2Mount = all.find((m) => m.fsType === 'cgroup2');
  const v2Own = own.find((c) => c.controllers.length === 0);
  const v1 = (controller: string): string | undefined => {
    const m = all.find((x) => x.fsType === 'cgroup' && x.superOptions.includes(controller));
    const c = own.find((x) => x.controllers.includes(controller));
    return m && c ? dirOf(m, c.path) : undefined;
  };
  const v1Memory = v1('memory');
  const v1Pids = v1('pids');
  if (v1Memory || v1Pids) {
    const support: CgroupSupport = { version: 1 };
    if (v1Memory) removeStale(v1Memory);
    if (v1Pids) removeStale(v1Pids);
    if (v1Memory && probe(v1Memory, 'memory.limit_in_bytes', String(1024 ** 3))) support.memoryParent = v1Memory;
    if (v1Pids && probe(v1Pids, 'pids.max', '100')) support.pidsParent = v1Pids;
    if (support.memoryParent || support.pidsParent) return support;
  }
  if (v2Mount && v2Own) {
    const parent = dirOf(v2Mount, v2Own.path);
    if (!parent) return undefined;
    let available: string[];
    try {
      available = readFileSync(path.join(parent, 'cgroup.controllers'), 'utf8').trim().split(/\s+/);
    } catch {
      return undefined;
    }
    removeStale(parent);
    for (const c of ['memory', 'pids']) {
      if (!available.includes(c)) continue;
      try {
        // Fails with EBUSY when the parent itself holds processes (the "no internal processes" rule).
        writeFileSync(path.join(parent, 'cgroup.subtree_control'), `+${c}`);
      } catch {
        // Already enabled, or not allowed: the probe tells.
      }
    }
    const support: CgroupSupport = { version: 2 };
    if (probe(parent, 'memory.max', String(1024 ** 3))) support.memoryParent = parent;
    if (probe(parent, 'pids.max', '100')) support.pidsParent = parent;
    if (support.memoryParent || support.pidsParent) return support;
  }
  return undefined;
}

let counter = 0;

async function readNumberField(file: string, field: string): Promise<number> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const m = new RegExp(`^${field} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

async function killAndRemove(dir: string, version: 1 | 2): Promise<void> {
  for (let attempt = 0; attempt < 40; attempt++) {
    if (version === 2) await writeFile(path.join(dir, 'cgroup.kill'), '1').catch(() => undefined);
    const pids = (await readFile(path.join(dir, 'cgroup.procs'), 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
    }
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      // EBUSY until the last task is reaped.
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** A fresh cgroup for one command, with its memory and process limits written. */
export async function createRunCgroup(
  support: CgroupSupport,
  limits: { maxMemoryBytes: number; maxProcesses: number },
): Promise<RunCgroup> {
  const name = `${PREFIX}${process.pid}-${++counter}`;
  const dirs = new Set<string>();
  const made: string[] = [];
  const make = async (parent: string): Promise<string> => {
    const dir = path.join(parent, name);
    if (!dirs.has(dir)) {
      mkdirSync(dir);
      dirs.add(dir);
      made.push(dir);
    }
    return dir;
  };
  try {
    const memDir = support.memoryParent ? await make(support.memoryParent) : undefined;
    const pidsDir = support.pidsParent ? await make(support.pidsParent) : undefined;
    if (memDir) {
      if (support.version === 2) {
        await writeFile(path.join(memDir, 'memory.max'), String(limits.maxMemoryBytes));
        // No swap: the limit means memory, and swapping would only slow the kill.
        await writeFile(path.join(memDir, 'memory.swap.max'), '0').catch(() => undefined);
      } else {
        await writeFile(path.join(memDir, 'memory.limit_in_bytes'), String(limits.maxMemoryBytes));
        await writeFile(path.join(memDir, 'memory.memsw.limit_in_bytes'), String(limits.maxMemoryBytes)).catch(
          () => undefined,
        );
      }
    }
    if (pidsDir) await writeFile(path.join(pidsDir, 'pids.max'), String(limits.maxProcesses));
    return {
      procsFiles: made.map((d) => path.join(d, 'cgroup.procs')),
      hasMemory: memDir !== undefined,
      hasPids: pidsDir !== undefined,
      async pidsCurrent() {
        if (!pidsDir) return undefined;
        const n = Number.parseInt(await readFile(path.join(pidsDir, 'pids.current'), 'utf8').catch(() => ''), 10);
        return Number.isFinite(n) ? n : undefined;
      },
      async events() {
        const oomKills = memDir
          ? await readNumberField(
              path.join(memDir, support.version === 2 ? 'memory.events' : 'memory.oom_control'),
              'oom_kill',
            )
          : 0;
        const pidsMaxHits = pidsDir ? await readNumberField(path.join(pidsDir, 'pids.events'), 'max') : 0;
        return { oomKills, pidsMaxHits };
      },
      async remove() {
        await Promise.all(made.map((d) => killAndRemove(d, support.version)));
      },
    };
  } catch (err) {
    await Promise.all(made.map((d) => killAndRemove(d, support.version)));
    throw err;
  }
}
