import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Runner } from '../../sandbox/runner.js';
import { listFiles } from './list-files.js';
import { runRipgrep } from './ripgrep.js';
import { search } from './search.js';
import { callTool, ToolFailure, type Tool, type ToolAnswer, type ToolContext } from './tool.js';

// Real rg on real files. A FIFO given to rg by name blocks it for good (it waits for a
// writer): the slowest search there is, so the timeout and the abort are shown on a rg
// that is certainly still running.

const TOOLS = [search, listFiles] as unknown as Tool[];
const noRunner: Runner = {
  backend: 'unsandboxed',
  run: async () => {
    throw new Error('these tests do not run commands');
  },
};

let root: string;

function ctxWith(signal?: AbortSignal): ToolContext {
  return {
    workTree: root,
    runner: noRunner,
    sandboxReadOnlyPaths: [],
    log: pino({ level: 'silent' }),
    touched: new Set(),
    ...(signal ? { signal } : {}),
  };
}

function errorOf(a: ToolAnswer) {
  if (a.ok) throw new Error(`expected an error, got output: ${a.output.slice(0, 200)}`);
  return a.error;
}

/** rg processes whose command line holds `marker`. */
function rgRunning(marker: string): string {
  return spawnSync('pgrep', ['-af', `rg .*${marker}`], { encoding: 'utf8' }).stdout.trim();
}

async function failureOf(p: Promise<unknown>): Promise<ToolFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ToolFailure);
  return err as ToolFailure;
}

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ia-ripgrep-'));
  execFileSync('mkfifo', [path.join(root, 'pipe')]);
  // Ten files of 1,000 matching lines each (rg keeps 50 per file), and a tree large
  // enough that a whole search takes rg a while.
  mkdirSync(path.join(root, 'many'));
  for (let i = 0; i < 10; i++) writeFileSync(path.join(root, 'many', `m${i}.txt`), 'needle here\n'.repeat(1000));
  mkdirSync(path.join(root, 'big'));
  const filler = 'lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n'.repeat(8_000);
  for (let i = 0; i < 60; i++) writeFileSync(path.join(root, 'big', `f${i}.txt`), `${filler}haystack ${i}\n`);
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe('runRipgrep', () => {
  it('kills a rg that passes its timeout and answers timed_out', async () => {
    const marker = `timeout-${process.pid}`;
    const started = Date.now();
    const failure = await failureOf(
      runRipgrep(['-e', marker, '--', 'pipe'], { cwd: root, what: 'the test search', timeoutMs: 300, maxBytes: 1024 }),
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(failure.error).toEqual({
      code: 'timed_out',
      message: 'the test search took longer than 0.3 s and was stopped',
      hint: 'search a narrower path (a subdirectory or one file) or with a more specific pattern',
    });
    expect(rgRunning(marker)).toBe('');
  });

  it("kills a running rg when the job's signal aborts, and answers aborted", async () => {
    const marker = `abort-${process.pid}`;
    const stop = new AbortController();
    const started = Date.now();
    const pending = runRipgrep(['-e', marker, '--', 'pipe'], {
      cwd: root,
      what: 'the test search',
      signal: stop.signal,
      maxBytes: 1024,
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(rgRunning(marker)).not.toBe('');
    stop.abort();
    const failure = await failureOf(pending);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(failure.error).toEqual({
      code: 'aborted',
      message: 'the test search was stopped: the job is being stopped',
      hint: 'do not retry; the job is ending',
    });
    expect(rgRunning(marker)).toBe('');
  });
});

describe('search and list_files under the job signal', () => {
  it('a signal aborted before the call: the search answers aborted without running rg', async () => {
    const stop = new AbortController();
    stop.abort();
    const e = errorOf(
      await callTool(TOOLS, 'search', { pattern: 'haystack', path: '.' }, ctxWith(stop.signal), () => {}),
    );
    expect(e).toEqual({
      code: 'aborted',
      message: 'the search for /haystack/ in . was stopped: the job is being stopped',
      hint: 'do not retry; the job is ending',
    });
    const l = errorOf(await callTool(TOOLS, 'list_files', { path: 'big' }, ctxWith(stop.signal), () => {}));
    expect(l).toMatchObject({
      code: 'aborted',
      message: 'listing the files under big was stopped: the job is being stopped',
    });
    // The not-found answer lists the tree too: under an aborted signal it says aborted, not not_found.
    const n = errorOf(
      await callTool(TOOLS, 'search', { pattern: 'x', path: 'nowhere' }, ctxWith(stop.signal), () => {}),
    );
    expect(n.code).toBe('aborted');
  });

  it('a signal aborted while searching a large tree ends the search with aborted', async () => {
    // The same search runs to the end without a signal.
    const whole = await callTool(TOOLS, 'search', { pattern: 'haystack \\d+', path: 'big' }, ctxWith(), () => {});
    expect(whole).toMatchObject({ ok: true, metadata: { matches: 60 } });
    const stop = new AbortController();
    const pending = callTool(
      TOOLS,
      'search',
      { pattern: 'haystack \\d+', path: 'big' },
      ctxWith(stop.signal),
      () => {},
    );
    setImmediate(() => stop.abort());
    expect(errorOf(await pending)).toEqual({
      code: 'aborted',
      message: 'the search for /haystack \\d+/ in big was stopped: the job is being stopped',
      hint: 'do not retry; the job is ending',
    });
  });

  it('keeps the first 200 matches and counts the rest, however rg chunks its output', async () => {
    const a = await callTool(TOOLS, 'search', { pattern: 'needle', path: 'many' }, ctxWith(), () => {});
    if (!a.ok) throw new Error(a.error.message);
    const lines = a.output.split('\n');
    expect(lines).toHaveLength(201);
    expect(lines.slice(0, 200).every((l) => /^many\/m\d\.txt:\d+:needle here$/.test(l))).toBe(true);
    expect(lines[200]).toBe('[… 300 more matches; narrow the pattern or the path]');
    expect(a.metadata).toEqual({ matches: 500 });
  });
});
