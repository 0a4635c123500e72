import { mkdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { assertEditable } from './scope.js';
import { rejectBrokenSyntax } from './edit-file.js';
import { assertPathAllowed, relPath, resolveInTree } from './paths.js';

export const createFile = defineTool({
  name: 'create_file',
  example: { path: 'test/add.test.js', content: "const test = require('node:test');\n" },
  description:
    'Create a new file with the given content. Fails if the file exists: use edit_file to change an existing file.',
  input: z.strictObject({
    path: relPath('path of the new file, relative to the repository root'),
    content: z.string().describe('the whole content of the new file'),
  }),
  async run({ path: given, content }, ctx) {
    const target = await resolveInTree(ctx.workTree, given);
    const { abs, rel } = target;
    assertPathAllowed(ctx, target);
    assertEditable(ctx, rel);
    if (await stat(abs).catch(() => undefined)) {
      throw new ToolFailure({
        code: 'already_exists',
        message: `${rel} already exists`,
        hint: 'use edit_file to change it, or read_file to see it',
      });
    }
    rejectBrokenSyntax(rel, undefined, content, 'create');
    await mkdir(path.dirname(abs), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'EEXIST' || err.code === 'ENOTDIR'
        ? new ToolFailure({
            code: 'not_a_directory',
            message: `cannot create ${rel}: ${path.dirname(rel)} is not a directory (a file is in the way)`,
            hint: 'choose a path whose parents are directories; list_files shows the tree',
          })
        : err;
    });
    await writeFile(abs, content, { flag: 'wx' });
    ctx.touched.add(rel);
    return { output: `created ${rel} (${content.split('\n').length} lines)` };
  },
});
