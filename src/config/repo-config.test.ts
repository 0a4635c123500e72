import { describe, expect, it } from 'vitest';
import { budgetsOf, checkpointOf, parseRepoConfig, RepoConfigError, stuckLimitsOf } from './repo-config.js';
import { DEFAULT_BUDGETS } from '../agent/budget.js';
import { DEFAULT_STUCK_LIMITS } from '../agent/stuck.js';

function problems(text: string): string[] {
  try {
    parseRepoConfig(text);
  } catch (err) {
    if (err instanceof RepoConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a RepoConfigError');
}

describe('.github/agent.yml', () => {
  it('reads a valid file, and an absent or empty one as defaults', () => {
    expect(parseRepoConfig('commands:\n  test: make check\nmax_rounds: 2\n')).toEqual({ commands: { test: 'make check' }, max_rounds: 2 });
    expect(parseRepoConfig(undefined)).toEqual({});
    expect(parseRepoConfig('# nothing\n')).toEqual({});
  });

  it('names the line of a YAML error', () => {
    expect(problems('commands:\n  test: [unclosed\n')[0]).toMatch(/^line \d+: /);
  });

  it('names the field and the problem of a value that does not fit', () => {
    expect(problems('max_rounds: 50\n')).toEqual([expect.stringMatching(/^max_rounds: .*10/)]);
    expect(problems('commands:\n  tests: npm test\n')).toEqual([expect.stringMatching(/^commands: .*tests/)]);
    expect(problems('comands: {}\n')).toEqual([expect.stringMatching(/comands/)]);
  });

  it('puts budgets, stuck limits and the checkpoint rule over sane defaults', () => {
    expect(budgetsOf({})).toEqual(DEFAULT_BUDGETS);
    expect(stuckLimitsOf({})).toEqual(DEFAULT_STUCK_LIMITS);
    expect(checkpointOf({})).toEqual({ minConfidence: 0.5, maxFiles: 10, maxLines: 400 });
    const c = parseRepoConfig('budgets:\n  max_cost_usd: 2.5\n  max_minutes: 10\nstuck:\n  cycle_repeats: 4\ncheckpoint:\n  min_confidence: 0.7\n');
    expect(budgetsOf(c)).toEqual({ ...DEFAULT_BUDGETS, maxCostUsd: 2.5, maxMinutes: 10 });
    expect(stuckLimitsOf(c)).toEqual({ ...DEFAULT_STUCK_LIMITS, cycleRepeats: 4 });
    expect(checkpointOf(c).minConfidence).toBe(0.7);
    expect(problems('budgets:\n  max_cost_usd: -1\n')).toEqual([expect.stringMatching(/^budgets\.max_cost_usd: /)]);
    expect(problems('stuck:\n  retries: 3\n')).toEqual([expect.stringMatching(/^stuck: .*retries/)]);
    expect(parseRepoConfig('models:\n  mid: claude-opus-5-5\n').models).toEqual({ mid: 'claude-opus-5-5' });
    expect(problems('models:\n  fast: "gpt 4; rm -rf"\n')).toEqual([expect.stringMatching(/^models\.fast: /)]);
  });
});
