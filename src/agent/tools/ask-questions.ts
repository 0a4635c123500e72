import { z } from 'zod';
import { defineTool } from './tool.js';

export const AskQuestionsSchema = z.strictObject({
  questions: z
    .array(z.string().trim().min(1).max(500))
    .min(1)
    .max(4)
    .describe(
      '1 to 4 specific questions whose answers would make the issue a bounded, verifiable task: which file or component, which behaviour, what success looks like',
    ),
  reason: z
    .string()
    .trim()
    .min(1)
    .max(500)
    .describe('one sentence: why the issue is not yet a bounded, verifiable task'),
});
export type AskQuestions = z.infer<typeof AskQuestionsSchema>;

export const askQuestions = defineTool({
  name: 'ask_questions',
  example: {
    questions: [
      'Which part of the authentication system should change: login, sessions or password reset?',
      'What should happen that does not happen today? An error message or a failing test would help.',
    ],
    reason: 'The issue names an area but no specific behaviour or way to verify a change.',
  },
  description:
    'Decline the issue for now and ask its author 1 to 4 specific questions that would make it a bounded, verifiable task. It ends the scope stage; the questions are posted on the issue.',
  input: AskQuestionsSchema,
  terminal: true,
  async run({ questions }) {
    return { output: `${questions.length} question(s) will be posted on the issue` };
  },
});
