import type { ToolContext } from './tool.js';
import { ToolFailure } from './tool.js';

/** Edits are confined to the files the plan named. */
export function assertEditable(ctx: ToolContext, rel: string): void {
  if (!ctx.editable) {
    throw new ToolFailure({
      code: 'read_only_stage',
      message: 'this stage may not change files',
      hint: 'describe the change in your result instead',
    });
  }
  if (!ctx.editable.has(rel)) {
    throw new ToolFailure({
      code: 'outside_scope',
      message: `${rel} is not among the files this change may edit`,
      hint: `edit one of the candidates, or call request_scope with path "${rel}" and the reason this file must change`,
      candidates: [...ctx.editable].sort(),
    });
  }
}
