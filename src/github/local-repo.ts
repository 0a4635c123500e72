import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { sanitise } from '../util/sanitise.js';
import { STATUS_MARKER } from '../report/status.js';
import { git } from '../sandbox/git.js';
import type { IssueComment, IssueEdits, IssueInfo, Permission, PullInfo, RepoInfo, RepoRef } from './facade.js';
import type { RepoHost } from './repo-host.js';

export interface LocalTask {
  number: number;
  title: string;
  body: string;
  /** The local user: the task's author, a writer of the checkout. */
  author: string;
}

export interface LocalRepoOptions {
  /** The checkout's top-level directory (absolute). */
  dir: string;
  ref: RepoRef;
  /** The branch the agent starts from and reads rules and config from. */
  baseBranch: string;
  task: LocalTask;
  /** Where the report goes: the pull request body the pipeline renders, under a header. */
  reportPath: string;
}

/**
 * A local checkout as the pipeline's host, in place of GitHub: the task is the issue, the
 * checkout is the remote (the branch is pushed into it; its checked-out branch is never
 * touched), and the pull request is a report file. No token, no labels, no network.
 */
export class LocalRepo implements RepoHost {
  readonly ref: RepoRef;
  private lastBody: string | undefined;
  private reported = false;

  constructor(private readonly opts: LocalRepoOptions) {
    this.ref = opts.ref;
  }

  /** The last status the pipeline wrote (an escalation, the questions, or done), without the marker. */
  get finalStatus(): string | undefined {
    return this.lastBody === undefined ? undefined : stripMarker(this.lastBody);
  }

  /** Whether the pipeline delivered, i.e. wrote the report. */
  get delivered(): boolean {
    return this.reported;
  }

  async permission(): Promise<Permission> {
    // Only the person at the terminal is involved, and the checkout is theirs.
    return 'write';
  }

  async repoInfo(): Promise<RepoInfo> {
    // The checkout itself is the clone URL: the mirror clones it, the push goes back into it.
    return { defaultBranch: this.opts.baseBranch, cloneUrl: this.opts.dir, htmlUrl: pathToFileURL(this.opts.dir).href };
  }

  async issue(issueNumber: number): Promise<IssueInfo> {
    if (issueNumber !== this.opts.task.number)
      throw new Error(`the local task is #${this.opts.task.number}, not #${issueNumber}`);
    const { number, title, body, author } = this.opts.task;
    return { number, title, body, author, labels: [], htmlUrl: pathToFileURL(this.opts.reportPath).href };
  }

  /** A local task has no edit history: it is the text the person at the terminal gave. */
  async issueEdits(): Promise<IssueEdits> {
    return { edits: [], complete: true };
  }

  async comment(_issueNumber: number, body: string): Promise<number> {
    this.record(body);
    return 1;
  }

  async updateComment(_commentId: number, body: string): Promise<void> {
    this.record(body);
  }

  /** The CLI has one status (its progress); nothing is ever made twice. */
  async deleteComment(): Promise<void> {}

  async addLabels(): Promise<void> {}

  async removeLabel(): Promise<void> {}

  /** A regular file's text on `ref` of the checkout, or undefined (missing, a symlink, a submodule). */
  async fileText(relPath: string, ref: string): Promise<string | undefined> {
    const listing = (
      await git(['ls-tree', '-z', `refs/heads/${ref}`, '--', relPath], {
        cwd: this.opts.dir,
        env: { GIT_LITERAL_PATHSPECS: '1' },
      })
    ).stdout;
    const entry = /^(\d{6}) blob ([0-9a-f]{40,64})\t/.exec(listing);
    if (!entry || (entry[1] !== '100644' && entry[1] !== '100755')) return undefined;
    return (await git(['cat-file', 'blob', entry[2]!], { cwd: this.opts.dir })).stdout;
  }

  async issueComments(): Promise<{ comments: IssueComment[]; unread: number }> {
    return { comments: [], unread: 0 };
  }

  /** The top-level entries on `ref`; directories end in '/'. */
  async rootEntries(ref: string): Promise<string[]> {
    const listing = (await git(['ls-tree', '-z', `refs/heads/${ref}`], { cwd: this.opts.dir })).stdout;
    return listing
      .split('\0')
      .filter(Boolean)
      .map((line) => {
        const [meta = '', name = ''] = line.split('\t');
        return meta.split(' ')[1] === 'tree' ? `${name}/` : name;
      });
  }

  /** Local paths need no credentials. */
  async gitToken(): Promise<string> {
    return '';
  }

  /** Writes the report: a header naming the branch and its commit, then the body the pipeline rendered. */
  async openOrUpdatePull(p: {
    head: string;
    base: string;
    title: string;
    body: string;
  }): Promise<PullInfo & { created: boolean }> {
    const created = !existsSync(this.opts.reportPath);
    const sha = (
      await git(['rev-parse', '--verify', '-q', `refs/heads/${p.head}`], { cwd: this.opts.dir }).catch(() => ({
        stdout: '',
      }))
    ).stdout.trim();
    const header = [
      `# ${p.title}`,
      '',
      `Branch \`${p.head}\`${sha ? ` (${sha.slice(0, 12)})` : ''} from \`${p.base}\` in \`${this.opts.dir}\`, written by \`issue-agent run\`.`,
      `See the change with \`git diff ${p.base}...${p.head}\`; take it with \`git merge ${p.head}\`.`,
      '',
    ];
    await mkdir(path.dirname(this.opts.reportPath), { recursive: true });
    await writeFile(this.opts.reportPath, sanitise(`${header.join('\n')}\n${p.body}\n`));
    this.reported = true;
    return { number: this.opts.task.number, htmlUrl: pathToFileURL(this.opts.reportPath).href, created };
  }

  async pull(): Promise<never> {
    throw notLocal();
  }

  async pullFiles(): Promise<never> {
    throw notLocal();
  }

  async review(): Promise<never> {
    throw notLocal();
  }

  async reviewComments(): Promise<never> {
    throw notLocal();
  }

  async replyToReviewComment(): Promise<never> {
    throw notLocal();
  }

  /** The issue's status comment, kept: its last version is the job's final word. */
  private record(body: string): void {
    this.lastBody = body;
  }
}

function notLocal(): Error {
  return new Error('review revisions need a pull request on GitHub; the local CLI runs issue tasks only');
}

function stripMarker(body: string): string {
  return body.startsWith(STATUS_MARKER) ? body.slice(STATUS_MARKER.length).replace(/^\n/, '') : body;
}
