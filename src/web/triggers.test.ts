import { describe, expect, it } from 'vitest';
import { checkLabelEvent, checkPermission, isBot } from './triggers.js';

const human = { login: 'maintainer', type: 'User' };

describe('trigger rules', () => {
  it('runs on the trigger label from a person', () => {
    expect(checkLabelEvent({ label: 'agent', sender: human, triggerLabel: 'agent' })).toEqual({ run: true });
    expect(checkLabelEvent({ label: 'Agent', sender: human, triggerLabel: 'agent' })).toEqual({ run: true });
  });

  it('skips other labels and says why', () => {
    expect(checkLabelEvent({ label: 'bug', sender: human, triggerLabel: 'agent' })).toEqual({
      run: false,
      reason: expect.stringContaining('"bug"'),
    });
    expect(checkLabelEvent({ label: undefined, sender: human, triggerLabel: 'agent' }).run).toBe(false);
  });

  it('never runs for bots, [bot] logins or the app itself', () => {
    expect(isBot({ login: 'renovate', type: 'Bot' })).toBe(true);
    expect(isBot({ login: 'some-app[bot]', type: 'User' })).toBe(true);
    expect(isBot({ login: 'issue-agent', type: 'User' }, 'issue-agent')).toBe(true);
    expect(isBot(human, 'issue-agent')).toBe(false);
    expect(
      checkLabelEvent({ label: 'agent', sender: { login: 'x[bot]', type: 'Bot' }, triggerLabel: 'agent' }).run,
    ).toBe(false);
  });

  it('needs write, maintain or admin', () => {
    for (const p of ['admin', 'maintain', 'write'] as const) expect(checkPermission('u', p)).toEqual({ run: true });
    for (const p of ['triage', 'read', 'none'] as const)
      expect(checkPermission('u', p)).toEqual({ run: false, reason: expect.stringContaining(`has ${p}`) });
  });
});

describe('review submissions', () => {
  it('revise on changes requested, or comments with a body or line comments', async () => {
    const { reviewAsksForChanges, hasText } = await import('./triggers.js');
    expect(reviewAsksForChanges('changes_requested', hasText(''), 0)).toBe(true);
    expect(reviewAsksForChanges('commented', hasText('please rename'), 0)).toBe(true);
    expect(reviewAsksForChanges('commented', hasText('  '), 2)).toBe(true);
    expect(reviewAsksForChanges('commented', hasText(null), 0)).toBe(false);
    expect(reviewAsksForChanges('commented', hasText(' \n '), 0)).toBe(false);
    expect(reviewAsksForChanges('approved', hasText('nit: rename'), 3)).toBe(false);
    expect(reviewAsksForChanges('dismissed', hasText('x'), 1)).toBe(false);
  });

  it("treats the app's state labels as never triggering", async () => {
    const { isStateLabel } = await import('./triggers.js');
    expect(isStateLabel('agent:working')).toBe(true);
    expect(isStateLabel('Agent:Stuck')).toBe(true);
    expect(isStateLabel('agent')).toBe(false);
    expect(isStateLabel(undefined)).toBe(false);
  });
});
