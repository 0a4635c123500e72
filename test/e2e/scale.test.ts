import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { calcModel, CALC_REPO, OWNER, startScenario, type Scenario, leakCheck } from './harness.js';

// Scale-out: one web process and three worker processes on one Redis and one DATA_DIR
// (one mirror, locked across processes) share twenty issues of one repository.

let s: Scenario;
const MARKER = '<!-- issue-agent:status -->';
const ISSUES = Array.from({ length: 20 }, (_, i) => 101 + i);

beforeAll(async () => {
  s = await startScenario({ role: 'web' });
  for (let i = 0; i < 3; i++) s.spawnExtra('worker');
}, 90_000);
afterAll(async () => {
  await s?.stop();
});

describe('many workers on one Redis', () => {
  it('handle 20 issues: each exactly one job and one PR', async () => {
    const repo = 'busy';
    await s.github.addRepo({ owner: OWNER, repo, files: CALC_REPO });
    s.github.setPermission(OWNER, repo, 'maintainer', 'write');
    s.anthropic.setModel(calcModel({ toolErrors: [] }));
    const started = Date.now();
    for (const n of ISSUES) {
      const title = `add() is wrong for negatives, case ${n}`;
      s.github.addIssue(OWNER, repo, { number: n, title, body: 'add(2, -3) should be -1', user: 'maintainer' });
      await s.label({ repo, issueNumber: n, title, body: 'x' });
    }
    // The status comment reaches its final state before the worker logs "job finished"
    // (the work tree is removed in between), so wait for both.
    const finishedLines = () =>
      s
        .logs()
        .split('\n')
        .filter((line) => line.includes('"msg":"job finished"'));
    await s.waitFor(
      '20 finished jobs',
      () => {
        const done = ISSUES.filter((n) =>
          s.github
            .comments(OWNER, repo, n)
            .some(
              (c) =>
                c.user === s.github.botLogin && c.body.startsWith(MARKER) && /✅ done|stopped without/.test(c.body),
            ),
        );
        return (done.length === ISSUES.length && finishedLines().length >= ISSUES.length) || undefined;
      },
      400_000,
    );
    const seconds = (Date.now() - started) / 1000;
    const pulls = s.github.pulls(OWNER, repo);
    expect(pulls).toHaveLength(ISSUES.length);
    for (const n of ISSUES) {
      expect(pulls.filter((p) => p.head.startsWith(`agent/issue-${n}-`))).toHaveLength(1);
      expect(
        s.github.comments(OWNER, repo, n).filter((c) => c.user === s.github.botLogin && c.body.startsWith(MARKER)),
      ).toHaveLength(1);
    }
    // Which worker process ran which job, from the workers' own log lines.
    const byPid = new Map<number, number>();
    for (const line of finishedLines()) {
      const { pid } = JSON.parse(line) as { pid: number };
      byPid.set(pid, (byPid.get(pid) ?? 0) + 1);
    }
    expect([...byPid.values()].reduce((a, b) => a + b, 0)).toBe(ISSUES.length);
    expect(byPid.size).toBeGreaterThanOrEqual(2);
    console.log(
      `scale-out: 3 workers + 1 web, ${ISSUES.length} issues → ${pulls.length} PRs in ${seconds.toFixed(1)} s; jobs per worker ${[...byPid.values()].join(', ')}`,
    );
  });

  it('leaks none of the planted secrets to the model, GitHub, the logs or the traces', () => {
    expect(leakCheck(s, 'scale')).toEqual([]);
  });
});
