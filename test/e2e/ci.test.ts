import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedModel } from '../stand-ins/anthropic/server.js';
import type { ScriptedCheck, ScriptedCheckIds } from '../stand-ins/github/server.js';
import { checkRunCompletedPayload, checkSuiteCompletedPayload, sendWebhook } from '../stand-ins/github/webhooks.js';
import { CALC_REPO, calcModel, OWNER, type Scenario, stageOf, startScenario, use, WEBHOOK_SECRET } from './harness.js';

// The app watches its own pull requests to green, driven through the real app process:
// CI results arrive as signed webhooks built from GitHub's examples, the app reads the
// checks, annotations and job logs from the GitHub stand-in, re-runs jobs, fixes code in
// the sandbox and pushes over git.

let s: Scenario;
const MARKER = '<!-- issue-agent:status -->';

// The PR's change leaves an unused variable that only CI's linter sees: the sandbox runs `npm test` alone.
const LINT_FAIL: ScriptedCheck = {
  name: 'lint (ubuntu)',
  workflow: 'CI',
  status: 'completed',
  conclusion: 'failure',
  output: { title: 'ESLint found 1 problem', summary: '1 error' },
  annotations: [
    {
      path: 'add.js',
      start_line: 2,
      end_line: 2,
      annotation_level: 'failure',
      message: "'sign' is assigned a value but never used. (no-unused-vars)",
    },
  ],
  log: [
    '2026-12-04T10:00:00.0000000Z > calc@1.0.0 lint',
    '2026-12-04T10:00:01.0000000Z > eslint .',
    '2026-12-04T10:00:02.0000000Z /home/runner/work/calc/add.js',
    "2026-12-04T10:00:02.0000000Z   2:9  error  'sign' is assigned a value but never used  no-unused-vars",
    '2026-12-04T10:00:02.0000000Z ✖ 1 problem (1 error, 0 warnings)',
    '2026-12-04T10:00:02.0000000Z ##[error]Process completed with exit code 1.',
  ].join('\n'),
};
const green = (name: string): ScriptedCheck => ({ name, workflow: 'CI', status: 'completed', conclusion: 'success' });

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  await s?.stop();
});

const botComments = (repo: string, n: number) =>
  s.github.comments(OWNER, repo, n).filter((c) => c.user === s.github.botLogin);
const ciComment = (repo: string, pull: number) => botComments(repo, pull).find((c) => c.body.startsWith(MARKER));
const modelStages = () => s.anthropic.requests.map((r) => stageOf(r as never).stage);

/** The calc model, whose fix leaves an unused variable; a CI fix (the revise stage) removes it. */
function ciModel(opts: { fixRemoves?: boolean } = {}): ScriptedModel {
  const base = calcModel({ toolErrors: [] });
  return (req, ctx) => {
    const st = stageOf(req);
    if (st.stage === 'code' && st.turn === 0)
      return {
        content: [
          use('edit_file', {
            path: 'add.js',
            old_text: '  if (b < 0) return a - b;\n',
            new_text: '  const sign = Math.sign(b);\n',
          }),
        ],
      };
    if (st.stage === 'code') return { content: [use('finish_change', { summary: 'add() now adds for every sign.' })] };
    if (st.stage === 'summary')
      return {
        content: [
          use('report_failure', {
            likely_cause: "an unused variable 'sign' in add.js (CI-SUMMARY-MARKER)",
            locations: [{ path: 'add.js', line: 2 }],
            excerpt: "2:9 error 'sign' is assigned a value but never used",
          }),
        ],
      };
    if (st.stage === 'revise') {
      if (st.turn === 0)
        return {
          content: [
            use('edit_file', {
              path: 'add.js',
              old_text: '  const sign = Math.sign(b);\n',
              new_text: opts.fixRemoves === false ? '  const sign = b > 0;\n' : '',
            }),
          ],
        };
      return { content: [use('finish_revision', { summary: 'Remove the unused variable sign.', threads: [] })] };
    }
    return base(req, ctx);
  };
}

const bares = new Map<string, string>();

async function newRepo(repo: string, extra: Record<string, string> = {}): Promise<void> {
  const { barePath } = await s.github.addRepo({ owner: OWNER, repo, files: { ...CALC_REPO, ...extra } });
  bares.set(repo, barePath);
  s.github.setPermission(OWNER, repo, 'maintainer', 'write');
}

