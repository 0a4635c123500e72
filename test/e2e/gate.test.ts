import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScriptedModel } from '../stand-ins/anthropic/server.js';
import {
  calcModel,
  CALC_PLAN,
  CALC_REPO,
  CALC_SCOPE,
  OWNER,
  stageOf,
  startScenario,
  use,
  WEBHOOK_SECRET,
  type Scenario,
  leakCheck,
} from './harness.js';

let s: Scenario;

beforeAll(async () => {
  s = await startScenario();
}, 90_000);
afterAll(async () => {
  await s?.stop();
});

function lastUserText(req: Parameters<ScriptedModel>[0]): string {
  return JSON.stringify(req.messages);
}

async function waitForComment(repo: string, issue: number, index: number, text: string) {
  return s.waitFor(`comment containing ${text}`, () => {
    const c = s.github.comments(OWNER, repo, issue)[index];
    return c?.body.includes(text) ? c : undefined;
  });
}

describe('the scope gate and checkpoints', () => {
  it('answers a vague issue with questions and no clone, then proceeds once the author answers', async () => {
    const repo = 'auth';
    await s.github.addRepo({ owner: OWNER, repo, files: CALC_REPO });
    s.github.setPermission(OWNER, repo, 'maintainer', 'admin');
    s.github.addIssue(OWNER, repo, {
      number: 4,
      title: 'Improve the authentication system',
      body: 'It could be better, please make it more robust.',
      user: 'maintainer',
    });
    const seen: string[] = [];
    s.anthropic.setModel((req, ctx) => {
      const { stage } = stageOf(req);
      seen.push(stage);
      if (stage === 'scope') {
        return lastUserText(req).includes('negative numbers')
          ? { content: [use('accept_task', CALC_SCOPE)] }
          : {
              content: [
                use('ask_questions', {
                  questions: [
                    'Which file or module is "the authentication system"?',
                    'What should change, and which test shows it?',
                  ],
                  reason: 'no behaviour or success criterion is named',
                }),
              ],
            };
      }
      return calcModel({ toolErrors: [] })(req, ctx);
    });
    await s.label({ repo, issueNumber: 4, title: 'Improve the authentication system', body: 'x' });
    const questions = await waitForComment(repo, 4, 0, 'needs more information');
    expect(questions.body).toContain('1. Which file or module is "the authentication system"?');
    expect(questions.body).toContain('@maintainer');
    expect(s.github.labels(OWNER, repo, 4)).toEqual(['agent:needs-info']);
    expect(seen).toEqual(['scope']);
    // Nothing was cloned for a task that did not pass the gate.
    const mirrors = path.join(s.dataDir, 'data', 'mirrors');
    expect(
      existsSync(mirrors) ? readdirSync(mirrors, { recursive: true }).some((p) => String(p).includes(repo)) : false,
    ).toBe(false);

    s.github.addComment(OWNER, repo, 4, {
      user: 'maintainer',
      body: 'Sorry: I meant add() in add.js, it subtracts negative numbers; `npm test` shows it.',
    });
    await s.label({ repo, issueNumber: 4, title: 'Improve the authentication system', body: 'x' });
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, repo)[0]);
    expect(pr.body).toContain('### Acceptance criteria');
    expect(s.github.labels(OWNER, repo, 4)).not.toContain('agent:needs-info');
  });

  it('stops after a low-confidence plan, and resumes from that plan when a writer says go', async () => {
    const repo = 'unsure';
    await s.github.addRepo({ owner: OWNER, repo, files: CALC_REPO });
    s.github.setPermission(OWNER, repo, 'maintainer', 'write');
    s.github.addIssue(OWNER, repo, {
      number: 2,
      title: 'add() is wrong for negative numbers',
      body: '`npm test` fails on "adds a negative number"',
      user: 'maintainer',
    });
    const stages: string[] = [];
    s.anthropic.setModel((req, ctx) => {
      const { stage, turn } = stageOf(req);
      stages.push(stage);
      if (stage === 'plan' && turn === 0) return { content: [use('submit_plan', { ...CALC_PLAN, confidence: 0.3 })] };
      return calcModel({ toolErrors: [] })(req, ctx);
    });
    await s.label({ repo, issueNumber: 2, title: 'add() is wrong for negative numbers', body: 'x' });
    const checkpoint = await waitForComment(repo, 2, 0, 'stopped after planning');
    expect(checkpoint.body).toContain('confidence 0.3 is below 0.5');
    expect(checkpoint.body).toContain(CALC_PLAN.summary);
    expect(s.github.pulls(OWNER, repo)).toEqual([]);
    expect(stages).toEqual(['scope', 'plan']);

    stages.length = 0;
    await s.label({ repo, issueNumber: 2, title: 'add() is wrong for negative numbers', body: 'x' });
    const pr = await s.waitFor('the pull request', () => s.github.pulls(OWNER, repo)[0]);
    // Neither scope nor plan ran again: the job went on from the checkpointed plan.
    expect(new Set(stages)).toEqual(new Set(['code']));
    expect(pr.body).toContain(CALC_PLAN.summary);
  });

  it('writes an escalation with every section and none of the secrets a test printed', async () => {
    const repo = 'leaky';
    // The repository's test prints every secret it could get hold of (planted here).
    const token = s.github.issuedTokens[0]!;
    const secrets = {
      apiKey: 'sk-ant-e2e-key-0123456789',
      webhook: WEBHOOK_SECRET,
      key: s.github.privateKey.trim(),
      token,
    };
    const leakyTest = `${CALC_REPO['test/add.test.js']}\nconsole.log(${JSON.stringify(Object.values(secrets).join('\n'))});\ntest('leaks', () => { throw new Error(${JSON.stringify(`token ${token} key ${secrets.apiKey}`)}); });\n`;
    await s.github.addRepo({
      owner: OWNER,
      repo,
      files: {
        ...CALC_REPO,
        'test/add.test.js': leakyTest,
        '.github/agent.yml': 'max_rounds: 2\npush_wip_branch: true\n',
      },
    });
    s.github.setPermission(OWNER, repo, 'maintainer', 'write');
    s.github.addIssue(OWNER, repo, {
      number: 6,
      title: 'add() is wrong for negative numbers',
      body: '`npm test` fails on "adds a negative number"',
      user: 'maintainer',
    });
    s.anthropic.setModel(calcModel({ wrongFix: true, toolErrors: [] }));
    await s.label({ repo, issueNumber: 6, title: 'add() is wrong for negative numbers', body: 'x' });
    const report = await waitForComment(repo, 6, 0, 'stopped without a pull request');
    for (const section of [
      '### What was asked',
      '### What was tried',
      '### Where it stuck',
      '### Files touched',
      '### What to decide',
    ])
      expect(report.body).toContain(section);
    expect(report.body).toContain(`- ${CALC_SCOPE.acceptance_criteria[0]}`);
    expect(report.body).toContain('- plan: Remove the negative-number branch in add()');
    expect(report.body).toMatch(/round 1: edited add\.js; `npm test` failed/);
    expect(report.body).toContain('**Failing command:** `npm test`');
    expect(report.body).toContain('- `add.js`');
    expect(report.body).toMatch(
      /Work in progress: \[`agent\/wip\/issue-6-attempt-1`\]\(http:\/\/127\.0\.0\.1:\d+\/octo-org\/leaky\/tree\/agent\/wip\/issue-6-attempt-1\)/,
    );
    expect(report.body).toMatch(
      /<sub>spend: \d+ model calls, [\d,]+ input and [\d,]+ output tokens, \$\d+\.\d{4}, \d+ s<\/sub>/,
    );
    expect(report.body).toContain('[REDACTED]');
    for (const secret of [secrets.apiKey, secrets.webhook, secrets.token, 'PRIVATE KEY', secrets.key.split('\n')[1]!])
      expect(report.body).not.toContain(secret);
    expect(await s.github.readFile(OWNER, repo, 'agent/wip/issue-6-attempt-1', 'add.js')).toContain('a + b + 1');
    // The job's trace keeps the raw command output, redacted the same way.
    const traceDir = path.join(s.dataDir, 'data', 'traces');
    const trace = readFileSync(
      path.join(traceDir, readdirSync(traceDir).find((f) => f.includes('leaky_issues_6'))!),
      'utf8',
    );
    expect(trace).toContain('[REDACTED]');
    for (const secret of [secrets.apiKey, secrets.webhook, secrets.token, secrets.key.split('\n')[1]!])
      expect(trace).not.toContain(secret);
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'gate')).toEqual([]);
  });
});
