import { describe, expect, it } from 'vitest';
import { parseRepoConfig, RepoConfigError } from '../config/repo-config.js';
import { decideEvent, type Decision, type Known } from './decide-event.js';
import type { InboxItem, WebEvent } from './inbox-item.js';

const where = {
  installationId: 1,
  owner: 'acme',
  repo: 'widgets',
  issueNumber: 7,
  deliveryId: 'd-1',
  sender: 'alice',
  defaultBranch: 'main',
  htmlUrl: 'https://github.com/acme/widgets',
  at: 0,
};
const snapshot = { digest: 'a'.repeat(64), updatedAt: '2026-01-01T00:00:00Z' };
const label = (name: string, extra: Partial<WebEvent> = {}): InboxItem =>
  ({ op: 'label', ...where, label: name, snapshot, ...extra }) as InboxItem;
const command = (c: Extract<WebEvent, { op: 'command' }>['command'], pullAuthor: string | null = null): InboxItem => ({
  op: 'command',
  ...where,
  commentId: 11,
  command: c,
  pullAuthor,
  working: true,
});
const review = (
  state: 'changes_requested' | 'commented',
  hasBody: boolean,
  pullAuthor = 'issue-agent[bot]',
): InboxItem => ({
  op: 'review',
  ...where,
  reviewId: 21,
  state,
  hasBody,
  pullAuthor,
});

const app = { slug: 'issue-agent', login: 'issue-agent[bot]' };
const config = parseRepoConfig('trigger_label: fix-me\n');
const defaultConfig = parseRepoConfig(undefined);
const broken = (() => {
  try {
    parseRepoConfig('trigger_label: [not, a, label]\n');
  } catch (err) {
    if (err instanceof RepoConfigError) return err;
  }
  throw new Error('the broken config parsed');
})();
/** Everything the decision may ask for, for a writer on a repository with the default config. */
const all: Known = { app, permission: 'write', config: defaultConfig, lineComments: 0 };
const explain: Decision = {
  do: 'explain-config',
  error: broken,
  ref: 'main',
  fileUrl: 'https://github.com/acme/widgets/blob/main/.github/agent.yml',
};

