import { spawn } from 'node:child_process';

/** What a sandboxed command may use; every field has a default (DEFAULT_LIMITS). */
export interface SandboxLimits {
  /** Tasks (processes and threads) of one command: RLIMIT_NPROC under its own host uid, and a cgroup's pids.max where one can be made. */
  maxProcesses: number;
  /** Memory of the whole command, page cache and its /tmp included: a cgroup's memory limit, where one can be made. */
  maxMemoryBytes: number;
  /** Address space of each process (RLIMIT_AS): a backstop where no cgroup is available. */
  maxAddressSpaceBytes: number;
  /** Largest file any process may write (RLIMIT_FSIZE). */
  maxFileBytes: number;
  /** CPU seconds of each process (RLIMIT_CPU); default: the time limit × the cores, so only a backstop for the timer. */
  maxCpuSeconds?: number;
  /** Disk used by the whole work tree, measured while the command runs; past it the command is killed. */
  maxWorkTreeBytes: number;
}

const GiB = 1024 ** 3;

export const DEFAULT_LIMITS: Readonly<Required<Omit<SandboxLimits, 'maxCpuSeconds'>>> = Object.freeze({
  // Threads count: a Node test runner with workers has a few dozen, a JVM build a few hundred.
  maxProcesses: 1024,
  // Roomy for a webpack or a JVM test suite, and still leaves the host its own memory.
  maxMemoryBytes: 8 * GiB,
  // V8 reserves ~10 GiB of address space for each WebAssembly memory (guard regions), so a
  // lower cap breaks wasm-based tools (esbuild-wasm, some test runners) long before RAM runs out.
  maxAddressSpaceBytes: 16 * GiB,
  maxFileBytes: 1 * GiB,
  // node_modules of a large monorepo reaches a few GiB; ten is far past any honest build.
  maxWorkTreeBytes: 10 * GiB,
});

/** The limits of one run: the request's own over the runner's over the defaults. */
export function resolveLimits(
  timeoutMs: number,
  cores: number,
  ...layers: Array<Partial<SandboxLimits> | undefined>
): Required<SandboxLimits> {
  const merged: SandboxLimits = { ...DEFAULT_LIMITS };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer ?? {}))
      if (v !== undefined) (merged as unknown as Record<string, number>)[k] = v;
  }
  for (const [k, v] of Object.entries(merged)) {
    if (v !== undefined && (!Number.isFinite(v) || v <= 0))
      throw new Error(`limit ${k} must be a positive number, got ${v}`);
  }
  // RLIMIT_CPU sums all threads of a process, so a multi-threaded build would hit a
  // wall-clock-sized budget early; scaled by the cores it only catches a spinning process
  // that escaped the timer.
  const maxCpuSeconds = merged.maxCpuSeconds ?? Math.max(1, Math.ceil(timeoutMs / 1000) * Math.max(1, cores) + 1);
  return { ...merged, maxCpuSeconds };
}

/** Which limit ended (or cut short) a command. */
export type LimitKind = 'timeout' | 'aborted' | 'disk' | 'processes' | 'memory' | 'cpu' | 'file-size';

export interface LimitHit {
  kind: LimitKind;
  /** One line for the model and for people reading an escalation; starts with "[killed: " when the command was killed. */
  marker: string;
}

export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[i]}`;
}

export const SIGXCPU = 24;
export const SIGXFSZ = 25;

/**
 * Limits the kernel enforces by signal: the command's shell (or bwrap) reports a child
 * killed by signal N as exit code 128+N.
 */
export function signalLimit(
  exitCode: number | null,
  signal: string | null,
  output: string,
  limits: Required<SandboxLimits>,
): LimitHit | undefined {
  // A shell whose child died of the signal prints strsignal()'s text and may carry on, so
  // the output tells even when the final exit code does not.
  if (exitCode === 128 + SIGXCPU || signal === 'SIGXCPU' || output.includes('CPU time limit exceeded')) {
    return {
      kind: 'cpu',
      marker: `[killed: a process used its ${limits.maxCpuSeconds} s of CPU time (RLIMIT_CPU); look for a busy loop, or run less at once]`,
    };
  }
  if (exitCode === 128 + SIGXFSZ || signal === 'SIGXFSZ' || output.includes('File size limit exceeded')) {
    return {
      kind: 'file-size',
      marker: `[killed: a process wrote a file past the ${formatBytes(limits.maxFileBytes)} file size limit (RLIMIT_FSIZE)]`,
    };
  }
  return undefined;
}

export function processesMarker(limits: Required<SandboxLimits>): LimitHit {
  return {
    kind: 'processes',
    marker: `[killed: the command reached its limit of ${limits.maxProcesses} processes and threads (a fork bomb, or too much parallelism: lower the number of workers or jobs)]`,
  };
}

/** Process starts were refused at the limit, but nothing was killed for it. */
export function refusedMarker(limits: Required<SandboxLimits>, count?: number): LimitHit {
  return {
    kind: 'processes',
    marker: `[limit: ${count === undefined ? 'process starts were' : `${count} process start${count === 1 ? ' was' : 's were'}`} refused at the limit of ${limits.maxProcesses} processes and threads]`,
  };
}

export function diskMarker(
  used: number,
  limits: Required<SandboxLimits>,
  killed: boolean,
  where = 'the work tree uses',
): LimitHit {
  const what = `${where} ${formatBytes(used)}, over its disk limit of ${formatBytes(limits.maxWorkTreeBytes)}`;
  return {
    kind: 'disk',
    marker: killed
      ? `[killed: ${what}; delete what the command wrote (build output, caches) or write scratch files under /tmp]`
      : `[limit: ${what}; delete what the command wrote before running more]`,
  };
}

export function memoryMarker(oomKills: number, limits: Required<SandboxLimits>): LimitHit {
  return {
    kind: 'memory',
    marker: `[killed: out of memory: ${oomKills === 1 ? 'a process was' : `${oomKills} processes were`} killed for passing the command's ${formatBytes(limits.maxMemoryBytes)} memory limit; use less at once (fewer workers, smaller inputs)]`,
  };
}

/** Bytes of disk the tree uses (allocated blocks, one file system, links not followed), or undefined if it cannot be measured. */
export function diskUsage(dir: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    // du is in coreutils on every host bubblewrap runs on, and walks far faster than a JS loop.
    const child = spawn('du', ['-s', '-x', '-B1', '--', dir], {
      env: { PATH: '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    child.on('error', () => resolve(undefined));
    // Files vanishing mid-walk make du exit 1 but still print the total.
    child.on('close', () => {
      const n = Number.parseInt(out, 10);
      resolve(Number.isFinite(n) ? n : undefined);
    });
  });
}
