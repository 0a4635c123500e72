import { describe, expect, it } from 'vitest';
import { describeTallies, tallyToolCalls } from './stats.js';

describe('tool call tallies', () => {
  it('separates first-try successes, recoveries and failures per tool', () => {
    const t = tallyToolCalls([
      { tool: 'edit_file', ok: false },
      { tool: 'read_file', ok: true },
      { tool: 'edit_file', ok: false },
      { tool: 'edit_file', ok: true },
      { tool: 'edit_file', ok: true },
      { tool: 'search', ok: false },
      { tool: 'read_file', ok: true },
    ]);
    expect(t).toEqual({
      edit_file: { calls: 4, firstTry: 1, recovered: 1, failed: 0, errors: 2 },
      read_file: { calls: 2, firstTry: 2, recovered: 0, failed: 0, errors: 0 },
      search: { calls: 1, firstTry: 0, recovered: 0, failed: 1, errors: 1 },
    });
    expect(describeTallies(t)[0]).toBe('edit_file: 4 calls, 1 right first try, 1 recovered, 0 failed');
  });
});