/** Labels issue 1 and waits for the app's PR; answers its number, branch and head. */
async function openPull(repo: string) {
  const title = 'add() is wrong for negatives';
  s.github.addIssue(OWNER, repo, { number: 1, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
  await s.label({ repo, issueNumber: 1, title, body: 'x' });
  const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, repo)[0]);
  await s.waitFor('the job to finish', () =>
    botComments(repo, 1).some((c) => c.body.startsWith(MARKER) && c.body.includes('✅ done')),
  );
  const sha = (await s.github.headSha(OWNER, repo, pr.head))!;
  const base = (await s.github.headSha(OWNER, repo, 'main'))!;
  return { number: pr.number, branch: pr.head, sha, base };
}

/** Sets the checks of `sha` and delivers one `check_suite.completed` for them. */
async function ciResult(
  repo: string,
  pull: { number: number; branch: string; base: string },
  sha: string,
  checks: ScriptedCheck[],
): Promise<ScriptedCheckIds[]> {
  const ids = await s.github.setChecks(OWNER, repo, sha, checks);
  const failed = checks.some((c) => c.status === 'completed' && c.conclusion !== 'success');
  const payload = checkSuiteCompletedPayload({
    owner: OWNER,
    repo,
    url: s.github.url,
    installationId: s.github.installationId,
    headSha: sha,
    headBranch: pull.branch,
    conclusion: failed ? 'failure' : 'success',
    checkSuiteId: ids[0]!.checkSuiteId,
    pullRequests: [{ number: pull.number, headRef: pull.branch, headSha: sha, baseRef: 'main', baseSha: pull.base }],
  });
  const r = await sendWebhook({
    url: `${s.appUrl}/api/github/webhooks`,
    secret: WEBHOOK_SECRET,
    event: 'check_suite',
    payload,
  });
  expect(r.status).toBe(200);
  return ids;
}

/** How many times the app read the commit statuses of `sha`: once per CI result it weighed. */
const readsOf = (sha: string) =>
  s.github.requests.filter((r) => r.method === 'GET' && r.path.includes(`/commits/${sha}/status`)).length;

/** CI rounds-to-green observations of one round, from /metrics. */
const bucketOne = (metrics: string) =>
  Number(/issue_agent_ci_rounds_to_green_bucket\{le="1"\} (\d+)/.exec(metrics)?.[1] ?? Number.NaN);

