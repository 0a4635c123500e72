import { lstat } from 'node:fs/promises';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { assertPathAllowed, relPath, resolveInTree } from './paths.js';

export const requestScope = defineTool({
  name: 'request_scope',
  example: { path: 'src/util/math.js', reason: 'add() delegates to sum() in this file, where the sign bug is' },
  description:
    'Ask to edit a file the plan did not name. Give the reason; it is logged and shown in the pull request. Use it only when the change cannot be made within the planned files.',
  input: z.strictObject({
    path: relPath('the file to add to the editable set, relative to the repository root'),
    reason: z.string().trim().min(10, 'say why, in a sentence').max(500).describe('why the change needs this file'),
  }),
  async run({ path, reason }, ctx) {
    const target = await resolveInTree(ctx.workTree, path);
    const { abs, rel } = target;
    // The repository's own paths rules win over any reason the model gives.
    assertPathAllowed(ctx, target);
    const st = await lstat(abs).catch(() => undefined);
    if (st && !st.isFile()) {
      throw new ToolFailure({
        code: 'not_a_file',
        message: `${rel} is not a regular file`,
        hint: 'request the individual files to change; new files may be requested before they exist',
      });
    }
    if (!ctx.editable)
      throw new ToolFailure({
        code: 'read_only_stage',
        message: 'this stage may not change files, so its scope cannot grow',
      });
    if (ctx.editable.has(rel)) return { output: `${rel} is already editable` };
    ctx.editable.add(rel);
    ctx.scopeRequests?.push({ path: rel, reason });
    return { output: `${rel} is now editable (reason recorded for the pull request)`, metadata: { widened: rel } };
  },
});