const cases: Array<[string, InboxItem, Known, Decision]> = [
  // What is read, and in which order.
  ['asks who the app is first', label('agent'), {}, { do: 'read', fact: 'app' }],
  ['then the sender’s permission', label('agent'), { app }, { do: 'read', fact: 'permission' }],
  ['then the config, for a label', label('agent'), { app, permission: 'admin' }, { do: 'read', fact: 'config' }],
  [
    'then the line comments of a bodiless comment review',
    review('commented', false),
    { app, permission: 'write' },
    { do: 'read', fact: 'lineComments' },
  ],
  [
    'then the config, for a review that asks for changes',
    review('changes_requested', false),
    { app, permission: 'write' },
    { do: 'read', fact: 'config' },
  ],
  // Who may ask.
  [
    'skips an account named like the app',
    { ...(label('agent') as WebEvent), sender: 'Issue-Agent' },
    { app },
    { do: 'skip', level: 'debug', message: 'skipped: the app itself' },
  ],
  [
    'skips a command on a pull request someone else opened, before reading anything else',
    command({ kind: 'stop' }, 'bob'),
    { app },
    { do: 'skip', level: 'info', message: 'skipped: a command on a pull request the app did not open' },
  ],
  [
    'skips a review of a pull request someone else opened',
    review('changes_requested', true, 'bob'),
    { app },
    { do: 'skip', level: 'info', message: 'skipped: a review on a pull request the app did not open' },
  ],
  [
    'skips a sender without write access',
    label('agent'),
    { ...all, permission: 'triage' },
    {
      do: 'skip',
      level: 'info',
      message: 'skipped',
      reason: 'alice has triage permission; write, maintain or admin is needed',
    },
  ],
  // Labels.
  ['triggers on the default label with the snapshot', label('Agent'), all, { do: 'trigger', snapshot }],
  [
    'skips a label that is not the repository’s trigger label',
    label('agent'),
    { ...all, config },
    { do: 'skip', level: 'debug', message: 'skipped', reason: 'label "agent" is not the trigger label "fix-me"' },
  ],
  [
    'triggers on the repository’s own label',
    label('fix-me', { snapshot: undefined }),
    { ...all, config },
    { do: 'trigger' },
  ],
  ['explains an invalid config for the default label', label('agent'), { ...all, config: broken }, explain],
  [
    'says nothing of an invalid config for another label',
    label('fix-me'),
    { ...all, config: broken },
    { do: 'skip', level: 'silent' },
  ],
  // Reviews.
  ['revises on changes requested', review('changes_requested', false), all, { do: 'revise', reviewId: 21 }],
  ['revises on a comment review with a body', review('commented', true), all, { do: 'revise', reviewId: 21 }],
  [
    'revises on a bodiless comment review with line comments',
    review('commented', false),
    { ...all, lineComments: 2 },
    { do: 'revise', reviewId: 21 },
  ],
  [
    'skips a bodiless comment review without line comments',
    review('commented', false),
    all,
    { do: 'skip', level: 'debug', message: 'skipped: an empty review' },
  ],
  ['explains an invalid config for a review', review('changes_requested', true), { ...all, config: broken }, explain],
  // Commands.
  [
    'answers help without reading the config',
    command({ kind: 'help' }),
    { app, permission: 'write' },
    { do: 'answer', commentId: 11 },
  ],
  [
    'answers an unknown word with it',
    command({ kind: 'unknown', word: 'frobnicate' }),
    { app, permission: 'write' },
    { do: 'answer', commentId: 11, word: 'frobnicate' },
  ],
  [
    'stops an issue job',
    command({ kind: 'stop' }),
    { app, permission: 'write' },
    { do: 'stop', kind: 'issue', commentId: 11, working: true },
  ],
  [
    'stops a revision on the app’s pull request',
    command({ kind: 'stop' }, 'issue-agent[bot]'),
    { app, permission: 'maintain' },
    { do: 'stop', kind: 'revise', commentId: 11, working: true },
  ],
  [
    'reads the config before a retry',
    command({ kind: 'retry' }),
    { app, permission: 'write' },
    { do: 'read', fact: 'config' },
  ],
  [
    'retries an issue with the instructions',
    command({ kind: 'retry', text: 'use the new API' }),
    all,
    { do: 'trigger', commentId: 11, instructions: 'use the new API' },
  ],
  [
    'revises the app’s pull request on a retry',
    command({ kind: 'retry', text: 'smaller diff' }, 'ISSUE-AGENT[bot]'),
    all,
    { do: 'revise', commentId: 11, text: 'smaller diff' },
  ],
  ['explains an invalid config on a retry', command({ kind: 'retry' }), { ...all, config: broken }, explain],
  // Actions an earlier version recorded: carried out as they say, without reads.
  [
    'carries out a recorded trigger',
    { op: 'trigger', ...where, commentId: 5, instructions: 'again' },
    {},
    { do: 'trigger', commentId: 5, instructions: 'again' },
  ],
  [
    'carries out a recorded revision',
    { op: 'revise', ...where, feedback: { sender: 'alice', reviewId: 9, text: 'tidy' } },
    {},
    { do: 'revise', reviewId: 9, text: 'tidy' },
  ],
  [
    'carries out a recorded stop',
    { op: 'stop', ...where, kind: 'revise', commentId: 5, working: false },
    {},
    { do: 'stop', kind: 'revise', commentId: 5, working: false },
  ],
];

describe('decideEvent', () => {
  it.each(cases)('%s', (_, event, known, expected) => {
    expect(decideEvent(event, known)).toEqual(expected);
  });

  it('reads nothing twice: every fact it asks for is one it did not have', () => {
    for (const [, event] of cases) {
      let known: Known = {};
      const asked: string[] = [];
      for (let d = decideEvent(event, known); d.do === 'read'; d = decideEvent(event, known)) {
        expect(asked).not.toContain(d.fact);
        asked.push(d.fact);
        known = { ...known, [d.fact]: all[d.fact] };
      }
    }
  });
});

