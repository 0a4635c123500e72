import { z } from 'zod';
import { defineTool } from './tool.js';

export const PlanSchema = z.strictObject({
  summary: z.string().min(1).describe('one or two sentences: what is wrong and what the change will do'),
  files_to_change: z
    .array(z.string().min(1))
    .min(1)
    .max(20)
    .describe('paths relative to the repository root that the change will edit or create'),
  files_to_read: z.array(z.string().min(1)).max(30).describe('paths the coder should read for context (may be empty)'),
  steps: z.array(z.string().min(1)).min(1).max(15).describe('small, ordered, checkable steps'),
  verification: z
    .string()
    .min(1)
    .describe('how to verify the change: which tests or commands, and what they should show'),
  estimated_changed_lines: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .describe('about how many lines the change will add, remove or modify'),
  confidence: z.number().min(0).max(1).describe('your confidence that this plan solves the issue, from 0 to 1'),
});
export type Plan = z.infer<typeof PlanSchema>;

export const submitPlan = defineTool({
  name: 'submit_plan',
  example: {
    summary: 'add() subtracts negative numbers; make it add.',
    files_to_change: ['src/add.js'],
    files_to_read: ['test/add.test.js'],
    steps: ['Fix the sign handling in add()'],
    verification: 'npm test passes "adds a negative number"',
    estimated_changed_lines: 2,
    confidence: 0.8,
  },
  description:
    'Submit the plan for the change. Call it once you know which files to change and how to verify; it ends the planning stage.',
  input: PlanSchema,
  terminal: true,
  async run(plan) {
    return { output: `plan accepted: ${plan.files_to_change.length} file(s) to change` };
  },
});
