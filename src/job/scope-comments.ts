import type { IssueText } from '../agent/context.js';
import { type IssueComment, WRITE_PERMISSIONS } from '../github/facade.js';
import { STATUS_MARKER } from '../report/status.js';
import type { JobContext } from './context.js';

/** Distinct commenters whose permission scope reads at most, per job. */
const MAX_PERMISSION_READS = 30;

/**
 * The issue's comments as scope reads them: people's comments, trusted only when their
 * author can write to the repository now (the issue's author too: opening an issue gives
 * no write access; their comments are marked as the author's, which may answer and narrow
 * but never widen the task), and our own earlier questions, so the answers can be read against
 * them. Other bots are left out. Permissions are read for a bounded number of people,
 * those GitHub associates with the repository first (only they can have write access),
 * so a flood of outsiders' comments costs no reads and hides no writer.
 */
export async function scopeComments(
  ctx: JobContext,
  issue: Pick<IssueText, 'author'>,
  comments: IssueComment[],
): Promise<Array<{ author: string; body: string; trusted: boolean; byIssueAuthor: boolean }>> {
  const ours = (c: IssueComment) =>
    c.authorType === 'Bot' && c.body.startsWith(STATUS_MARKER) && c.body.includes('needs more information');
  const people = comments.filter((c) => c.authorType !== 'Bot' && !c.author.endsWith('[bot]'));
  // The sender's write access was checked when the job started.
  const writers = new Set<string>([ctx.job.sender.toLowerCase()]);
  const associated = (c: IssueComment) => ['OWNER', 'MEMBER', 'COLLABORATOR'].includes(c.association);
  const newestFirst = [...people].reverse();
  const candidates = [
    ...new Set([...newestFirst.filter(associated), ...newestFirst].map((c) => c.author.toLowerCase())),
  ];
  for (const author of candidates.slice(0, MAX_PERMISSION_READS)) {
    if (writers.has(author)) continue;
    if (WRITE_PERMISSIONS.has(await ctx.gh.permission(author))) writers.add(author);
  }
  return comments
    .filter((c) => ours(c) || people.includes(c))
    .map((c) => ({
      author: c.author,
      body: c.body,
      trusted: ours(c) || writers.has(c.author.toLowerCase()),
      byIssueAuthor: !ours(c) && c.author.toLowerCase() === issue.author.toLowerCase(),
    }));
}
