import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { calcModel, CALC_REPO, OWNER, startScenario, WEBHOOK_SECRET, type Scenario, leakCheck } from './harness.js';

let s: Scenario;

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  if (process.env.E2E_LOGS) console.log(s?.logs().slice(-6000));
  await s?.stop();
});

async function jobCount(): Promise<number> {
  const q = new Queue('agent-run', { connection: { url: s.redis.url }, prefix: 'issue-agent' });
  try {
    const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
    return Object.values(counts).reduce((a, b) => a + b, 0);
  } finally {
    await q.close();
  }
}

describe('a labeled issue becomes a tested pull request', () => {
  it('skips senders without write access and bots: no job, no comment', async () => {
    await s.github.addRepo({ owner: OWNER, repo: 'skips', files: CALC_REPO });
    s.github.setPermission(OWNER, 'skips', 'reader', 'read');
    s.github.setPermission(OWNER, 'skips', 'triager', 'triage');
    s.github.addIssue(OWNER, 'skips', { number: 1, title: 'x', body: 'y', user: 'reader' });
    for (const sender of [
      { login: 'reader', type: 'User' as const },
      { login: 'triager', type: 'User' as const },
      { login: 'ci[bot]', type: 'Bot' as const },
    ]) {
      const r = await s.label({ repo: 'skips', issueNumber: 1, title: 'x', body: 'y', sender });
      expect(r.status).toBe(200);
    }
    expect((await s.label({ repo: 'skips', issueNumber: 1, title: 'x', body: 'y', label: 'bug' })).status).toBe(200);
    expect(await jobCount()).toBe(0);
    expect(s.github.comments(OWNER, 'skips', 1)).toEqual([]);
  });

  it('refuses a webhook with a bad signature', async () => {
    const r = await fetch(`${s.appUrl}/api/github/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-github-event': 'issues',
        'x-github-delivery': 'forged',
        'x-hub-signature-256': `sha256=${'0'.repeat(64)}`,
      },
      body: JSON.stringify({ action: 'labeled' }),
    });
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(await jobCount()).toBe(0);
  });

  it('plans, fixes, validates red → green under bubblewrap, pushes and opens the PR', async () => {
    const toolErrors: string[] = [];
    const toolOutputs: string[] = [];
    // The probe port is the GitHub stand-in's: open on the host, unreachable from the sandbox.
    s.anthropic.setModel(calcModel({ toolErrors, toolOutputs, probePort: Number(s.github.host.split(':')[1]) }));
    const { barePath } = await s.github.addRepo({ owner: OWNER, repo: 'calc', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc', 'maintainer', 'maintain');
    const title = 'add() returns the wrong sum when one number is negative';
    s.github.addIssue(OWNER, 'calc', {
      number: 12,
      title,
      body: '`npm test` fails on "adds a negative number".',
      user: 'maintainer',
    });

    const first = await s.label({ repo: 'calc', issueNumber: 12, title, body: 'x' });
    expect(first.status).toBe(200);
    // A redelivery of the same webhook and a second label event make no second job.
    expect(
      (await s.label({ repo: 'calc', issueNumber: 12, title, body: 'x', deliveryId: first.deliveryId })).status,
    ).toBe(200);
    expect((await s.label({ repo: 'calc', issueNumber: 12, title, body: 'x' })).status).toBe(200);
    await s.waitFor('the 👀 reaction', () => s.github.reactions(OWNER, 'calc', 12)[0], 10_000);
    expect(s.github.reactions(OWNER, 'calc', 12)).toEqual([{ content: 'eyes', user: s.github.botLogin }]);

    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'calc')[0]);
    expect(await jobCount()).toBe(1);
    expect(pr).toMatchObject({ head: 'agent/issue-12-add-returns-the-wrong-sum', base: 'main', state: 'open', title });
    expect(pr.body).toContain('Closes #12');
    expect(pr.body).toMatch(/\| `npm test` \| ✅ passed \| [\d.]+ s \| failed \|/);
    expect(pr.body).toMatch(/^add\(\) now adds for every sign of b\./);
    expect(pr.body).toMatch(/spend: 8 model calls, [\d,]+ input tokens .* \$\d+\.\d{4}/);

    const pushed = await s.github.readFile(OWNER, 'calc', 'agent/issue-12-add-returns-the-wrong-sum', 'add.js');
    expect(pushed).toBe('function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n');
    expect(await s.github.readFile(OWNER, 'calc', 'main', 'add.js')).toBe(CALC_REPO['add.js']);
    // Committed as the app's bot user, one commit on top of the default branch.
    const log = execFileSync(
      'git',
      ['--git-dir', barePath, 'log', '--format=%an <%ae>|%s', 'main..agent/issue-12-add-returns-the-wrong-sum'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n');
    const botId = (await (
      await fetch(`${s.github.apiUrl}/users/${encodeURIComponent(s.github.botLogin)}`, {
        headers: { authorization: `token ${s.github.issuedTokens[0]}` },
      })
    ).json()) as { id: number };
    expect(log).toEqual([`${s.github.botLogin} <${botId.id}+${s.github.botLogin}@users.noreply.127.0.0.1>|${title}`]);

    // One status comment, and the second label answered (not queued).
    await s.waitFor(
      'the answer to the second label',
      () => s.github.comments(OWNER, 'calc', 12).find((c) => c.body.includes('attempt 1 is still running')),
      15_000,
    );
    const comments = s.github.comments(OWNER, 'calc', 12);
    expect(comments.filter((c) => c.body.startsWith('<!-- issue-agent:status -->'))).toHaveLength(1);
    expect(comments.filter((c) => c.body.includes('attempt 1 is still running'))).toHaveLength(1);
    expect(comments).toHaveLength(2);
    const status = await s.waitFor('the final status', () =>
      s.github
        .comments(OWNER, 'calc', 12)
        .find((c) => c.body.startsWith('<!-- issue-agent:status -->') && c.body.includes('✅ done')),
    );
    expect(status.body).toContain(`/${OWNER}/calc/pull/${pr.number}`);
    expect(status.user).toBe(s.github.botLogin);
    expect(s.github.labels(OWNER, 'calc', 12)).not.toContain('agent:working');
    expect(s.github.labels(OWNER, 'calc', 12)).not.toContain('agent:stuck');

    expect(toolErrors).toEqual([]);
    expect(s.github.violations).toEqual([]);
    expect(s.anthropic.violations).toEqual([]);

    // The model's command ran in the sandbox: unprivileged, no network, and none of the
    // app's credentials (its environment holds a GitHub token, the model key, the App key).
    const sandboxed = toolOutputs.find((o) => o.includes('SANDBOX_PROBE') || o.includes('PATH='))!;
    expect(sandboxed).toMatch(/^1000$/m);
    expect(sandboxed).toMatch(/^net: (ECONNREFUSED|ENETUNREACH|EADDRNOTAVAIL)$/m);
    expect(sandboxed).toMatch(/cannot access '\/root'/);
    for (const secret of [
      'ghp_parentsecret',
      'sk-ant-e2e-key',
      'BEGIN RSA PRIVATE KEY',
      WEBHOOK_SECRET,
      'x-access-token',
      ...s.github.issuedTokens,
    ]) {
      expect(sandboxed).not.toContain(secret);
    }
    expect(sandboxed).not.toMatch(/^(APP_ID|PRIVATE_KEY|WEBHOOK_SECRET|ANTHROPIC_[A-Z_]+|GITHUB_TOKEN|REDIS_URL)=/m);

    // The job's trace holds model calls, tool calls and stage boundaries.
    const traceDir = path.join(s.dataDir, 'data', 'traces');
    const trace = readdirSync(traceDir).find((f) => f.includes('calc_issues_12'))!;
    const events = readFileSync(path.join(traceDir, trace), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; tool?: string });
    expect(events.filter((e) => e.type === 'model')).toHaveLength(8);
    expect(events.filter((e) => e.type === 'tool').map((e) => e.tool)).toEqual([
      'accept_task',
      'read_file',
      'search',
      'submit_plan',
      'read_file',
      'run_command',
      'edit_file',
      'finish_change',
    ]);
    // Scope ran on the fast tier, plan on frontier, code on mid; the model key never reached GitHub.
    expect(new Set(s.anthropic.requests.map((r) => r.model))).toEqual(
      new Set(['claude-haiku-5-5', 'claude-opus-5-5', 'claude-sonnet-5-5']),
    );
    expect(JSON.stringify(s.github.requests)).not.toContain('sk-ant-e2e-key');
  });

  it('recovers from the usual tool-call mistakes, guided by the errors, and still opens a correct PR', async () => {
    const toolErrors: string[] = [];
    s.anthropic.setModel(calcModel({ mistakes: true, toolErrors }));
    await s.github.addRepo({ owner: OWNER, repo: 'calc5', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc5', 'maintainer', 'write');
    s.github.addIssue(OWNER, 'calc5', {
      number: 9,
      title: 'add() is wrong for negatives',
      body: 'x',
      user: 'maintainer',
    });
    await s.label({ repo: 'calc5', issueNumber: 9, title: 'add() is wrong for negatives', body: 'x' });
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'calc5')[0]);
    expect(await s.github.readFile(OWNER, 'calc5', pr.head, 'add.js')).toBe(
      'function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n',
    );
    expect(await s.github.readFile(OWNER, 'calc5', pr.head, 'test/add.test.js')).toBe(CALC_REPO['test/add.test.js']);

    // Each mistake got an error that named the fix.
    const errors = toolErrors.join('\n');
    expect(errors).toMatch(/not_found.*no file src\/add\.js; closest: add\.js/);
    expect(errors).toMatch(/"start", "end": not a field of read_file/);
    expect(errors).toMatch(/invalid_pattern/);
    expect(errors).toMatch(/files_to_change: .*expected array.*received string/);
    expect(errors).toMatch(/old_text_not_found.*indentation differs/);
    expect(errors).toMatch(/"encoding": not a field of read_file/);
    expect(errors).toMatch(/syntax_error.*unparseable.*line \d+/);
    expect(errors).toMatch(/outside_scope[\s\S]*request_scope/);
    expect(toolErrors).toHaveLength(8);

    // The trace shows every error and the recoveries. The tallies are written as the job
    // ends, after its final status comment: wait for them, not for the comment.
    const traceDir = path.join(s.dataDir, 'data', 'traces');
    type Event = {
      type: string;
      ok?: boolean;
      errorCode?: string;
      message?: string;
      detail?: Record<string, { recovered: number; failed: number }>;
    };
    const readEvents = (): Event[] => {
      const file = readdirSync(traceDir).find((f) => f.includes('calc5_issues_9'));
      return file
        ? readFileSync(path.join(traceDir, file), 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as Event)
        : [];
    };
    const events = await s.waitFor('the tool-call tallies in the trace', () => {
      const all = readEvents();
      return all.some((e) => e.type === 'note' && e.message === 'tool calls') ? all : undefined;
    });
    expect(events.filter((e) => e.type === 'tool' && !e.ok).map((e) => e.errorCode)).toEqual([
      'not_found',
      'invalid_input',
      'invalid_pattern',
      'invalid_input',
      'old_text_not_found',
      'invalid_input',
      'syntax_error',
      'outside_scope',
    ]);
    const tallies = events.find((e) => e.type === 'note' && e.message === 'tool calls')!.detail!;
    expect(tallies.read_file).toMatchObject({ recovered: 2, failed: 0 });
    expect(tallies.edit_file).toMatchObject({ recovered: 1, failed: 0 });
    expect(tallies.submit_plan).toMatchObject({ recovered: 1, failed: 0 });
    expect(pr.body).toMatch(/edit_file: 4 calls, 0 right first try, 1 recovered, 0 failed/);
    expect(s.anthropic.violations).toEqual([]);
    expect(s.github.violations).toEqual([]);
  });

  it('never force-pushes: a branch with other commits ends in an escalation, not an overwrite', async () => {
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    const { barePath } = await s.github.addRepo({ owner: OWNER, repo: 'calc3', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc3', 'maintainer', 'write');
    const title = 'add() is wrong for negatives';
    s.github.addIssue(OWNER, 'calc3', { number: 5, title, body: 'fix it', user: 'maintainer' });
    const git = (...args: string[]) =>
      execFileSync('git', ['--git-dir', barePath, ...args], {
        encoding: 'utf8',
        env: {
          ...process.env,
          GIT_AUTHOR_NAME: 'Someone',
          GIT_AUTHOR_EMAIL: 's@example.com',
          GIT_COMMITTER_NAME: 'Someone',
          GIT_COMMITTER_EMAIL: 's@example.com',
        },
      }).trim();
    const theirs = git('commit-tree', 'main^{tree}', '-p', 'main', '-m', 'someone else');
    git('update-ref', 'refs/heads/agent/issue-5-add-is-wrong-for-negatives', theirs);

    await s.label({ repo: 'calc3', issueNumber: 5, title, body: 'fix it' });
    const status = await s.waitFor('the stuck status', () => {
      const c = s.github.comments(OWNER, 'calc3', 5)[0];
      return c?.body.includes('stopped without a pull request') ? c : undefined;
    });
    expect(status.body).toContain('push-rejected');
    expect(status.body).toContain('not force-pushed');
    expect(git('rev-parse', 'agent/issue-5-add-is-wrong-for-negatives')).toBe(theirs);
    expect(s.github.pulls(OWNER, 'calc3')).toEqual([]);
    expect(s.github.labels(OWNER, 'calc3', 5)).toContain('agent:stuck');
  });

  it('escalates once when the model API refuses, instead of running the job again', async () => {
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    await s.github.addRepo({ owner: OWNER, repo: 'calc4', files: CALC_REPO });
    s.github.setPermission(OWNER, 'calc4', 'maintainer', 'write');
    s.github.addIssue(OWNER, 'calc4', {
      number: 2,
      title: 'fix add() for negative numbers',
      body: 'npm test fails',
      user: 'maintainer',
    });
    const before = s.anthropic.attempts;
    s.anthropic.failNext(400, {
      type: 'error',
      error: { type: 'invalid_request_error', message: 'prompt is too long: 210000 tokens > 200000 maximum' },
    });
    await s.label({ repo: 'calc4', issueNumber: 2, title: 'fix add() for negative numbers', body: 'npm test fails' });
    const status = await s.waitFor('the stuck status', () => {
      const c = s.github.comments(OWNER, 'calc4', 2)[0];
      return c?.body.includes('stopped without a pull request') ? c : undefined;
    });
    expect(status.body).toMatch(
      /model-refused: the model API refused a request to claude-haiku-5-5 \(400 invalid_request_error\).*prompt is too long/,
    );
    expect(s.anthropic.attempts - before).toBe(1);
    expect(s.github.labels(OWNER, 'calc4', 2)).toEqual(['agent:stuck']);
  });

  it('escalates when validation never goes green: no PR, agent:stuck, the failing command named', async () => {
    const toolErrors: string[] = [];
    s.anthropic.setModel(calcModel({ wrongFix: true, toolErrors }));
    await s.github.addRepo({
      owner: OWNER,
      repo: 'calc2',
      files: { ...CALC_REPO, '.github/agent.yml': 'max_rounds: 2\n' },
    });
    s.github.setPermission(OWNER, 'calc2', 'maintainer', 'admin');
    s.github.addIssue(OWNER, 'calc2', {
      number: 3,
      title: 'add() is wrong for negatives',
      body: 'fix it',
      user: 'maintainer',
    });
    expect(
      (await s.label({ repo: 'calc2', issueNumber: 3, title: 'add() is wrong for negatives', body: 'fix it' })).status,
    ).toBe(200);

    const status = await s.waitFor('the stuck status', () => {
      const c = s.github.comments(OWNER, 'calc2', 3)[0];
      return c?.body.includes('stopped without a pull request') ? c : undefined;
    });
    expect(status.body).toContain('**Failing command:** `npm test`');
    expect(status.body).toContain('**no-progress**');
    // The coder got the failure report (parsed failures plus the fast-tier summary), not the raw log.
    const repair = s.anthropic.requests
      .map((r) => JSON.stringify(r.messages[0]))
      .find((m) => m.includes('<validation-failure>'))!;
    expect(repair).toMatch(/node-test: \d+ failing/);
    expect(repair).toContain('adds a negative number');
    expect(repair).toContain('Likely cause: add() does not return a + b for a negative b (SUMMARY-MARKER).');
    expect(repair).not.toContain('TAP version');
    expect(status.body).toContain('not ok 2 - adds a negative number');
    // Paths of the host's work tree never reach a comment.
    expect(status.body).not.toContain(s.dataDir);
    expect(s.github.labels(OWNER, 'calc2', 3)).toContain('agent:stuck');
    expect(s.github.labels(OWNER, 'calc2', 3)).not.toContain('agent:working');
    expect(s.github.pulls(OWNER, 'calc2')).toEqual([]);
    expect(await s.github.readFile(OWNER, 'calc2', 'agent/issue-3-add-is-wrong-for-negatives', 'add.js')).toBeNull();
    expect(toolErrors).toEqual([]);
    expect(s.github.violations).toEqual([]);
    expect(s.anthropic.violations).toEqual([]);
  });

  it('runs a new attempt when the label is added again after a stuck one, and clears agent:stuck', async () => {
    const toolErrors: string[] = [];
    s.anthropic.setModel(calcModel({ toolErrors }));
    expect(s.github.labels(OWNER, 'calc2', 3)).toContain('agent:stuck');
    await s.label({ repo: 'calc2', issueNumber: 3, title: 'add() is wrong for negatives', body: 'fix it' });
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, 'calc2')[0]);
    expect(pr.head).toBe('agent/issue-3-add-is-wrong-for-negatives');
    await s.waitFor('the final status', () =>
      s.github.comments(OWNER, 'calc2', 3).at(-1)?.body.includes('✅ done') ? true : undefined,
    );
    // Attempt 2 has its own status comment; attempt 1's still tells what happened then.
    expect(s.github.comments(OWNER, 'calc2', 3)).toHaveLength(2);
    expect(s.github.labels(OWNER, 'calc2', 3)).not.toContain('agent:stuck');
    expect(toolErrors).toEqual([]);
    expect(s.github.violations).toEqual([]);
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'labeled-issue')).toEqual([]);
  });
});
