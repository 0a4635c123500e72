import { z } from 'zod';
import { defineTool } from './tool.js';

export const FailureSummarySchema = z.strictObject({
  likely_cause: z
    .string()
    .trim()
    .min(1)
    .max(600)
    .describe('the most likely cause, in one or two sentences, naming the code at fault'),
  locations: z
    .array(
      z.strictObject({
        path: z.string().min(1).describe('file path as printed in the log'),
        line: z.number().int().min(1).describe('line number'),
      }),
    )
    .max(10)
    .describe('the files and lines to look at first (may be empty)'),
  excerpt: z.string().max(1500).describe('a short verbatim excerpt of the log that shows the failure'),
});
export type FailureSummary = z.infer<typeof FailureSummarySchema>;

export const reportFailure = defineTool({
  name: 'report_failure',
  example: {
    likely_cause: 'add() subtracts when b is negative, so "adds a negative number" gets 5 instead of -1.',
    locations: [{ path: 'add.js', line: 2 }],
    excerpt: 'not ok 2 - adds a negative number\n  expected: -1\n  actual: 5',
  },
  description: 'Report what the failing checks show. Call it once; it ends the summary.',
  input: FailureSummarySchema,
  terminal: true,
  async run() {
    return { output: 'report received' };
  },
});
