import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicStandIn, type AnthropicStandIn } from '../../test/stand-ins/anthropic/server.js';
import { CALC_PLAN, CALC_REPO, calcModel } from '../../test/e2e/harness.js';
import { runCli } from '../../test/helpers/cli.js';
import { hostProgramFiles, startTestRegistry } from '../../test/helpers/oci-registry.js';
import { sh, tempDir } from '../../test/helpers/git-fixtures.js';

let anthropic: AnthropicStandIn;
const tmp = tempDir('cli-run');
const KEY = 'sk-ant-cli-test-0123456789';

beforeAll(async () => {
  anthropic = await startAnthropicStandIn();
});
afterAll(async () => {
  await anthropic?.close();
  tmp.cleanup();
});

let counter = 0;
/** A real checkout of the calc repository on `main`, with one commit. */
function checkout(extra: Record<string, string> = {}): string {
  const dir = path.join(tmp.dir, `calc-${++counter}`);
  for (const [file, text] of Object.entries({ ...CALC_REPO, ...extra })) {
    mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    writeFileSync(path.join(dir, file), text);
  }
  sh(dir, 'init', '-q', '-b', 'main');
  sh(dir, 'add', '-A');
  sh(dir, 'commit', '-q', '-m', 'calc');
  return dir;
}

const modelEnv = () => ({ ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: anthropic.url });
const TITLE = 'add() returns the wrong sum when one number is negative';
const BRANCH = 'agent/issue-1-add-returns-the-wrong-sum';
const FIXED = 'function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n';

