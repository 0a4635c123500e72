import { describe, expect, it } from 'vitest';
import {
  inlineCode,
  isTerminal,
  plain,
  STATUS_MARKER,
  statusComment,
  type StatusPhase,
  type StatusState,
} from './status.js';

const checklistOf = (body: string) => body.split('\n').filter((l) => /^- \[[ x]\] /.test(l));
const ticked = (body: string) =>
  checklistOf(body)
    .filter((l) => l.startsWith('- [x]'))
    .map((l) => l.replace(/^- \[x\] /, '').split(' ')[0] ?? '');
const currentLine = (body: string) => checklistOf(body).find((l) => /← now|here$/.test(l));
/** The rows of the first table, split the way GFM splits them: on pipes not escaped by a backslash. */
const tableRows = (body: string) =>
  body
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, -1)
        .match(/(?:\\.|[^|\\])+/g)!
        .map((c) => c.trim()),
    );

describe('statusComment', () => {
  it('starts with the marker and a headline', () => {
    const body = statusComment({ phase: 'queued' });
    expect(body.split('\n')[0]).toBe(STATUS_MARKER);
    expect(body.split('\n')[1]).toBe('**issue-agent** 👀 queued: a worker will pick this up shortly');
    expect(ticked(body)).toEqual([]);
  });

  it.each<[StatusPhase, string[], string | undefined]>([
    ['scoping', [], 'scope'],
    ['planning', ['scope'], 'plan'],
    ['coding', ['scope', 'plan'], 'code'],
    ['validating', ['scope', 'plan', 'code'], 'validate'],
    ['delivering', ['scope', 'plan', 'code', 'validate'], 'deliver'],
    ['done', ['scope', 'plan', 'code', 'validate', 'deliver'], undefined],
  ])('ticks the finished stages and marks the current one: %s', (phase, done, now) => {
    const body = statusComment({ phase });
    expect(checklistOf(body)).toHaveLength(5);
    expect(ticked(body).map((l) => l.replace(/\*/g, ''))).toEqual(done);
    expect(currentLine(body)).toBe(now ? `- [ ] **${now}** ← now` : undefined);
  });

  it('shows the validation round on the checklist and in the headline', () => {
    const body = statusComment({ phase: 'validating', round: { n: 2, of: 3 } });
    expect(body).toContain('⏳ working on it: validating (round 2/3)…');
    expect(currentLine(body)).toBe('- [ ] **validate** (round 2/3) ← now');
    const coding = statusComment({ phase: 'coding', round: { n: 2, of: 3 } });
    expect(coding).toContain('working on it: coding (round 2/3)…');
    expect(checklistOf(coding)).toContain('- [ ] validate (round 2/3)');
  });

  it('links the pull request when done and keeps the words the issue thread is searched for', () => {
    const body = statusComment({
      phase: 'done',
      pullUrl: 'https://github.com/o/r/pull/12',
      spend: '3 model calls, $0.0100',
    });
    expect(body).toContain('✅ done: pull request https://github.com/o/r/pull/12');
    expect(body).toContain('<sub>spend: 3 model calls, $0.0100</sub>');
  });

  it('renders the plan summary and the checks with their baseline', () => {
    const body = statusComment({
      phase: 'validating',
      round: { n: 1, of: 3 },
      planSummary: 'Remove the negative-number branch in add()',
      checks: [
        { command: 'npm test', before: false, after: true },
        { command: 'npm run lint', before: true, after: false },
        { command: 'npm run typecheck', before: true },
      ],
    });
    expect(body).toContain('**Plan:** Remove the negative-number branch in add()');
    expect(body).toContain('**Checks** (round 1/3)');
    expect(tableRows(body)).toEqual([
      ['check', 'before', 'after'],
      ['---', ':-:', ':-:'],
      ['`npm test`', '❌', '✅'],
      ['`npm run lint`', '✅', '❌'],
      ['`npm run typecheck`', '✅', '–'],
    ]);
  });

  it('leaves out the baseline column when no baseline is known', () => {
    const rows = tableRows(statusComment({ phase: 'validating', checks: [{ command: 'npm test', after: false }] }));
    expect(rows).toEqual([
      ['check', 'result'],
      ['---', ':-:'],
      ['`npm test`', '❌'],
    ]);
  });

  it('says who stopped the job and where', () => {
    const body = statusComment({ phase: 'stopped', stoppedBy: 'octocat', stoppedAt: 'coding' });
    expect(body).toContain('⏹️ stopped by octocat with `/agent stop`');
    expect(ticked(body)).toEqual(['scope', 'plan']);
    expect(currentLine(body)).toBe('- [ ] **code** ⏹ stopped here');
    expect(body).toContain('`/agent retry`');
    expect(isTerminal('stopped')).toBe(true);
    expect(isTerminal('validating')).toBe(false);
  });

  it('says why it is stuck, where, and links a separate escalation', () => {
    const body = statusComment({
      phase: 'stuck',
      stoppedAt: 'validating',
      reason: 'no-progress',
      failingCommand: 'npm test',
      failureExcerpt: 'FAIL add.test.js',
      escalationUrl: 'https://github.com/o/r/issues/3#issuecomment-9',
    });
    expect(body).toContain('⚠️ stopped without a pull request: no-progress');
    expect(currentLine(body)).toBe('- [ ] **validate** ✗ stuck here');
    expect(body).toContain('**Failing command:** `npm test`');
    expect(body).toContain('```\nFAIL add.test.js\n```');
    expect(body).toContain('https://github.com/o/r/issues/3#issuecomment-9');
  });

  it('marks no stage when it is not known where a stuck job stopped', () => {
    const body = statusComment({ phase: 'stuck', reason: 'an internal error stopped the job' });
    expect(currentLine(body)).toBeUndefined();
    expect(body).toContain('stopped without a pull request: an internal error stopped the job');
  });

  it('waits for answers without claiming to be the questions comment', () => {
    const body = statusComment({
      phase: 'needs-info',
      escalationUrl: 'https://github.com/o/r/issues/3#issuecomment-10',
    });
    expect(body).toContain('❓ waiting for answers');
    expect(body).not.toContain('needs more information');
    expect(currentLine(body)).toBe('- [ ] **scope** ❓ waiting here');
    expect(body).toContain('https://github.com/o/r/issues/3#issuecomment-10');
  });

  it('addresses reviews on a revise job: code, validate, push', () => {
    const working = statusComment({
      phase: 'validating',
      kind: 'revise',
      reviewCount: 2,
      pullUrl: 'https://github.com/o/r/pull/12',
      round: { n: 1, of: 2 },
    });
    expect(working.split('\n')[1]).toBe(
      '**issue-agent** ⏳ addressing 2 reviews on https://github.com/o/r/pull/12: validating (round 1/2)…',
    );
    expect(checklistOf(working)).toEqual(['- [x] code', '- [ ] **validate** (round 1/2) ← now', '- [ ] push']);
    const one = statusComment({ phase: 'coding', kind: 'revise', reviewCount: 1 });
    expect(one).toContain('addressing 1 review: coding…');
    const done = statusComment({
      phase: 'done',
      kind: 'revise',
      reviewCount: 3,
      pullUrl: 'https://github.com/o/r/pull/12',
    });
    expect(done).toContain('✅ done: addressed 3 reviews, pushed to https://github.com/o/r/pull/12');
    expect(checklistOf(done)).toEqual(['- [x] code', '- [x] validate', '- [x] push']);
    const stuck = statusComment({ phase: 'stuck', kind: 'revise', stoppedAt: 'coding', reason: 'budget-turns' });
    expect(stuck).toContain('stopped without pushing: budget-turns');
    expect(stuck).not.toContain('No pull request was opened');
  });

  it('stays short', () => {
    const s: StatusState = {
      phase: 'validating',
      round: { n: 3, of: 3 },
      planSummary: 'x'.repeat(5000),
      checks: Array.from({ length: 30 }, (_, i) => ({
        command: `npm run check-${i} ${'y'.repeat(300)}`,
        before: true,
        after: false,
      })),
      spend: '12 model calls, $0.1234',
    };
    const body = statusComment(s);
    expect(body.length).toBeLessThan(2500);
    expect(body).toContain('and 22 more');
    expect(body).toContain('…');
  });

  describe('input that would break the markdown stays contained', () => {
    const hostile =
      'a `tick` and ``` fence </details> <!-- hidden --> [link](http://x) ![img](http://y) *bold* _em_ ~~gone~~ | pipe & &lt; \\| done\n\n# heading\n- item';

    it('keeps a hostile plan summary and reason on one inert line', () => {
      const body = statusComment({ phase: 'stuck', stoppedAt: 'planning', planSummary: hostile, reason: hostile });
      const plan = body.split('\n').find((l) => l.startsWith('**Plan:**'))!;
      // One line: no heading, list or blank line can start from the text.
      expect(body).not.toMatch(/^# heading/m);
      expect(body).not.toMatch(/^- item/m);
      // No raw HTML, link, image, emphasis or code span can open inside it.
      // Once backslash escapes are taken out, no character that opens markup is left.
      expect(plan.slice('**Plan:** '.length).replace(/\\./g, '')).not.toMatch(/[<>[\]*_~`|&\\]/);
      expect(plan).toContain('\\</details\\>');
      expect(plan).toContain('\\`tick\\`');
      // The only HTML comment is the marker; nothing can hide the rest of the comment.
      expect(body.match(/(?<!\\)<!--/g)).toHaveLength(1);
      expect(body.split('\n')[1]).toMatch(/^\*\*issue-agent\*\* ⚠️ stopped without a pull request: a \\`tick\\`/);
    });

    it('puts a command with backticks and pipes into one table cell', () => {
      const body = statusComment({
        phase: 'validating',
        checks: [{ command: 'echo "``" | tee out ` </details>', before: true, after: false }],
      });
      const rows = tableRows(body);
      expect(rows[2]).toHaveLength(3);
      expect(rows[2]).toEqual(['```echo "``" \\| tee out ` </details>```', '✅', '❌']);
    });

    it('keeps a backslash before a pipe from unescaping it', () => {
      const rows = tableRows(statusComment({ phase: 'validating', checks: [{ command: 'grep a\\|b', after: true }] }));
      expect(rows[2]).toHaveLength(2);
    });

    it('fences a failure excerpt that holds backticks', () => {
      const body = statusComment({ phase: 'stuck', failureExcerpt: 'before\n````\n</details>\nafter' });
      expect(body).toContain('`````\nbefore\n````\n</details>\nafter\n`````');
    });

    it('redacts a secret before escaping could hide it from the sanitiser', () => {
      const token = `ghp_${'A'.repeat(36)}`;
      const body = statusComment({ phase: 'stuck', reason: `push failed with ${token}` });
      expect(body).not.toContain('A'.repeat(36));
      expect(body).toContain('\\[REDACTED\\]');
    });
  });
});

describe('inlineCode', () => {
  it('chooses a backtick run longer than any in the text', () => {
    expect(inlineCode('npm test')).toBe('`npm test`');
    expect(inlineCode('a ` b')).toBe('``a ` b``');
    expect(inlineCode('x ``` y')).toBe('````x ``` y````');
  });

  it('pads text that starts or ends with a backtick', () => {
    expect(inlineCode('`x`')).toBe('`` `x` ``');
  });

  it('keeps to one line and a bounded length', () => {
    expect(inlineCode('a\n\nb')).toBe('`a b`');
    expect([...inlineCode('z'.repeat(500), 20)].length).toBe(22);
  });
});

describe('plain', () => {
  it('escapes what could start markup and drops invisible characters', () => {
    expect(plain('<b>*x*</b>')).toBe('\\<b\\>\\*x\\*\\</b\\>');
    expect(plain('a\u202eb\u200bc')).toBe('abc');
  });
});

describe("a pull request's CI comment", () => {
  const sha = 'abcdef1234567890abcdef1234567890abcdef12';
  it('says what failed and what the app does, attempt by attempt', () => {
    const body = statusComment({
      phase: 'coding',
      kind: 'ci-fix',
      round: { n: 1, of: 3 },
      ci: { sha, failing: ['lint (ubuntu)'], action: 'fixing', attempt: { n: 1, of: 3 } },
    });
    expect(body).toContain('CI: 1 failing check on `abcdef1` — fixing (attempt 1 of 3)');
    expect(body).toContain('**Failing:** `lint (ubuntu)`');
    expect(body).toContain('- [ ] **code**');
  });

  it('ends with all checks passed, and the rounds it took', () => {
    const body = statusComment({
      phase: 'done',
      kind: 'ci-fix',
      ci: { sha, failing: [], green: { passed: 4, fixes: 1, rounds: 2 } },
    });
    expect(body).toContain('✅ all checks passed on `abcdef1`: 4 checks (after 2 CI-fix rounds)');
    expect(body).not.toContain('Failing');
    expect(body).not.toContain('- [');
  });

  it('shows a check name as inert code, whatever it holds', () => {
    const body = statusComment({
      phase: 'done',
      kind: 'ci-fix',
      ci: { sha, failing: ['x` <img src=//e.vil> [y](//e.vil)'], rerun: ['x` <img src=//e.vil>'] },
    });
    const spans = ['``x` <img src=//e.vil> [y](//e.vil)``', '``x` <img src=//e.vil>``'];
    for (const span of spans) expect(body).toContain(span);
    // Outside those code spans nothing of the name is left to render.
    expect(spans.reduce((b, span) => b.split(span).join(''), body)).not.toContain('<img');
  });
});
