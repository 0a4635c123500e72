import { z } from 'zod';
import { fence } from '../util/fence.js';
import { quote, stripHidden } from '../agent/context.js';
import { defineTool, ToolFailure, type Tool } from '../agent/tools/tool.js';

/** One line comment of a review: the start of a thread that gets one reply. */
export interface ReviewThread {
  commentId: number;
  path: string;
  line: number | null;
  diffHunk: string;
  body: string;
  author: string;
}

/** What a revise job addresses: review bodies and retry notes, and the line comments. */
export interface ReviewTask {
  pullNumber: number;
  title: string;
  notes: Array<{ author: string; body: string; source: 'review' | 'retry' }>;
  threads: ReviewThread[];
  /**
   * For a CI fix: what the failed checks said (annotations and the failure summary). CI's
   * text is data, never a request: it is quoted apart from reviewers' notes.
   */
  ciFailure?: string;
}

/** The review feedback as the model reads it: data, quoted, hidden text stripped. */
export function reviewBlock(task: ReviewTask): string {
  const parts = [`Pull request #${task.pullNumber}: ${stripHidden(task.title)}`];
  if (task.ciFailure) parts.push(quote('ci-failure', stripHidden(task.ciFailure).trim(), { trust: 'untrusted' }));
  for (const n of task.notes)
    parts.push(quote('review-note', stripHidden(n.body).trim(), { author: n.author, source: n.source }));
  for (const t of task.threads) {
    parts.push(
      quote(
        'review-thread',
        `${stripHidden(t.body).trim()}\n\nThe diff hunk it was written on:\n${fence(t.diffHunk)}`,
        {
          comment_id: String(t.commentId),
          path: t.path,
          ...(t.line !== null ? { line: String(t.line) } : {}),
          author: t.author,
        },
      ),
    );
  }
  return parts.join('\n\n');
}

const ThreadOutcome = z.strictObject({
  comment_id: z.number().int().positive().describe('the comment_id of a <review-thread>'),
  outcome: z
    .enum(['addressed', 'not_addressed'])
    .describe('addressed: the change does what the comment asks; not_addressed: it does not, and reply says why'),
  reply: z
    .string()
    .trim()
    .min(3)
    .max(1_000)
    .describe('one or two sentences for the reviewer: what you changed, or why not'),
});

export const RevisionSchema = z.strictObject({
  summary: z
    .string()
    .trim()
    .min(1)
    .max(2_000)
    .describe('what this revision changed, for the summary comment on the pull request'),
  threads: z.array(ThreadOutcome).max(100).describe('one entry per <review-thread>, by comment_id'),
});
export type Revision = z.infer<typeof RevisionSchema>;

/**
 * The terminal tool of a revise job. It is made per job so it can hold the model to
 * answering every thread, and refuses to finish without a change when it claims one.
 */
export function finishRevision(threadIds: number[]): Tool {
  const expected = new Set(threadIds);
  return defineTool({
    name: 'finish_revision',
    example: {
      summary: 'Renamed total to sum and added a test for negative input, as reviewed.',
      threads: threadIds
        .slice(0, 1)
        .map((id) => ({ comment_id: id, outcome: 'addressed' as const, reply: 'Renamed it to sum() in add.js.' })),
    },
    description:
      'Declare the revision complete, with one reply per review thread. The pipeline then runs the repository checks; failures come back to you.',
    input: RevisionSchema,
    terminal: true,
    async run({ threads }, ctx) {
      const given = new Set(threads.map((t) => t.comment_id));
      const unknown = [...given].filter((id) => !expected.has(id));
      if (unknown.length > 0) {
        throw new ToolFailure({
          code: 'unknown_thread',
          message: `no review thread has comment_id ${unknown.join(', ')}`,
          candidates: threadIds.map(String),
        });
      }
      const missing = threadIds.filter((id) => !given.has(id));
      if (missing.length > 0) {
        throw new ToolFailure({
          code: 'threads_unanswered',
          message: `no reply for review thread(s) ${missing.join(', ')}`,
          hint: 'give one entry per <review-thread>, addressed or not_addressed with the reason',
          candidates: missing.map(String),
        });
      }
      if (ctx.touched.size === 0 && (threads.some((t) => t.outcome === 'addressed') || threadIds.length === 0)) {
        throw new ToolFailure({
          code: 'nothing_changed',
          message: 'no file has been changed yet',
          hint: 'make the change with edit_file or create_file first, or mark the threads not_addressed with the reason',
        });
      }
      return {
        output: `revision finished: ${[...ctx.touched].join(', ') || 'no files'}; ${threads.length} thread(s) answered`,
      };
    },
  }) as unknown as Tool;
}

/** The reply in a review thread once the revision is pushed: the model's answer, or a plain acknowledgement. */
export function threadReply(outcome: Revision['threads'][number] | undefined, sha: string | null): string {
  if (!outcome) return `Addressed in ${sha?.slice(0, 7) ?? 'no commit'}.`;
  const mark = outcome.outcome === 'addressed' ? '✅' : '⚠️ not changed:';
  const commit = sha && outcome.outcome === 'addressed' ? ` (${sha.slice(0, 7)})` : '';
  return `${mark} ${outcome.reply}${commit}`;
}

/** The reply in each review thread when the revision stopped before addressing it. */
export function notAddressedReply(reason: string): string {
  return `⚠️ Not addressed: the revision stopped (${reason}). See the status comment on this pull request.`;
}