/** A person's commit on `branch`, pushed straight to the stand-in's repository; answers its sha. */
async function pushAs(repo: string, branch: string, file: string, text: string, from = `origin/${branch}`) {
  const work = mkdtempSync(path.join(tmpdir(), 'ci-person-'));
  try {
    const git = (...args: string[]) =>
      execFileSync('git', args, {
        cwd: work,
        encoding: 'utf8',
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 'p',
          GIT_AUTHOR_EMAIL: 'p@x',
          GIT_COMMITTER_NAME: 'p',
          GIT_COMMITTER_EMAIL: 'p@x',
        },
      });
    git('clone', '-q', bares.get(repo)!, '.');
    git('checkout', '-q', '-B', branch, from);
    writeFileSync(path.join(work, file), text);
    git('commit', '-qam', "a person's commit");
    git('push', '-q', 'origin', branch);
    return git('rev-parse', 'HEAD').trim();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

const newHead = (repo: string, branch: string, from: string) =>
  s.waitFor(
    'a new commit on the branch',
    async () => {
      const now = await s.github.headSha(OWNER, repo, branch);
      return now && now !== from ? now : undefined;
    },
    240_000,
  );

describe('CI after the pull request', () => {
  it('fixes a check the sandbox does not run with one commit, then says all checks passed', async () => {
    const repo = 'ci-fix';
    await newRepo(repo);
    s.anthropic.setModel(ciModel());
    const pull = await openPull(repo);
    // The same lint passes on the base branch: the change caused the failure.
    await s.github.setChecks(OWNER, repo, pull.base, [green('lint (ubuntu)'), green('test')]);
    await ciResult(repo, pull, pull.sha, [LINT_FAIL, green('test')]);
    const fixed = await newHead(repo, pull.branch, pull.sha);
    expect(await s.github.isAncestor(OWNER, repo, pull.sha, fixed)).toBe(true);
    const file = await s.github.readFile(OWNER, repo, fixed, 'add.js');
    expect(file).not.toContain('sign');
    const message = execFileSync('git', ['--git-dir', bares.get(repo)!, 'log', '-1', '--format=%s', fixed], {
      encoding: 'utf8',
    });
    expect(message).toMatch(/^Fix lint \(ubuntu\): Remove the unused variable sign/);
    // The coder read the summary and the annotation, never the raw log.
    const reviseTask = s.anthropic.requests.map((r) => stageOf(r as never)).find((x) => x.stage === 'revise')!.task;
    expect(reviseTask).toContain('<ci-failure trust="untrusted">');
    expect(reviseTask).toContain('CI-SUMMARY-MARKER');
    expect(reviseTask).toContain("add.js:2: 'sign' is assigned a value but never used");
    expect(reviseTask).not.toContain('##[error]Process completed');
    await s.waitFor('the CI comment to say it pushed', () =>
      ciComment(repo, pull.number)?.body.includes('pushed') ? true : undefined,
    );
    const requestsBefore = s.anthropic.requests.length;
    await ciResult(repo, pull, fixed, [green('lint (ubuntu)'), green('test')]);
    const said = await s.waitFor('all checks passed', () =>
      ciComment(repo, pull.number)?.body.includes('all checks passed') ? ciComment(repo, pull.number) : undefined,
    );
    expect(said!.body).toContain('after 1 CI-fix round');
    // Green again (a second suite's event): read, and nothing more runs or is said.
    const comment = ciComment(repo, pull.number)!;
    const edits = () =>
      s.github.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith(`/issues/comments/${comment.id}`)).length;
    const editsBefore = edits();
    const reads = readsOf(fixed);
    await ciResult(repo, pull, fixed, [green('lint (ubuntu)'), green('test')]);
    await s.waitFor('the second result to be read', () => (readsOf(fixed) > reads ? true : undefined));
    await new Promise((r) => setTimeout(r, 500));
    expect(edits()).toBe(editsBefore);
    expect(s.anthropic.requests.length).toBe(requestsBefore);
    expect(await s.github.headSha(OWNER, repo, pull.branch)).toBe(fixed);
    expect(botComments(repo, pull.number).filter((c) => c.body.startsWith(MARKER))).toHaveLength(1);
    const metrics = await (await fetch(`${s.appUrl}/metrics`)).text();
    expect(metrics).toMatch(/issue_agent_ci_fix_total\{outcome="fixed"\} 1/);
    expect(metrics).toMatch(/issue_agent_jobs_total\{kind="ci-fix",outcome="revised"\} 1/);
  }, 300_000);

  it('re-runs a job that failed on a runner error once, and changes no code', async () => {
    const repo = 'ci-rerun';
    await newRepo(repo);
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    const pull = await openPull(repo);
    const stagesBefore = modelStages().length;
    const roundsBefore = bucketOne(await (await fetch(`${s.appUrl}/metrics`)).text());
    const ids = await ciResult(repo, pull, pull.sha, [
      green('lint (ubuntu)'),
      {
        name: 'test (windows)',
        workflow: 'CI',
        status: 'completed',
        conclusion: 'failure',
        log: '2026-12-04T10:00:00.0000000Z ##[error]The runner has received a shutdown signal. This can happen when the runner service is stopped.',
        rerun: { status: 'completed', conclusion: 'success' },
      },
    ]);
    const rerun = await s.waitFor('a re-run', () => s.github.reruns(OWNER, repo)[0]);
    expect(rerun.name).toBe('test (windows)');
    expect(rerun.jobId).toBe(ids.find((i) => i.name === 'test (windows)')!.checkRunId);
    await s.waitFor('the CI comment to say it re-ran', () =>
      ciComment(repo, pull.number)?.body.includes('re-ran') ? true : undefined,
    );
    // The re-run's own completion: every check is green now.
    const r = await sendWebhook({
      url: `${s.appUrl}/api/github/webhooks`,
      secret: WEBHOOK_SECRET,
      event: 'check_run',
      payload: checkRunCompletedPayload({
        owner: OWNER,
        repo,
        url: s.github.url,
        installationId: s.github.installationId,
        headSha: pull.sha,
        headBranch: pull.branch,
        conclusion: 'success',
        checkSuiteId: ids[0]!.checkSuiteId,
        checkRunId: rerun.newJobId,
        name: 'test (windows)',
        pullRequests: [
          { number: pull.number, headRef: pull.branch, headSha: pull.sha, baseRef: 'main', baseSha: pull.base },
        ],
      }),
    });
    expect(r.status).toBe(200);
    await s.waitFor('all checks passed', () =>
      ciComment(repo, pull.number)?.body.includes('all checks passed') ? true : undefined,
    );
    expect(s.github.reruns(OWNER, repo)).toHaveLength(1);
    expect(await s.github.headSha(OWNER, repo, pull.branch)).toBe(pull.sha);
    expect(modelStages().length).toBe(stagesBefore);
    const metrics = await (await fetch(`${s.appUrl}/metrics`)).text();
    expect(metrics).toMatch(/issue_agent_ci_fix_total\{outcome="rerun_green"\} 1/);
    expect(metrics).toMatch(/issue_agent_jobs_total\{kind="ci-fix",outcome="ci_rerun"\} 1/);
    // This PR went green after one CI-fix round.
    expect(bucketOne(metrics)).toBe(roundsBefore + 1);
  }, 300_000);

  it('escalates when a failure comes back after its fix, naming the fingerprint, and tries no more', async () => {
    const repo = 'ci-again';
    await newRepo(repo);
    s.anthropic.setModel(ciModel({ fixRemoves: false }));
    const pull = await openPull(repo);
    await s.github.setChecks(OWNER, repo, pull.base, [green('lint (ubuntu)')]);
    await ciResult(repo, pull, pull.sha, [LINT_FAIL]);
    const fixed = await newHead(repo, pull.branch, pull.sha);
    await s.waitFor('the CI comment to say it pushed', () =>
      ciComment(repo, pull.number)?.body.includes('pushed') ? true : undefined,
    );
    await ciResult(repo, pull, fixed, [LINT_FAIL]);
    // The escalation is the CI comment's last word: the failure, what was tried, what to decide.
    const escalation = await s.waitFor('the escalation', () => {
      const c = ciComment(repo, pull.number);
      return c && /fingerprint [0-9a-f]{12}/.test(c.body) ? c : undefined;
    });
    expect(escalation.body).toContain('stopped without pushing: **same-failure**');
    expect(escalation.body).toMatch(/`lint \(ubuntu\)` failed again the same way/);
    expect(escalation.body).toContain('### What to decide');
    expect(escalation.body).toContain('/agent retry');
    expect(s.github.labels(OWNER, repo, pull.number)).toContain('agent:stuck');
    // Counted when the job returns, just after its last word.
    await s.waitFor('the escalation to be counted', async () =>
      /issue_agent_ci_fix_total\{outcome="escalated"\} 1/.test(await (await fetch(`${s.appUrl}/metrics`)).text())
        ? true
        : undefined,
    );
    // After the escalation the PR's CI is the people's: a person's new red commit starts nothing.
    const requests = s.anthropic.requests.length;
    const theirs = await pushAs(repo, pull.branch, 'add.js', `${CALC_REPO['add.js']}// a person's try\n`);
    await ciResult(repo, pull, theirs, [LINT_FAIL]);
    await s.waitFor('the result to be refused', () =>
      s.logs().includes(`"sha":"${theirs.slice(0, 12)}","result":{"kind":"stopped"`) ? true : undefined,
    );
    expect(await s.github.headSha(OWNER, repo, pull.branch)).toBe(theirs);
    expect(s.anthropic.requests.length).toBe(requests);
  }, 300_000);

  it('stops at ci.max_fix_attempts: a new failure after the last allowed fix is reported, not fixed', async () => {
    const repo = 'ci-bound';
    await newRepo(repo, { '.github/agent.yml': 'ci:\n  max_fix_attempts: 1\n' });
    s.anthropic.setModel(ciModel());
    const pull = await openPull(repo);
    await s.github.setChecks(OWNER, repo, pull.base, [green('lint (ubuntu)'), green('test (node 18)')]);
    await ciResult(repo, pull, pull.sha, [LINT_FAIL, green('test (node 18)')]);
    const fixed = await newHead(repo, pull.branch, pull.sha);
    await s.waitFor('the CI comment to say it pushed', () =>
      ciComment(repo, pull.number)?.body.includes('pushed') ? true : undefined,
    );
    const requests = s.anthropic.requests.length;
    // Another check fails on the fixed head: the one allowed fix is spent.
    await ciResult(repo, pull, fixed, [
      green('lint (ubuntu)'),
      {
        name: 'test (node 18)',
        workflow: 'CI',
        status: 'completed',
        conclusion: 'failure',
        log: 'not ok 1 - adds on node 18\n  ---\n  error: expected 5\n  ...\n',
      },
    ]);
    const escalation = await s.waitFor('the escalation', () => {
      const c = ciComment(repo, pull.number);
      return c?.body.includes('**ci-fix-bound**') ? c : undefined;
    });
    expect(escalation.body).toContain('after 1 fix, the most `ci.max_fix_attempts` allows (1)');
    expect(escalation.body).toContain('raise `ci.max_fix_attempts`');
    expect(await s.github.headSha(OWNER, repo, pull.branch)).toBe(fixed);
    expect(s.anthropic.requests.length).toBe(requests);
  }, 300_000);

  it('/agent stop on the pull request stops a running CI fix, pushes nothing, and ends the watch', async () => {
    const repo = 'ci-stop';
    await newRepo(repo);
    let reached!: () => void;
    const inRevise = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const model = ciModel();
    s.anthropic.setModel(async (req, ctx) => {
      if (stageOf(req).stage === 'revise') {
        reached();
        await gate;
      }
      return model(req, ctx);
    });
    const pull = await openPull(repo);
    await s.github.setChecks(OWNER, repo, pull.base, [green('lint (ubuntu)')]);
    await ciResult(repo, pull, pull.sha, [LINT_FAIL]);
    await inRevise;
    const r = await s.comment({
      repo,
      issueNumber: pull.number,
      title: 'add() is wrong for negatives',
      body: '/agent stop',
      isPullRequest: true,
      author: { login: s.github.botLogin, type: 'Bot' },
    });
    expect(r.status).toBe(200);
    await s.waitFor('the CI comment to say it stopped', () =>
      ciComment(repo, pull.number)?.body.includes('stopped by maintainer') ? true : undefined,
    );
    release();
    expect(await s.github.headSha(OWNER, repo, pull.branch)).toBe(pull.sha);
    // The watch ended: a person's red commit starts nothing.
    const theirs = await pushAs(repo, pull.branch, 'add.js', `${CALC_REPO['add.js']}// by hand\n`);
    await ciResult(repo, pull, theirs, [LINT_FAIL]);
    await s.waitFor('the result to be refused', () =>
      s.logs().includes(`"sha":"${theirs.slice(0, 12)}","result":{"kind":"stopped"`) ? true : undefined,
    );
  }, 300_000);

  it('ignores failing checks on a pull request the app did not open', async () => {
    const repo = 'ci-theirs';
    await newRepo(repo);
    // A person's branch named like the app's, and a pull request from it.
    await pushAs(repo, 'agent/issue-7-mine', 'add.js', `${CALC_REPO['add.js']}// mine\n`, 'origin/main');
    const number = await s.github.openPullAs(OWNER, repo, {
      head: 'agent/issue-7-mine',
      base: 'main',
      title: 'my change',
      user: 'maintainer',
    });
    const sha = (await s.github.headSha(OWNER, repo, 'agent/issue-7-mine'))!;
    const base = (await s.github.headSha(OWNER, repo, 'main'))!;
    const jobsBefore = s
      .logs()
      .split('\n')
      .filter((l) => l.includes('"job"')).length;
    await ciResult(repo, { number, branch: 'agent/issue-7-mine', base }, sha, [LINT_FAIL]);
    await s.waitFor('the event to be dropped', () =>
      s.logs().includes('skipped: CI on a pull request the app did not open') ? true : undefined,
    );
    expect(s.github.comments(OWNER, repo, number)).toHaveLength(0);
    expect(s.github.reruns(OWNER, repo)).toHaveLength(0);
    expect(
      s
        .logs()
        .split('\n')
        .filter((l) => l.includes('"job"')).length,
    ).toBe(jobsBefore);
  }, 120_000);

  it('marks a draft pull request ready only once every check passed', async () => {
    const repo = 'ci-draft';
    await newRepo(repo, { '.github/agent.yml': 'pull_request:\n  draft_until_green: true\n' });
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    const pull = await openPull(repo);
    expect(s.github.pulls(OWNER, repo)[0]!.draft).toBe(true);
    const readies = () =>
      s.github.requests.filter(
        (r) => r.path === '/api/graphql' && JSON.stringify(r.body).includes('markPullRequestReadyForReview'),
      ).length;
    // One check still running: not yet.
    await ciResult(repo, pull, pull.sha, [
      green('lint (ubuntu)'),
      { name: 'test', workflow: 'CI', status: 'in_progress' },
    ]);
    await s.waitFor('the checks to be read', () =>
      s.github.requests.some((r) => r.path.includes(`/commits/${pull.sha}/status`)) ? true : undefined,
    );
    await new Promise((r) => setTimeout(r, 1_000));
    expect(s.github.pulls(OWNER, repo)[0]!.draft).toBe(true);
    expect(readies()).toBe(0);
    await ciResult(repo, pull, pull.sha, [green('lint (ubuntu)'), green('test')]);
    await s.waitFor('the PR to be ready', () => (s.github.pulls(OWNER, repo)[0]!.draft === false ? true : undefined));
    expect(readies()).toBe(1);
    await s.waitFor('all checks passed', () =>
      ciComment(repo, pull.number)?.body.includes('all checks passed') ? true : undefined,
    );
  }, 300_000);
});
