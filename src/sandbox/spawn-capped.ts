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

/**
 * Spawns a process in its own process group with a timeout, an abort signal, watchers for
 * other limits and a bounded output capture; when any of them fires the whole group gets
 * SIGKILL (repository code may ignore SIGTERM) and the output ends with a "[killed: …]" line.
 */
export function spawnCapped(opts: SpawnCappedOptions): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const started = performance.now();
    const cap = new OutputCap(opts.maxOutputBytes);
    // The first limit that ended the command; later ones only add their line.
    const hits: LimitHit[] = [];
    let exit: { code: number | null; signal: string | null } | undefined;
    let settled = false;
    let exited = false;

    if (opts.signal?.aborted) {
      resolve({
        command: opts.command,
        exitCode: null,
        signal: null,
        timedOut: false,
        durationMs: 0,
        output: '[aborted before start]',
        omittedBytes: 0,
        limit: 'aborted',
      });
      return;
    }

    const child = spawn(opts.file, opts.args, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid;

    const onData = (chunk: Buffer): void => cap.push(chunk);
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);

    const fire = (hit: LimitHit): void => {
      if (exited || hits.some((h) => h.kind === hit.kind)) return;
      hits.push(hit);
      killGroup(pid);
    };

    const timer = setTimeout(
      () => fire({ kind: 'timeout', marker: `[killed: timed out after ${opts.timeoutMs} ms]` }),
      opts.timeoutMs,
    );
    const onAbort = (): void => fire({ kind: 'aborted', marker: '[killed: aborted]' });
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const watchTimers = new Set<NodeJS.Timeout>();
    const schedule = (w: Watcher, delayMs: number): void => {
      const t = setTimeout(async () => {
        watchTimers.delete(t);
        if (exited) return;
        const t0 = performance.now();
        let hit: LimitHit | undefined;
        try {
          hit = await w.check();
        } catch {
          hit = undefined;
        }
        if (hit) fire(hit);
        if (!exited) schedule(w, Math.max(w.everyMs, 10 * (performance.now() - t0)));
      }, delayMs);
      watchTimers.add(t);
    };
    for (const w of opts.watchers ?? []) schedule(w, w.everyMs);
    const stopWatching = (): void => {
      exited = true;
      clearTimeout(timer);
      for (const t of watchTimers) clearTimeout(t);
      watchTimers.clear();
      opts.signal?.removeEventListener('abort', onAbort);
    };

    let graceTimer: NodeJS.Timeout | undefined;
    const finish = async (): Promise<void> => {
      if (settled) return;
      settled = true;
      stopWatching();
      if (graceTimer) clearTimeout(graceTimer);
      const code = exit?.code ?? null;
      const sig = exit?.signal ?? null;
      let output = cap.toString();
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
        durationMs: Math.round(performance.now() - started),
        output,
        omittedBytes: cap.omittedBytes,
      };
      if (hits[0]) result.limit = hits[0].kind;
      resolve(result);
    };

    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      stopWatching();
      killGroup(pid);
      reject(new Error(`could not start ${opts.file}: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      stopWatching();
      // Background processes the command left behind die with it.
      killGroup(pid);
      graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        void finish();
      }, STDIO_GRACE_MS);
    });
    child.on('close', () => void finish());
  });
}
