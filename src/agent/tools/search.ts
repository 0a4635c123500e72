import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { notFound, relPath, resolveInTree } from './paths.js';
import { runRipgrep } from './ripgrep.js';
import { defineTool, ToolFailure } from './tool.js';

const MAX_MATCHES = 200;
// Only the first MAX_MATCHES lines are kept; this bounds them (300 columns each) with room to spare.
const MAX_STDOUT_BYTES = 32 * 1024 * 1024;

/** rg's failure as the model should read it: a bad pattern, a vanished path, or rg's own words. */
function searchError(stderr: string, rel: string, exitCode: number | null): Error {
  if (/regex parse error|error parsing regex/i.test(stderr)) {
    return new ToolFailure({
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
    return new ToolFailure({
      code: 'not_found',
      message: `no file or directory ${rel}`,
      hint: 'use list_files with "." to see the tree',
    });
  }
  return new Error(`rg failed (exit code ${exitCode}): ${stderr}`);
}

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
    if (!st) throw await notFound(ctx.workTree, rel, 'file', ctx.signal);
    // ripgrep would block forever on a FIFO given by name.
    if (!st.isFile() && !st.isDirectory())
      throw new ToolFailure({
        code: 'not_a_file',
        message: `${rel} is neither a file nor a directory (a FIFO, socket or device)`,
        hint: 'search a directory or a regular file',
      });
    const args = [
      '--line-number',
      '--no-heading',
      '--color',
      'never',
      '--hidden',
      '--no-follow',
      '--glob',
      '!.git',
      '--glob',
      '!/.issue-agent',
      '--max-columns',
      '300',
      '--max-count',
      '50',
      '-e',
      pattern,
      '--',
      rel,
    ];
    const found = await runRipgrep(args, {
      cwd: ctx.workTree,
      what: `the search for /${pattern}/ in ${rel}`,
      ...(ctx.signal ? { signal: ctx.signal } : {}),
      keepLines: MAX_MATCHES,
      maxBytes: MAX_STDOUT_BYTES,
    });
    if (found.exitCode === 0) {
      const shown = found.lines.map((l) => l.replace(/^\.\//, ''));
      const more =
        found.lineCount > MAX_MATCHES
          ? `\n[… ${found.lineCount - MAX_MATCHES} more matches; narrow the pattern or the path]`
          : '';
      return { output: shown.join('\n') + more, metadata: { matches: found.lineCount } };
    }
    if (found.exitCode === 1) return { output: `no matches for /${pattern}/ in ${rel}`, metadata: { matches: 0 } };
    throw searchError(found.stderr.trim(), rel, found.exitCode);
  },
});
