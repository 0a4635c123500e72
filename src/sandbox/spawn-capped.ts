import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { signalLimit, type LimitHit, type SandboxLimits } from './limits.js';
import { OutputCap } from './output-cap.js';
import type { RunResult } from './runner.js';

/** A check run while the command runs; a hit kills the whole process group. */
export interface Watcher {
  /** Least time between two checks; a slow check is spaced out further (ten times its own duration). */
  everyMs: number;
  check(): Promise<LimitHit | undefined>;
}

export interface SpawnCappedOptions {
  /** What the caller asked to run; reported back as RunResult.command. */
  command: string;
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  timeoutMs: number;
  maxOutputBytes: number;
  signal?: AbortSignal;
  watchers?: Watcher[];
  /** Runs once the command is gone, e.g. to read a cgroup's OOM count; its hit is reported too. */
  afterExit?: (output: string) => Promise<LimitHit | undefined>;
  /** For the markers of limits the kernel enforces by signal (CPU time, file size). */
  limits?: Required<SandboxLimits>;
  /**
   * Takes stdout instead of the capped output, which then holds stderr (and the markers)
   * only: for a host tool whose stdout the caller parses and bounds itself.
   */
  onStdout?: (chunk: Buffer) => void;
}

// After the main process exits, stragglers that still hold the pipes (a daemon that
// escaped the process group in the unsandboxed backend) must not hang the caller.
const STDIO_GRACE_MS = 2_000;

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    // Negative pid: the whole process group, since the child was spawned detached (setsid).
    process.kill(-pid, 'SIGKILL');
  } catch {
    // ESRCH: already gone.
  }
}

function appendLine(output: string, line: string): string {
  return `${output}${output.endsWith('\n') || output === '' ? '' : '\n'}${line}`;
}

/** The result of a command that an already aborted signal kept from starting. */
function abortedBeforeStart(command: string): RunResult {
  return {
    command,
    exitCode: null,
    signal: null,
    timedOut: false,
    durationMs: 0,
    output: '[aborted before start]',
    omittedBytes: 0,
    limit: 'aborted',
  };
}

/** One spawned command and everything that may end it: the timer, the signal, the watchers. */
class CappedRun {
  private readonly started = performance.now();
  private readonly cap: OutputCap;
  // The first limit that ended the command; later ones only add their line.
  private readonly hits: LimitHit[] = [];
  private exit: { code: number | null; signal: string | null } | undefined;
  private settled = false;
  private exited = false;
  private pid: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly watchTimers = new Set<NodeJS.Timeout>();
  private readonly onAbort = (): void => this.fire({ kind: 'aborted', marker: '[killed: aborted]' });

  constructor(
    private readonly opts: SpawnCappedOptions,
    private readonly resolve: (result: RunResult) => void,
    private readonly reject: (err: Error) => void,
  ) {
    this.cap = new OutputCap(opts.maxOutputBytes);
  }

  start(): void {
    const { opts } = this;
    const child = spawn(opts.file, opts.args, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.pid = child.pid;
    const onData = (chunk: Buffer): void => this.cap.push(chunk);
    child.stdout.on('data', opts.onStdout ?? onData);
    child.stderr.on('data', onData);

    this.timer = setTimeout(
      () => this.fire({ kind: 'timeout', marker: `[killed: timed out after ${opts.timeoutMs} ms]` }),
      opts.timeoutMs,
    );
    opts.signal?.addEventListener('abort', this.onAbort, { once: true });
    for (const w of opts.watchers ?? []) this.schedule(w, w.everyMs);

    child.on('error', (err) => {
      if (this.settled) return;
      this.settled = true;
      this.stopWatching();
      killGroup(this.pid);
      this.reject(new Error(`could not start ${opts.file}: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      this.exit = { code, signal };
      this.stopWatching();
      // Background processes the command left behind die with it.
      killGroup(this.pid);
      this.graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        void this.finish();
      }, STDIO_GRACE_MS);
    });
    child.on('close', () => void this.finish());
  }

  private fire(hit: LimitHit): void {
    if (this.exited || this.hits.some((h) => h.kind === hit.kind)) return;
    this.hits.push(hit);
    killGroup(this.pid);
  }

  private schedule(w: Watcher, delayMs: number): void {
    const t = setTimeout(async () => {
      this.watchTimers.delete(t);
      if (this.exited) return;
      const t0 = performance.now();
      let hit: LimitHit | undefined;
      try {
        hit = await w.check();
      } catch {
        hit = undefined;
      }
      if (hit) this.fire(hit);
      if (!this.exited) this.schedule(w, Math.max(w.everyMs, 10 * (performance.now() - t0)));
    }, delayMs);
    this.watchTimers.add(t);
  }

  private stopWatching(): void {
    this.exited = true;
    clearTimeout(this.timer);
    for (const t of this.watchTimers) clearTimeout(t);
    this.watchTimers.clear();
    this.opts.signal?.removeEventListener('abort', this.onAbort);
  }

  private async finish(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    this.stopWatching();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    const { opts, hits } = this;
    const code = this.exit?.code ?? null;
    const sig = this.exit?.signal ?? null;
    let output = this.cap.toString();
    const fromSignal = opts.limits && hits.length === 0 ? signalLimit(code, sig, output, opts.limits) : undefined;
    if (fromSignal) hits.push(fromSignal);
    if (opts.afterExit) {
      const after = await opts.afterExit(output).catch(() => undefined);
      if (after && !hits.some((h) => h.kind === after.kind)) hits.push(after);
    }
    for (const h of hits) output = appendLine(output, h.marker);
    const result: RunResult = {
      command: opts.command,
      exitCode: code,
      signal: sig,
      timedOut: hits[0]?.kind === 'timeout',
      durationMs: Math.round(performance.now() - this.started),
      output,
      omittedBytes: this.cap.omittedBytes,
    };
    if (hits[0]) result.limit = hits[0].kind;
    this.resolve(result);
  }
}

/**
 * Spawns a process in its own process group with a timeout, an abort signal, watchers for
 * other limits and a bounded output capture; when any of them fires the whole group gets
 * SIGKILL (repository code may ignore SIGTERM) and the output ends with a "[killed: …]" line.
 */
export function spawnCapped(opts: SpawnCappedOptions): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    if (opts.signal?.aborted) {
      resolve(abortedBeforeStart(opts.command));
      return;
    }
    new CappedRun(opts, resolve, reject).start();
  });
}