describe('issue-agent run', () => {
  it('runs scope → plan → code → validate on a checkout and leaves the branch and the report', async () => {
    const toolErrors: string[] = [];
    anthropic.setModel(calcModel({ toolErrors }));
    const repo = checkout();
    const taskFile = path.join(tmp.dir, 'task.md');
    writeFileSync(taskFile, `# ${TITLE}\n\n\`npm test\` fails on "adds a negative number".\n`);
    const requestsBefore = anthropic.requests.length;

    const r = await runCli(['run', '--repo', repo, '--issue-file', taskFile], { env: modelEnv() });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);

    // Each stage on its own line, in order, with the spend so far once there is some.
    const lines = r.stdout.split('\n');
    const at = (re: RegExp) => lines.findIndex((l) => re.test(l));
    const order = [
      /^issue-agent run: task #1 "add\(\) returns the wrong sum when one number is negative" on main \([0-9a-f]{12}\) of /,
      /^\[1\/5\] scope$/,
      /^\[2\/5\] plan · spend so far: 1 model call, \$\d+\.\d{4}$/,
      /^ {6}checks before the change: npm test failed$/,
      /^\[3\/5\] code \(round 1\/3\) · spend so far: \d+ model calls, \$\d+\.\d{4}$/,
      /^\[4\/5\] validate \(round 1\/3\) · spend so far: /,
      /^ {6}checks: npm test passed \(before the change: failed\)$/,
      /^\[5\/5\] deliver · spend so far: 8 model calls, /,
      new RegExp(`^done: branch ${BRANCH} \\([0-9a-f]{12}\\) in ${repo}$`),
      /^ {2}report: .*report-agent-issue-1-add-returns-the-wrong-sum\.md$/,
      /^ {2}spend: 8 model calls, [\d,]+ input tokens, [\d,]+ output tokens, \$\d+\.\d{4}, [\d.]+ s$/,
    ].map(at);
    expect(
      order.every((i) => i >= 0),
      r.stdout,
    ).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    // Not a terminal: no escape codes, no spinner.
    expect(r.stdout).not.toMatch(/\x1b|\r/);

    // The branch is in the checkout, with the fix; the checkout itself is as it was.
    expect(`${sh(repo, 'show', `${BRANCH}:add.js`)}\n`).toBe(FIXED);
    expect(sh(repo, 'log', '-1', '--format=%an <%ae>%n%s', BRANCH)).toBe(
      `issue-agent <issue-agent@localhost>\n${TITLE}`,
    );
    expect(sh(repo, 'symbolic-ref', '--short', 'HEAD')).toBe('main');
    expect(sh(repo, 'status', '--porcelain')).toBe('');
    expect(readFileSync(path.join(repo, 'add.js'), 'utf8')).toBe(CALC_REPO['add.js']);
    // The job's work tree is gone; mirror and trace stay under .git.
    expect(readdirSync(path.join(repo, '.git/issue-agent/worktrees'))).toEqual([]);

    const report = readFileSync(
      path.join(repo, '.git/issue-agent/report-agent-issue-1-add-returns-the-wrong-sum.md'),
      'utf8',
    );
    expect(report).toMatch(
      new RegExp(`^# ${TITLE.replace(/[()]/g, '\\$&')}\n\nBranch \`${BRANCH}\` \\([0-9a-f]{12}\\) from \`main\``),
    );
    expect(report).toContain(`### Plan\n${CALC_PLAN.summary}\n\n1. ${CALC_PLAN.steps[0]}`);
    expect(report).toMatch(/\| `npm test` \| ✅ passed \| [\d.]+ s \| failed \|/);
    expect(report).toMatch(/### Change\n```\nadd\.js \| 1 -\n 1 file changed, 1 deletion\(-\)\n```/);
    expect(report).toMatch(/spend: 8 model calls, [\d,]+ input tokens .*\$\d+\.\d{4}/);
    // The task's number is local: pushed to GitHub, the branch must not close issue #1 there.
    expect(report).not.toMatch(/Closes #/);
    expect(sh(repo, 'log', '-1', '--format=%B', BRANCH)).not.toMatch(/Closes #/);

    expect(anthropic.requests.length - requestsBefore).toBe(8);
    expect(anthropic.violations).toEqual([]);
    expect(toolErrors).toEqual([]);
    expect(r.stdout).not.toContain(KEY);

    // The trace command it prints works.
    const traceCommand = /trace: issue-agent trace (\S+)$/m.exec(r.stdout)?.[1];
    expect(traceCommand).toBeDefined();
    const trace = await runCli(['trace', traceCommand!]);
    expect(trace.status).toBe(0);
    expect(trace.stdout).toMatch(
      /── scope start[\s\S]*── plan start[\s\S]*── code start[\s\S]*── validate end \(passed\)/,
    );
    expect(readFileSync(traceCommand!, 'utf8')).not.toContain(KEY);
  });

  it('stops without a branch when stuck: exit 1, the reason printed and reported, the work in progress kept', async () => {
    anthropic.setModel(calcModel({ toolErrors: [], wrongFix: true }));
    const repo = checkout();
    const r = await runCli(['run', '--repo', repo, '--task', `${TITLE}\n\`npm test\` fails.`], { env: modelEnv() });
    expect(r.status).toBe(1);
    const reason = /^stuck \(([a-z-]+)\): (.+)$/m.exec(r.stdout);
    expect(reason, r.stdout).not.toBeNull();
    expect(['no-progress', 'same-failure', 'rounds-exhausted']).toContain(reason![1]);
    expect(r.stdout).toMatch(/^ {2}failing command: npm test$/m);
    expect(r.stdout).toMatch(/^ {2}work in progress: branch agent\/wip\/issue-1-attempt-1 \([0-9a-f]{12}\) in /m);

    expect(sh(repo, 'for-each-ref', '--format=%(refname:short)', 'refs/heads/agent/')).toBe(
      'agent/wip/issue-1-attempt-1',
    );
    expect(sh(repo, 'symbolic-ref', '--short', 'HEAD')).toBe('main');
    const reportPath = /^ {2}report: (.+)$/m.exec(r.stdout)?.[1];
    const report = readFileSync(reportPath!, 'utf8');
    expect(report).toContain(`No branch: the job stopped (${reason![1]}).`);
    expect(report).toContain('### Where it stuck');
    expect(report).toContain(reason![2]);

    // The next task gets the next number: the stuck attempt's branch is not reused.
    anthropic.setModel(calcModel({ toolErrors: [] }));
    const again = await runCli(['run', '--repo', repo, '--task', TITLE], { env: modelEnv() });
    expect(again.status).toBe(0);
    expect(again.stdout).toMatch(/^done: branch agent\/issue-2-add-returns-the-wrong-sum /m);
  });

  it('runs the commands on the image that environment: names, after its setup', async () => {
    const registry = await startTestRegistry();
    try {
      // The host's node and shell on a root filesystem of their own, and nothing else.
      registry.push('cli/node', '1', { ...hostProgramFiles(['sh', 'node']), 'etc/image-name': 'cli/node\n' });
      const image = `${registry.host}/cli/node:1`;
      anthropic.setModel(calcModel({ toolErrors: [] }));
      const repo = checkout({
        // The image has node and no npm: the test command is named.
        '.github/agent.yml': `environment:\n  image: ${image}\n  setup: node -e "require('fs').writeFileSync('/etc/agent-setup', 'yes')"\ncommands:\n  test: node --test\n`,
        // Passes only on that image, set up: on the host it would fail before and after the change.
        'test/env.test.js':
          "const test = require('node:test');\nconst assert = require('node:assert');\nconst fs = require('node:fs');\n" +
          "test('runs on the set-up image', () => assert.strictEqual(fs.readFileSync('/etc/agent-setup', 'utf8'), 'yes'));\n",
      });
      const r = await runCli(['run', '--repo', repo, '--task', `${TITLE}\n\`npm test\` fails.`], {
        env: { ...modelEnv(), REGISTRY_INSECURE_HOSTS: registry.host },
      });
      expect(r.stderr).toBe('');
      expect(r.status, r.stdout).toBe(0);
      expect(r.stdout).toContain(`environment: pulling ${image}…`);
      expect(r.stdout).toContain(`environment: setting up ${image}…`);
      expect(r.stdout).toContain(`environment: ${image} ready`);
      expect(r.stdout).toMatch(/^done: branch agent\/issue-1-add-returns-the-wrong-sum /m);
      expect(existsSync('/etc/agent-setup')).toBe(false);
    } finally {
      await registry.stop();
    }
  });

  it('refuses to start without a model key or with an invalid config: exit 2, nothing spent', async () => {
    const repo = checkout({ '.github/agent.yml': 'max_rounds: 12\nbudgets:\n  max_cost: 3\n' });
    const before = anthropic.attempts;

    const noKey = await runCli(['run', '--repo', repo, '--task', TITLE], {
      env: { ANTHROPIC_BASE_URL: anthropic.url },
    });
    expect(noKey.status).toBe(2);
    expect(noKey.stderr).toMatch(/^issue-agent run: ANTHROPIC_API_KEY is not set/);

    const invalid = await runCli(['run', '--repo', repo, '--task', TITLE], { env: modelEnv() });
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toContain('.github/agent.yml on main is invalid, so nothing ran');
    expect(invalid.stderr).toMatch(/^ {2}line 1, field max_rounds: 12 is above the maximum of 10 — expected: /m);
    expect(invalid.stderr).toMatch(
      /^ {2}line 3, field budgets\.max_cost: unknown key "max_cost" in budgets \(did you mean max_cost_usd\?\)/m,
    );

    const both = await runCli(['run', '--repo', repo, '--task', TITLE, '--issue-file', 'x.md'], { env: modelEnv() });
    expect(both.status).toBe(2);
    expect(both.stderr).toContain("option '--task <text>' cannot be used with option '--issue-file <file>'");

    const notACheckout = await runCli(['run', '--repo', tmp.dir, '--task', TITLE], { env: modelEnv() });
    expect(notACheckout.status).toBe(2);
    expect(notACheckout.stderr).toContain('not a git checkout');

    expect(anthropic.attempts).toBe(before);
    expect(existsSync(path.join(repo, '.git/issue-agent'))).toBe(false);
  });
});
