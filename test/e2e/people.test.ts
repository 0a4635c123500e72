import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedModel, ScriptedReply } from '../stand-ins/anthropic/server.js';
import { calcModel, CALC_REPO, OWNER, stageOf, startScenario, use, type Scenario, leakCheck } from './harness.js';

// Commands, reviews and trust, driven through the real app process: signed webhooks in,
// the real worker, bubblewrap, git over HTTP and the two stand-ins.

let s: Scenario;
const MARKER = '<!-- issue-agent:status -->';
const FIXED_ADD = 'function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n';

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  await s?.stop();
});

const botComments = (repo: string, n: number) =>
  s.github.comments(OWNER, repo, n).filter((c) => c.user === s.github.botLogin);
const statusComments = (repo: string, n: number) => botComments(repo, n).filter((c) => c.body.startsWith(MARKER));
const editsOf = (commentId: number) =>
  s.github.requests.filter(
    (r) => r.method === 'PATCH' && r.path.endsWith(`/issues/comments/${commentId}`) && r.status === 200,
  ).length;

async function newRepo(repo: string, files: Record<string, string> = CALC_REPO): Promise<string> {
  const { barePath } = await s.github.addRepo({ owner: OWNER, repo, files });
  s.github.setPermission(OWNER, repo, 'maintainer', 'write');
  s.github.setPermission(OWNER, repo, 'reader', 'read');
  return barePath;
}

/** Labels an issue with the calc model and waits until its PR is open and the job is done. */
async function openPull(repo: string, issueNumber: number) {
  const title = 'add() is wrong for negatives';
  s.github.addIssue(OWNER, repo, { number: issueNumber, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
  await s.label({ repo, issueNumber, title, body: 'x' });
  const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, repo)[0]);
  await s.waitFor(
    'the job to finish',
    () => statusComments(repo, issueNumber)[0]?.body.includes('✅ done') || undefined,
  );
  return pr;
}

/** The comment ids of the review threads in a revise task, as the model reads them. */
const threadIds = (task: string) => [...task.matchAll(/<review-thread comment_id="(\d+)"/g)].map((m) => Number(m[1]));

/** A reviser that makes the given edits in turn, then answers every thread as addressed. */
function reviser(edits: Array<{ old_text: string; new_text: string }>): (task: string, turn: number) => ScriptedReply {
  return (task, turn) => {
    if (turn === 0) return { content: [use('read_file', { path: 'add.js', start_line: 1, end_line: 50 })] };
    const edit = edits[turn - 1];
    if (edit) return { content: [use('edit_file', { path: 'add.js', ...edit })] };
    return {
      content: [
        use('finish_revision', {
          summary: 'Explained the negative case and exported sum as asked.',
          threads: threadIds(task).map((id) => ({
            comment_id: id,
            outcome: 'addressed',
            reply: `Done as asked in thread ${id}.`,
          })),
        }),
      ],
    };
  };
}

function withReviser(revise: (task: string, turn: number) => ScriptedReply | Promise<ScriptedReply>): ScriptedModel {
  const base = calcModel({ toolErrors: [] });
  return (req, ctx) => {
    const st = stageOf(req);
    return st.stage === 'revise' ? revise(st.task, st.turn) : base(req, ctx);
  };
}

