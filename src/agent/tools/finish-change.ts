import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';

export const FinishSchema = z.strictObject({
  summary: z.string().min(1).describe('what you changed and why, in two or three sentences, for the pull request'),
});
export type Finish = z.infer<typeof FinishSchema>;

export const finishChange = defineTool({
  name: 'finish_change',
  example: { summary: 'add() now adds negative numbers instead of subtracting them.' },
  description: 'Declare the change complete. The pipeline then runs the repository checks; failures come back to you.',
  input: FinishSchema,
  terminal: true,
  async run({ summary }, ctx) {
    if (ctx.touched.size === 0) {
      throw new ToolFailure({
        code: 'nothing_changed',
        message: 'no file has been changed yet',
        hint: 'make the change with edit_file or create_file first',
      });
    }
    return { output: `change finished: ${[...ctx.touched].join(', ')} (${summary.length} chars of summary)` };
  },
});
