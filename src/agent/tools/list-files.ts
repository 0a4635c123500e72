import { stat } from 'node:fs/promises';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { listTreeFiles, notFound, relPath, resolveInTree } from './paths.js';

const MAX_ENTRIES = 400;

export const listFiles = defineTool({
  name: 'list_files',
  example: { path: 'src' },
  description:
    'List the files under a directory of the repository (recursively, .gitignore respected). Use "." for the repository root.',
  input: z.strictObject({
    path: relPath('directory relative to the repository root, "." for the root'),
  }),
  async run({ path }, ctx) {
    const { abs, rel } = await resolveInTree(ctx.workTree, path);
    const st = await stat(abs).catch(() => undefined);
    if (!st) throw await notFound(ctx.workTree, rel, 'directory', ctx.signal);
    if (!st.isDirectory()) {
      throw new ToolFailure(
        st.isFile()
          ? {
              code: 'not_a_directory',
              message: `${rel} is a file, not a directory`,
              hint: `use read_file with path "${rel}"`,
            }
          : {
              code: 'not_a_directory',
              message: `${rel} is not a directory (a FIFO, socket or device)`,
              hint: 'list its parent directory instead',
            },
      );
    }
    const files = await listTreeFiles(ctx.workTree, rel, ctx.signal);
    const shown = files.slice(0, MAX_ENTRIES);
    const more = files.length - shown.length;
    return {
      output:
        [...shown, ...(more > 0 ? [`[… ${more} more files; list a subdirectory to see them]`] : [])].join('\n') ||
        '(empty directory)',
      metadata: { count: files.length },
    };
  },
});