describe('people direct the agent', () => {
  it('/agent retry after a stuck job runs a new attempt with the extra text; one status comment per job, edited in place', async () => {
    const repo = 'retry';
    await newRepo(repo);
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, repo, { number: 5, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
    let fixRight = false;
    const codeTasks: string[] = [];
    s.anthropic.setModel((req, ctx) => {
      const st = stageOf(req);
      if (st.stage === 'code' && st.turn === 0 && !st.repair) codeTasks.push(st.task);
      return calcModel({ wrongFix: !fixRight, toolErrors: [] })(req, ctx);
    });
    await s.label({ repo, issueNumber: 5, title, body: 'x' });
    await s.waitFor('the stuck label', () => s.github.labels(OWNER, repo, 5).includes('agent:stuck') || undefined);
    await s.waitFor(
      'the escalation',
      () => statusComments(repo, 5)[0]?.body.includes('stopped without a pull request') || undefined,
    );

    fixRight = true;
    const { status, commentId } = await s.comment({
      repo,
      issueNumber: 5,
      title,
      body: 'Thanks.\n/agent retry the fix is to always return a + b',
    });
    expect(status).toBe(200);
    await s.waitFor(
      'the +1 on the command',
      () =>
        s.github
          .commentReactions(OWNER, repo, commentId)
          .some((r) => r.content === '+1' && r.user === s.github.botLogin) || undefined,
      10_000,
    );
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, repo)[0]);
    await s.waitFor(
      'the second job to finish',
      () => statusComments(repo, 5)[1]?.body.includes('✅ done') || undefined,
    );
    expect(await s.github.readFile(OWNER, repo, pr.head, 'add.js')).toBe(FIXED_ADD);
    // The retry's text reached the second attempt's task, as a writer's note.
    expect(codeTasks).toHaveLength(2);
    expect(codeTasks[0]).not.toContain('maintainer-note');
    expect(codeTasks[1]).toContain(
      '<maintainer-note author="maintainer">\nthe fix is to always return a + b\n</maintainer-note>',
    );
    // One status comment per job, each edited in place as the job went.
    const statuses = statusComments(repo, 5);
    expect(statuses).toHaveLength(2);
    expect(statuses[1]!.body).toContain(pr.number ? `/pull/${pr.number}` : 'pull');
    expect(editsOf(statuses[1]!.id)).toBeGreaterThanOrEqual(2);
    expect(s.github.labels(OWNER, repo, 5)).toEqual([]);
    // The app's labels were created with a colour and a description.
    const labels = s.github.repoLabels(OWNER, repo);
    expect(labels.find((l) => l.name === 'agent:working')).toMatchObject({
      color: 'fbca04',
      description: expect.stringContaining('working'),
    });
    expect(labels.find((l) => l.name === 'agent:stuck')).toMatchObject({ color: 'd93f0b' });
  });

  it("one status comment even when the web's takes so long that the worker makes its own: the later one is deleted", async () => {
    const repo = 'slow-status';
    await newRepo(repo);
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    // The web's status comment hangs in GitHub; after a minute the worker stops waiting for it.
    const gate = s.github.hold({ route: 'issues/create-comment' });
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, repo, { number: 8, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
    await s.label({ repo, issueNumber: 8, title, body: 'x' });
    await gate.reached;
    const workers = await s.waitFor("the worker's own status comment", () => statusComments(repo, 8)[0], 90_000);
    gate.release();
    await s.waitFor(
      "the web's comment to land and go",
      () =>
        s.github.requests.some(
          (r) => r.method === 'DELETE' && r.path.includes('/issues/comments/') && r.status === 204,
        ) || undefined,
      30_000,
    );
    await s.waitFor('the job to finish', () => statusComments(repo, 8)[0]?.body.includes('✅ done') || undefined);
    expect(statusComments(repo, 8).map((c) => c.id)).toEqual([workers.id]);
  }, 150_000);

  it('/agent stop during a job stops it at the next step and leaves no work tree; help and unknown commands answer', async () => {
    const repo = 'stopper';
    await newRepo(repo);
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, repo, { number: 6, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
    let sleeping = false;
    let stopSent = false;
    let callsAfterStop = 0;
    const base = calcModel({ toolErrors: [] });
    s.anthropic.setModel((req, ctx) => {
      if (stopSent) callsAfterStop++;
      const st = stageOf(req);
      if (st.stage === 'code' && st.turn === 0) {
        sleeping = true;
        return { content: [use('run_command', { command: 'sleep 120', timeout_seconds: 300 })] };
      }
      return base(req, ctx);
    });
    await s.label({ repo, issueNumber: 6, title, body: 'x' });
    await s.waitFor('the coding stage to start a long command', () => sleeping || undefined);
    stopSent = true;
    const { commentId } = await s.comment({ repo, issueNumber: 6, title, body: '/agent stop' });
    const stopped = await s.waitFor('the stopped status', () =>
      statusComments(repo, 6).find((c) => c.body.includes('stopped by maintainer')),
    );
    expect(stopped.body).toContain('/agent stop');
    // The running command was killed and the job ended at the next step: no model call after the stop.
    expect(callsAfterStop).toBe(0);
    expect(s.github.commentReactions(OWNER, repo, commentId).map((r) => r.content)).toContain('+1');
    await s.waitFor('the working label to go', () =>
      !s.github.labels(OWNER, repo, 6).includes('agent:working') ? true : undefined,
    );
    expect(s.github.labels(OWNER, repo, 6)).toEqual([]);
    expect(s.github.pulls(OWNER, repo)).toEqual([]);
    const worktrees = path.join(s.dataDir, 'data', 'worktrees');
    await s.waitFor(
      'the work tree to be removed',
      () => (!existsSync(worktrees) || !readdirSync(worktrees).some((d) => d.includes(repo)) ? true : undefined),
      10_000,
    );

    // Nothing runs now: a second stop says so; help and an unknown command get the list.
    await s.comment({ repo, issueNumber: 6, title, body: '/agent stop' });
    await s.waitFor(
      'the nothing-running reply',
      () => botComments(repo, 6).find((c) => c.body.includes('nothing is running')),
      15_000,
    );
    await s.comment({
      repo,
      issueNumber: 6,
      title,
      body: '> /agent retry\nquoting is not a command\n\n```\n/agent retry\n```',
    });
    await s.comment({ repo, issueNumber: 6, title, body: '/agent deploy' });
    const unknown = await s.waitFor(
      'the unknown-command reply',
      () => botComments(repo, 6).find((c) => c.body.includes('`/agent deploy` is not a command')),
      15_000,
    );
    for (const c of ['/agent retry', '/agent stop', '/agent help']) expect(unknown.body).toContain(c);
    // The quoted and fenced commands started nothing.
    expect(statusComments(repo, 6)).toHaveLength(1);
  });

  it('/agent stop while the model has not answered cuts the call instead of waiting for it', async () => {
    const repo = 'stop-model';
    await newRepo(repo);
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, repo, { number: 9, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
    let waiting = false;
    const base = calcModel({ toolErrors: [] });
    s.anthropic.setModel((req, ctx) => {
      const st = stageOf(req);
      if (st.stage === 'code' && st.turn === 0) {
        // The model API never answers this one; the SDK would wait minutes for it.
        waiting = true;
        return new Promise<ScriptedReply>(() => {});
      }
      return base(req, ctx);
    });
    await s.label({ repo, issueNumber: 9, title, body: 'x' });
    await s.waitFor('the coding call to hang', () => waiting || undefined);
    await s.comment({ repo, issueNumber: 9, title, body: '/agent stop' });
    const stopped = await s.waitFor(
      'the stopped status',
      () => statusComments(repo, 9).find((c) => c.body.includes('stopped by maintainer')),
      60_000,
    );
    expect(stopped.body).toContain('/agent stop');
    expect(s.github.pulls(OWNER, repo)).toEqual([]);
  });

  it("a review with two line comments on the app's PR gets one new commit addressing both, a reply per thread and no force push", async () => {
    const repo = 'review';
    const bare = await newRepo(repo);
    s.anthropic.setModel(
      withReviser(
        reviser([
          { old_text: '  return a + b;', new_text: '  // b may be negative: adding is still right.\n  return a + b;' },
          { old_text: 'module.exports = { add };', new_text: 'module.exports = { add, sum: add };' },
        ]),
      ),
    );
    const pr = await openPull(repo, 7);
    const before = (await s.github.headSha(OWNER, repo, pr.head))!;
    const review = await s.review({
      repo,
      pullNumber: pr.number,
      state: 'CHANGES_REQUESTED',
      body: 'Two small things.',
      comments: [
        { path: 'add.js', line: 2, body: 'Say why b may be negative here.' },
        { path: 'add.js', line: 3, body: 'Export it as sum as well.' },
      ],
    });
    expect(review.status).toBe(200);
    const replies = await s.waitFor('a reply in each thread', () => {
      const r = s.github.reviewComments(OWNER, repo, pr.number).filter((c) => c.inReplyTo !== undefined);
      return r.length >= 2 ? r : undefined;
    });
    await s.waitFor('the revision summary', () =>
      statusComments(repo, pr.number).find((c) => c.body.includes('**Revision')),
    );
    const after = (await s.github.headSha(OWNER, repo, pr.head))!;
    expect(after).not.toBe(before);
    expect(await s.github.isAncestor(OWNER, repo, before, after)).toBe(true);
    expect(
      execFileSync('git', ['--git-dir', bare, 'rev-list', '--count', `${before}..${after}`])
        .toString()
        .trim(),
    ).toBe('1');
    expect(await s.github.readFile(OWNER, repo, pr.head, 'add.js')).toBe(
      'function add(a, b) {\n  // b may be negative: adding is still right.\n  return a + b;\n}\n\nmodule.exports = { add, sum: add };\n',
    );
    // One reply per thread, from the app, naming the commit.
    expect(replies).toHaveLength(2);
    expect(new Set(replies.map((r) => r.inReplyTo))).toEqual(new Set(review.commentIds));
    for (const r of replies) {
      expect(r.user).toBe(s.github.botLogin);
      expect(r.body).toContain(after.slice(0, 7));
    }
    // One status comment for the revision on the PR, and the working label gone.
    expect(statusComments(repo, pr.number)).toHaveLength(1);
    await s.waitFor('the working label to go from the PR', () =>
      !s.github.labels(OWNER, repo, pr.number).includes('agent:working') ? true : undefined,
    );
    // An approval asks for nothing.
    const approvals = s.anthropic.requests.length;
    await s.review({ repo, pullNumber: pr.number, state: 'APPROVED', body: 'Thanks!' });
    await s.comment({
      repo,
      issueNumber: pr.number,
      title: pr.title,
      isPullRequest: true,
      author: { login: s.github.botLogin, type: 'Bot' },
      body: '/agent help',
    });
    await s.waitFor(
      'the help reply on the PR',
      () => botComments(repo, pr.number).find((c) => c.body.includes('commands')),
      15_000,
    );
    expect(s.anthropic.requests.length).toBe(approvals);
  });

  it('reviews sent while a revision runs are handled together in one following job', async () => {
    const repo = 'batch';
    await newRepo(repo);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const tasks: string[] = [];
    const edits = [
      [{ old_text: '  return a + b;', new_text: '  return a + b; // first' }],
      [{ old_text: 'module.exports = { add };', new_text: 'module.exports = { add }; // second' }],
    ];
    s.anthropic.setModel(
      withReviser(async (task, turn) => {
        if (turn === 0) {
          tasks.push(task);
          if (tasks.length === 1) await gate;
        }
        return reviser(edits[tasks.length - 1] ?? [])(task, turn);
      }),
    );
    const pr = await openPull(repo, 8);
    // Whatever fails below, the held revision must not block the worker for later tests.
    setTimeout(() => release(), 60_000).unref();
    await s.review({
      repo,
      pullNumber: pr.number,
      state: 'COMMENTED',
      body: '',
      comments: [{ path: 'add.js', line: 2, body: 'FIRST: mark this line.' }],
    });
    await s.waitFor('the first revision to start', () => tasks.length === 1 || undefined);
    await s.review({
      repo,
      pullNumber: pr.number,
      state: 'COMMENTED',
      body: '',
      comments: [{ path: 'add.js', line: 3, body: 'SECOND: mark the export.' }],
    });
    await s.review({ repo, pullNumber: pr.number, state: 'CHANGES_REQUESTED', body: 'THIRD: and keep it short.' });
    release();
    await s.waitFor('two revisions', () =>
      statusComments(repo, pr.number).filter((c) => c.body.includes('**Revision')).length === 2 ? true : undefined,
    );
    // Exactly two revise jobs: the second took both reviews that came in meanwhile.
    expect(tasks).toHaveLength(2);
    expect(tasks[0]).toContain('FIRST');
    expect(tasks[0]).not.toContain('SECOND');
    expect(tasks[1]).toContain('SECOND');
    expect(tasks[1]).toContain('THIRD');
    expect(tasks[1]).not.toContain('FIRST');
    expect(await s.github.readFile(OWNER, repo, pr.head, 'add.js')).toBe(
      'function add(a, b) {\n  return a + b; // first\n}\n\nmodule.exports = { add }; // second\n',
    );
    expect(s.github.reviewComments(OWNER, repo, pr.number).filter((c) => c.inReplyTo !== undefined)).toHaveLength(2);
  });

  it('the paths rule holds for commands too: a test file a command rewrote is not in the PR', async () => {
    const repo = 'paths';
    await newRepo(repo, { ...CALC_REPO, '.github/agent.yml': 'paths:\n  deny: ["test/**"]\n' });
    const base = calcModel({ toolErrors: [] });
    s.anthropic.setModel((req, ctx) => {
      const st = stageOf(req);
      if (st.stage === 'code' && st.turn === 1 && !st.repair)
        return {
          content: [
            use('run_command', {
              command: "sed -i 's/adds a negative number/EDITED/' test/add.test.js && grep -c EDITED test/add.test.js",
              timeout_seconds: 30,
            }),
          ],
        };
      return base(req, ctx);
    });
    const pr = await openPull(repo, 11);
    expect(await s.github.readFile(OWNER, repo, pr.head, 'test/add.test.js')).toBe(CALC_REPO['test/add.test.js']);
    expect(await s.github.readFile(OWNER, repo, pr.head, 'add.js')).toBe(FIXED_ADD);
    // The command did change the file; the pipeline undid it.
    const traces = path.join(s.dataDir, 'data', 'traces');
    const trace = readFileSync(
      path.join(traces, readdirSync(traces).find((f) => f.includes('paths_issues_11_'))!),
      'utf8',
    );
    expect(trace).toContain('"message":"undid changes to denied paths","detail":["test/add.test.js"]');
  });

  it('read-only users and bots trigger nothing: not a label, a command or a review', async () => {
    const repo = 'trust';
    await newRepo(repo);
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    const pr = await openPull(repo, 9);
    const title = 'Please add subtract()';
    s.github.addIssue(OWNER, repo, { number: 20, title, body: 'subtract(5, 3) should be 2', user: 'reader' });
    const calls = s.anthropic.requests.length;
    const prComments = s.github.comments(OWNER, repo, pr.number).length;

    const label = await s.label({ repo, issueNumber: 20, title, body: 'x', sender: { login: 'reader', type: 'User' } });
    const byReader = await s.comment({
      repo,
      issueNumber: 20,
      title,
      body: '/agent retry',
      sender: { login: 'reader', type: 'User' },
    });
    const review = await s.review({
      repo,
      pullNumber: pr.number,
      user: { login: 'reader', type: 'User' },
      state: 'COMMENTED',
      body: 'Rewrite it all.',
      comments: [{ path: 'add.js', line: 2, body: 'Use subtraction.' }],
    });
    const byBot = await s.comment({
      repo,
      issueNumber: 20,
      title,
      body: '/agent retry',
      sender: { login: 'dependabot[bot]', type: 'Bot' },
    });
    const byBotUser = await s.comment({
      repo,
      issueNumber: 20,
      title,
      body: '/agent retry',
      sender: { login: 'sneaky[bot]', type: 'User' },
    });
    const byApp = await s.comment({
      repo,
      issueNumber: 20,
      title,
      body: '/agent retry',
      sender: { login: s.github.botLogin, type: 'Bot' },
    });
    for (const r of [label, byReader, review, byBot, byBotUser, byApp]) expect(r.status).toBe(200);
    // A writer's command afterwards is answered: by then the others have been handled.
    await s.comment({ repo, issueNumber: 20, title, body: '/agent help' });
    await s.waitFor('the help reply', () => botComments(repo, 20).find((c) => c.body.includes('commands')), 15_000);
    // The reader's review is on the pull request's thread, which runs apart from the issue's.
    await s.waitFor(
      "the reader's three events checked",
      () => s.logs().match(/reader has read permission/g)?.length === 3 || undefined,
      15_000,
    );

    // The app's only comment is the help (the one "from the app" above was the test's).
    expect(botComments(repo, 20).filter((c) => c.id !== byApp.commentId)).toHaveLength(1);
    expect(s.github.comments(OWNER, repo, pr.number)).toHaveLength(prComments);
    expect(s.github.labels(OWNER, repo, 20)).toEqual([]);
    expect(s.github.reactions(OWNER, repo, 20)).toEqual([]);
    for (const id of [byReader.commentId, byBot.commentId, byBotUser.commentId, byApp.commentId])
      expect(s.github.commentReactions(OWNER, repo, id)).toEqual([]);
    expect(s.github.reviewComments(OWNER, repo, pr.number).filter((c) => c.inReplyTo !== undefined)).toEqual([]);
    expect(s.anthropic.requests.length).toBe(calls);
  });

  it("a writer's command on a pull request a person or another app opened is not taken", async () => {
    const repo = 'others';
    await newRepo(repo);
    const calls = s.anthropic.requests.length;
    const skipped = () => s.logs().match(/skipped: a command on a pull request the app did not open/g)?.length ?? 0;
    const before = skipped();
    s.github.addIssue(OWNER, repo, { number: 31, title: 'Refactor', body: 'x', user: 'maintainer' });
    s.github.addIssue(OWNER, repo, { number: 32, title: 'Bump deps', body: 'x', user: 'renovate[bot]' });
    // A person's pull request is dropped by the web; another app's (`…[bot]`, like this
    // app's) only once its identity is known, after the answer.
    const byPerson = await s.comment({
      repo,
      issueNumber: 31,
      title: 'Refactor',
      body: '/agent retry',
      isPullRequest: true,
      author: { login: 'maintainer', type: 'User' },
    });
    const byOtherApp = await s.comment({
      repo,
      issueNumber: 32,
      title: 'Bump deps',
      body: '/agent retry',
      isPullRequest: true,
      author: { login: 'renovate[bot]', type: 'Bot' },
    });
    for (const r of [byPerson, byOtherApp]) expect(r.status).toBe(200);
    await s.waitFor('both commands skipped', () => skipped() - before === 2 || undefined, 15_000);
    for (const [n, r] of [
      [31, byPerson],
      [32, byOtherApp],
    ] as const) {
      expect(botComments(repo, n)).toEqual([]);
      expect(s.github.commentReactions(OWNER, repo, r.commentId)).toEqual([]);
    }
    expect(s.anthropic.requests.length).toBe(calls);
  });

  it("once a repository's config is known, a label that is not its trigger label is dropped by the web, not recorded", async () => {
    const repo = 'labels';
    await newRepo(repo, { ...CALC_REPO, '.github/agent.yml': 'trigger_label: go-agent\n' });
    s.github.addIssue(OWNER, repo, { number: 5, title: 'add() is wrong for negatives', body: 'x', user: 'maintainer' });
    const handled = async () =>
      Number(
        /^issue_agent_inbox_wait_seconds_count\{outcome="done"\} (\d+)$/m.exec(
          await (await fetch(`${s.appUrl}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const start = await handled();
    // The first label is recorded: the inbox thread reads the config and tells the web which label acts.
    await s.label({ repo, issueNumber: 5, title: 'add() is wrong for negatives', body: 'x', label: 'agent' });
    await s.waitFor('the first label handled', async () => ((await handled()) === start + 1 ? true : undefined));
    // The same label again is dropped before the inbox; the help after it is recorded and answered.
    await s.label({ repo, issueNumber: 5, title: 'add() is wrong for negatives', body: 'x', label: 'agent' });
    await s.comment({ repo, issueNumber: 5, title: 'add() is wrong for negatives', body: '/agent help' });
    await s.waitFor('the help reply', () => botComments(repo, 5).find((c) => c.body.includes('commands')), 15_000);
    await s.waitFor('the help handled', async () => ((await handled()) >= start + 2 ? true : undefined));
    expect(await handled()).toBe(start + 2);
    expect(s.github.reactions(OWNER, repo, 5)).toEqual([]);
  });

  it('an invalid .github/agent.yml gets a comment naming the line, the field and the expected form, and no model call', async () => {
    const repo = 'badconfig';
    await newRepo(repo, {
      ...CALC_REPO,
      '.github/agent.yml': 'commands:\n  test: npm test\nmax_rounds: lots\nbudgets:\n  max_cost_usd: "ten"\n',
    });
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, repo, { number: 3, title, body: 'x', user: 'maintainer' });
    const calls = s.anthropic.requests.length;
    await s.label({ repo, issueNumber: 3, title, body: 'x' });
    const explained = await s.waitFor('the config comment', () => botComments(repo, 3)[0]);
    expect(explained.body).toContain('`.github/agent.yml` on `main` is invalid, so nothing ran');
    expect(explained.body).toMatch(/line 3, field `max_rounds`: .*"lots".* expected: a whole number from 1 to 10/);
    expect(explained.body).toMatch(/line 5, field `budgets\.max_cost_usd`/);
    // A retry while the file is still wrong is explained again, and still nothing runs.
    await s.comment({ repo, issueNumber: 3, title, body: '/agent retry' });
    await s.waitFor('the second config comment', () => (botComments(repo, 3).length === 2 ? true : undefined), 15_000);
    expect(s.anthropic.requests.length).toBe(calls);
    expect(s.github.labels(OWNER, repo, 3)).toEqual([]);
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'people')).toEqual([]);
  });
});
