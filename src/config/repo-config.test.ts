import { describe, expect, it } from 'vitest';
import { parseRepoConfig, RepoConfigError } from './repo-config.js';

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
});
