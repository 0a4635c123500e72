import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { notFound, relPath, resolveInTree } from './paths.js';

const MAX_WINDOW = 400;
const MAX_FILE_BYTES = 2 * 1024 * 1024;

/** Text files only: a NUL byte in the first 8 KiB means binary, as git decides it. */
export function looksBinary(buf: Buffer): boolean {
  return buf.subarray(0, 8192).includes(0);
}

/** Lines start..end (1-based, inclusive) of a text file, and its line count, streaming. */
async function readWindow(abs: string, start: number, end: number): Promise<{ window: string[]; total: number }> {
  const window: string[] = [];
  let total = 0;
  const rl = createInterface({ input: createReadStream(abs, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of rl) {
    total += 1;
    if (total >= start && total <= end)
      window.push(line.length > 4000 ? `${line.slice(0, 4000)}… [line clipped, ${line.length} chars]` : line);
  }
  return { window, total };
}

export const readFile = defineTool({
  name: 'read_file',
  example: { path: 'src/index.ts', start_line: 1, end_line: 120 },
  description: `Read a window of lines from a text file, with line numbers. At most ${MAX_WINDOW} lines per call; read further windows for long files.`,
  input: z.strictObject({
    path: relPath('file path relative to the repository root'),
    start_line: z.number().int().min(1).describe('first line to show, 1-based'),
    end_line: z
      .number()
      .int()
      .min(1)
      .describe(`last line to show, inclusive; at most start_line + ${MAX_WINDOW - 1}`),
  }),
  async run({ path, start_line, end_line }, ctx) {
    if (end_line < start_line) {
      throw new ToolFailure({
        code: 'invalid_range',
        message: `end_line ${end_line} is before start_line ${start_line}`,
        hint: `e.g. start_line ${start_line}, end_line ${start_line + 99}`,
      });
    }
    const { abs, rel } = await resolveInTree(ctx.workTree, path);
    const st = await stat(abs).catch(() => undefined);
    if (!st) throw await notFound(ctx.workTree, rel, 'file', ctx.signal);
    if (st.isDirectory())
      throw new ToolFailure({
        code: 'is_a_directory',
        message: `${rel} is a directory`,
        hint: `use list_files with path "${rel}"`,
      });
    // A FIFO or device would block the read forever and hold a libuv thread.
    if (!st.isFile())
      throw new ToolFailure({
        code: 'not_a_file',
        message: `${rel} is not a regular file (a FIFO, socket or device)`,
        hint: 'only regular files can be read',
      });
    const fh = await open(abs, 'r');
    const head = Buffer.alloc(Math.min(st.size, 8192));
    await fh.read(head, 0, head.length, 0).finally(() => fh.close());
    if (looksBinary(head)) {
      throw new ToolFailure({
        code: 'binary_file',
        message: `${rel} is binary (${st.size} bytes)`,
        hint: 'binary files cannot be read or edited with these tools',
      });
    }
    // Large files are streamed: only the window is kept, whatever the size.
    const { window: windowLines, total } = await readWindow(
      abs,
      start_line,
      Math.min(end_line, start_line + MAX_WINDOW - 1),
    );
    const lines = { length: total, slice: (a: number) => windowLines.slice(a - (start_line - 1)) };
    if (start_line > Math.max(lines.length, 1)) {
      throw new ToolFailure({
        code: 'invalid_range',
        message: `${rel} has ${lines.length} lines; start_line ${start_line} is past the end`,
        hint: `read from start_line 1 to ${Math.min(lines.length, MAX_WINDOW)}`,
      });
    }
    const last = Math.min(end_line, start_line + MAX_WINDOW - 1, lines.length);
    const width = String(last).length;
    const body = lines.slice(start_line - 1).map((l, i) => `${String(start_line + i).padStart(width)}│${l}`);
    const note =
      last < lines.length
        ? `\n[lines ${start_line}-${last} of ${lines.length}; read from ${last + 1} for more]`
        : `\n[end of file, ${lines.length} lines]`;
    const large =
      st.size > MAX_FILE_BYTES
        ? `\n[${rel} is large (${st.size} bytes): search it for line numbers, then read windows]`
        : '';
    return { output: body.join('\n') + note + large, metadata: { lines: lines.length } };
  },
});
