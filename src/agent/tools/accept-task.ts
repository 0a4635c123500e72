import { z } from 'zod';
import { defineTool } from './tool.js';

export const AcceptTaskSchema = z.strictObject({
  summary: z.string().trim().min(1).max(400).describe('one sentence: the behaviour to change or add, and where'),
  acceptance_criteria: z
    .array(z.string().trim().min(1).max(400))
    .min(1)
    .max(8)
    .describe(
      '1 to 8 checkable statements that are true once the issue is solved, e.g. "npm test passes \'adds a negative number\'"',
    ),
});
export type AcceptTask = z.infer<typeof AcceptTaskSchema>;

export const acceptTask = defineTool({
  name: 'accept_task',
  example: {
    summary: 'Make add() in src/add.js return the sum when an argument is negative.',
    acceptance_criteria: ["npm test passes 'adds a negative number'", 'add(2, -3) returns -1'],
  },
  description:
    'Accept the issue as a bounded, verifiable task: a specific behaviour, where it lives, and how to verify it. It ends the scope stage; the criteria are what the change will be checked against.',
  input: AcceptTaskSchema,
  terminal: true,
  async run(task) {
    return { output: `task accepted with ${task.acceptance_criteria.length} acceptance criteria` };
  },
});
