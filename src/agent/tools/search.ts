import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { stat } from 'node:fs/promises';
import { notFound, relPath, resolveInTree } from './paths.js';

const execFileAsync = promisify(execFile);
const MAX_MATCHES = 200;

export const search = defineTool({
  name: 'search',
  example: { pattern: 'function add(', path: '.' },
  description:
    'Search file contents with a regular expression (ripgrep syntax), returning path:line:text for each match.',
  input: z.strictObject({
    pattern: z
      .string()
      .min(1)
      .describe('regular expression (Rust regex syntax, as ripgrep); escape literal parentheses and dots'),
    path: relPath('file or directory to search, relative to the repository root; "." for everything'),
  }),
  async run({ pattern, path }, ctx) {
    const { abs, rel } = await resolveInTree(ctx.workTree, path);
    const st = await stat(abs).catch(() => undefined);
    if (!st) throw await notFound(ctx.workTree, rel);
    // ripgrep would block forever on a FIFO given by name.
    if (!st.isFile() && !st.isDirectory())
      throw new ToolFailure({
        code: 'not_a_file',
        message: `${rel} is neither a file nor a directory (a FIFO, socket or device)`,
        hint: 'search a directory or a regular file',
      });
    try {
      const { stdout } = await execFileAsync(
        'rg',
        [
          '--line-number',
          '--no-heading',
          '--color',
          'never',
          '--hidden',
          '--no-follow',
          '--glob',
          '!.git',
          '--max-columns',
          '300',
          '--max-count',
          '50',
          '-e',
          pattern,
          '--',
          rel,
        ],
        { cwd: ctx.workTree, maxBuffer: 32 * 1024 * 1024 },
      );
      const lines = stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => l.replace(/^\.\//, ''));
      const shown = lines.slice(0, MAX_MATCHES);
      const more =
        lines.length > MAX_MATCHES
          ? `\n[… ${lines.length - MAX_MATCHES} more matches; narrow the pattern or the path]`
          : '';
      return { output: shown.join('\n') + more, metadata: { matches: lines.length } };
    } catch (err) {
      const e = err as { code?: number; stderr?: string };
      if (e.code === 1) return { output: `no matches for /${pattern}/ in ${rel}`, metadata: { matches: 0 } };
      const stderr = (e.stderr ?? '').trim();
      if (/regex parse error|error parsing regex/i.test(stderr)) {
        throw new ToolFailure({
          code: 'invalid_pattern',
          message: `the pattern is not a valid regular expression:\n${stderr
            .split('\n')
            .filter((l) => l.trim())
            .slice(-3)
            .join('\n')}`,
          hint: 'escape special characters such as ( ) [ ] . * + ?',
        });
      }
      if (/No such file or directory/i.test(stderr)) {
        throw new ToolFailure({
          code: 'not_found',
          message: `no file or directory ${rel}`,
          hint: 'use list_files with "." to see the tree',
        });
      }
      throw err;
    }
  },
});
