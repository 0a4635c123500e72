import { spawnCapped } from '../../sandbox/spawn-capped.js';
import { ToolFailure } from './tool.js';

/** How long one rg run of a tool may take before it is killed. */
export const RIPGREP_TIMEOUT_MS = 30_000;
const MAX_STDERR_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

export interface RipgrepOptions {
  /** The work tree; rg's paths are relative to it. */
  cwd: string;
  /** What the run is, for the errors the model reads: "the search for /add/ in src". */
  what: string;
  /** The job's signal: `/agent stop` kills rg at once. */
  signal?: AbortSignal;
  timeoutMs?: number;
  /** Lines of stdout to keep (every line is counted); default all. */
  keepLines?: number;
  /** Most bytes of stdout to keep; past them rg is stopped and the call fails. */
  maxBytes: number;
}

export interface RipgrepResult {
  /** rg's exit code: 0 found, 1 nothing found, 2 an error. */
  exitCode: number | null;
  /** The first `keepLines` non-empty lines of stdout. */
  lines: string[];
  /** How many non-empty lines stdout had in all. */
  lineCount: number;
  /** rg's stderr, capped. */
  stderr: string;
}

/** Keeps the head of rg's stdout and counts all of its lines, so memory stays bounded whatever rg prints. */
class StdoutLines {
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private keptNewlines = 0;
  private newlines = 0;
  private lastByte: number | undefined;
  overflowed = false;

  constructor(
    private readonly keepLines: number,
    private readonly maxBytes: number,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let n = 0;
    for (let i = chunk.indexOf(NEWLINE); i !== -1; i = chunk.indexOf(NEWLINE, i + 1)) n++;
    this.newlines += n;
    if (chunk.length > 0) this.lastByte = chunk[chunk.length - 1];
    if (this.overflowed || this.keptNewlines >= this.keepLines) return;
    this.kept.push(chunk);
    this.keptBytes += chunk.length;
    this.keptNewlines += n;
    if (this.keptBytes > this.maxBytes) {
      this.overflowed = true;
      this.onOverflow();
    }
  }

  lines(): string[] {
    return Buffer.concat(this.kept).toString('utf8').split('\n').filter(Boolean).slice(0, this.keepLines);
  }

  get count(): number {
    // rg prints no empty lines; an unterminated last line counts too.
    return this.newlines + (this.lastByte !== undefined && this.lastByte !== NEWLINE ? 1 : 0);
  }
}

/**
 * Runs ripgrep on the host, in its own process group, with a timeout and the job's abort
 * signal: a slow search ends with a structured error (aborted, timed_out) instead of
 * holding the stage. Only the file tools use it, on the work tree; repository code never
 * runs here.
 */
export async function runRipgrep(args: string[], opts: RipgrepOptions): Promise<RipgrepResult> {
  const timeoutMs = opts.timeoutMs ?? RIPGREP_TIMEOUT_MS;
  const stop = new AbortController();
  const stdout = new StdoutLines(opts.keepLines ?? Number.POSITIVE_INFINITY, opts.maxBytes, () => stop.abort());
  const result = await spawnCapped({
    command: `rg ${args.join(' ')}`,
    file: 'rg',
    args,
    // Nothing from the worker's environment but where to find rg (no RIPGREP_CONFIG_PATH).
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cwd: opts.cwd,
    timeoutMs,
    maxOutputBytes: MAX_STDERR_BYTES,
    signal: opts.signal ? AbortSignal.any([opts.signal, stop.signal]) : stop.signal,
    onStdout: (chunk) => stdout.push(chunk),
  });
  if (stdout.overflowed) throw new Error(`${opts.what} printed more than ${opts.maxBytes} bytes; rg was stopped`);
  if (result.limit === 'aborted') {
    throw new ToolFailure({
      code: 'aborted',
      message: `${opts.what} was stopped: the job is being stopped`,
      hint: 'do not retry; the job is ending',
    });
  }
  if (result.limit === 'timeout') {
    throw new ToolFailure({
      code: 'timed_out',
      message: `${opts.what} took longer than ${timeoutMs / 1000} s and was stopped`,
      hint: 'search a narrower path (a subdirectory or one file) or with a more specific pattern',
    });
  }
  return {
    exitCode: result.exitCode,
    lines: stdout.lines(),
    lineCount: stdout.count,
    stderr: result.output,
  };
}
