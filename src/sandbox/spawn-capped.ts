import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { OutputCap } from './output-cap.js';
import type { RunResult } from './runner.js';

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

/**
 * Spawns a process in its own process group with a timeout, an abort signal and a
 * bounded output capture; on timeout or abort the whole group gets SIGKILL, since
 * repository code may ignore SIGTERM.
 */
export function spawnCapped(opts: SpawnCappedOptions): Promise<RunResult> {
  return new Promise<RunResult>((resolve, reject) => {
    const started = performance.now();
    const cap = new OutputCap(opts.maxOutputBytes);
    let timedOut = false;
    let aborted = false;
    let exit: { code: number | null; signal: string | null } | undefined;
    let settled = false;

    if (opts.signal?.aborted) {
      resolve({ command: opts.command, exitCode: null, signal: null, timedOut: false, durationMs: 0, output: '[aborted before start]', omittedBytes: 0 });
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

    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(pid);
    }, opts.timeoutMs);
    const onAbort = (): void => {
      aborted = true;
      killGroup(pid);
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    let graceTimer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      let output = cap.toString();
      if (timedOut) output += `${output.endsWith('\n') || output === '' ? '' : '\n'}[killed: timed out after ${opts.timeoutMs} ms]`;
      else if (aborted) output += `${output.endsWith('\n') || output === '' ? '' : '\n'}[killed: aborted]`;
      resolve({
        command: opts.command,
        exitCode: exit?.code ?? null,
        signal: exit?.signal ?? null,
        timedOut,
        durationMs: Math.round(performance.now() - started),
        output,
        omittedBytes: cap.omittedBytes,
      });
    };

    child.on('error', (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      killGroup(pid);
      reject(new Error(`could not start ${opts.file}: ${err.message}`));
    });
    child.on('exit', (code, signal) => {
      exit = { code, signal };
      // Background processes the command left behind die with it.
      killGroup(pid);
      graceTimer = setTimeout(() => {
        child.stdout.destroy();
        child.stderr.destroy();
        finish();
      }, STDIO_GRACE_MS);
    });
    child.on('close', finish);
  });
}