describe('a CI result', () => {
  const sha = 'a'.repeat(40);
  const ci: InboxItem = {
    op: 'ci',
    ...where,
    sender: 'github-actions[bot]',
    event: 'check_suite',
    branch: 'agent/issue-7-fix-add',
    sha,
  };
  const pull = {
    number: 9,
    htmlUrl: 'https://github.com/acme/widgets/pull/9',
    title: 'Fix add',
    author: 'issue-agent[bot]',
    state: 'open',
    headRef: 'agent/issue-7-fix-add',
    headSha: sha,
    baseRef: 'main',
    sameRepo: true,
    draft: false,
    nodeId: 'PR_1',
  };
  const known = (k: Partial<Known>): Known => ({ app, config: defaultConfig, pull, ...k });

  it('reads the pull request, then the config, then the checks, one at a time', () => {
    expect(decideEvent(ci, { app })).toEqual({ do: 'read', fact: 'pull' });
    expect(decideEvent(ci, { app, pull })).toEqual({ do: 'read', fact: 'config' });
    expect(decideEvent(ci, known({}))).toEqual({ do: 'read', fact: 'ci' });
  });

  it("is dropped for a pull request that is not the app's, from a fork, or not at the head", () => {
    expect(decideEvent(ci, known({ pull: null }))).toMatchObject({ do: 'skip' });
    expect(decideEvent(ci, known({ pull: { ...pull, author: 'mallory' } }))).toMatchObject({
      do: 'skip',
      message: 'skipped: CI on a pull request the app did not open',
    });
    expect(decideEvent(ci, known({ pull: { ...pull, sameRepo: false } }))).toMatchObject({ do: 'skip' });
    expect(decideEvent(ci, known({ pull: { ...pull, headSha: 'b'.repeat(40) } }))).toMatchObject({
      do: 'skip',
      message: 'skipped: CI on a commit that is no longer the head',
    });
  });

  it('asks no permission of its sender, a bot or the app itself', () => {
    const own = { ...ci, sender: 'issue-agent[bot]' } as InboxItem;
    expect(decideEvent(own, known({ ci: { pending: [], failed: ['lint'], passed: 1 } }))).toMatchObject({
      do: 'ci-fix',
      failed: ['lint'],
    });
  });

  it('waits while any check runs, fixes when one failed, says green when all passed', () => {
    expect(decideEvent(ci, known({ ci: { pending: ['test'], failed: ['lint'], passed: 0 } }))).toMatchObject({
      do: 'skip',
      level: 'debug',
    });
    expect(decideEvent(ci, known({ ci: { pending: [], failed: ['lint'], passed: 3 } }))).toMatchObject({
      do: 'ci-fix',
    });
    expect(decideEvent(ci, known({ ci: { pending: [], failed: [], passed: 3 } }))).toMatchObject({
      do: 'ci-green',
      passed: 3,
      readyForReview: false,
    });
    expect(decideEvent(ci, known({ ci: { pending: [], failed: [], passed: 0 } }))).toMatchObject({ do: 'skip' });
  });

  it('marks a draft ready only where the repository asks for it', () => {
    const draft = { ...pull, draft: true };
    const asks = parseRepoConfig('pull_request:\n  draft_until_green: true\n');
    const done = { pending: [], failed: [], passed: 2 };
    expect(decideEvent(ci, known({ pull: draft, config: asks, ci: done }))).toMatchObject({ readyForReview: true });
    expect(decideEvent(ci, known({ pull: draft, ci: done }))).toMatchObject({ readyForReview: false });
    expect(decideEvent(ci, known({ config: asks, ci: done }))).toMatchObject({ readyForReview: false });
  });

  it('does nothing while the config is invalid', () => {
    expect(decideEvent(ci, known({ config: broken }))).toMatchObject({ do: 'skip', level: 'info' });
  });
});
