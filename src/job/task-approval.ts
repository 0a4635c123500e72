import { WRITE_PERMISSIONS, type IssueEdit } from '../github/facade.js';
import type { RepoHost } from '../github/repo-host.js';
import { issueDigest, type IssueSnapshot } from '../queue/jobs.js';

/** Editors whose permission is read at most; an issue edited by more is not judged by a part. */
const MAX_EDITORS = 10;

/**
 * Why the issue is no longer the task a writer approved, or undefined when it is. A writer
 * approved the issue's text as the trigger's payload showed it (the label, `/agent
 * retry`); at job start the text is the same, or changed since only by people with write
 * access. An edit whose author cannot be told (a deleted account, more history than one
 * read returns, a change GitHub's history does not show) counts as not approved: asking a
 * writer again costs one comment, running someone else's text costs the repository.
 */
export async function unapprovedEdit(
  host: Pick<RepoHost, 'issueEdits' | 'permission'>,
  issueNumber: number,
  snapshot: IssueSnapshot,
  current: { title: string; body: string },
): Promise<string | undefined> {
  if (issueDigest(current) === snapshot.digest) return undefined;
  const since = `after the trigger (${snapshot.updatedAt})`;
  const { edits, complete } = await host.issueEdits(issueNumber, snapshot.updatedAt);
  if (!complete)
    return `the issue was edited ${since}, and it has more edits than one read of GitHub's history returns, so who changed it cannot be told`;
  if (edits.length === 0)
    return `the issue's text changed ${since}, and GitHub's history shows no edit since then, so who changed it cannot be told`;
  const anonymous = edits.find((e) => e.editor === null);
  if (anonymous) return `the issue's ${anonymous.what} was edited ${since} by an account GitHub no longer knows`;
  const byEditor = new Map<string, IssueEdit[]>();
  for (const e of edits) byEditor.set(e.editor!.toLowerCase(), [...(byEditor.get(e.editor!.toLowerCase()) ?? []), e]);
  if (byEditor.size > MAX_EDITORS)
    return `the issue was edited ${since} by ${byEditor.size} people, more than the ${MAX_EDITORS} whose access is checked`;
  for (const mine of byEditor.values()) {
    const first = mine[0]!;
    // Another app's edit is not a person's approval.
    const permission = first.editorIsBot ? 'none' : await host.permission(first.editor!);
    if (!WRITE_PERMISSIONS.has(permission)) {
      const what = [...new Set(mine.map((e) => e.what))].join(' and ');
      return `\`${first.editor}\` (${first.editorIsBot ? 'an app' : `${permission} access`}) edited the issue's ${what} ${since}, at ${first.at}`;
    }
  }
  return undefined;
}
