import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { isValidBranchName } from './worktree.js';

// The JS check must agree with git's own rules on every name here.
const NAMES = [
  'main',
  'agent/issue-12-add-returns',
  'feature/x.y',
  'v1.2',
  'a-b_c',
  'release/2026-11',
  // '@' is left out: git expands it to the current branch; we refuse it.
  '',
  '-x',
  '/a',
  'a/',
  'a//b',
  'a..b',
  'a.',
  '.a',
  'a/.b',
  'a.lock',
  'a/b.lock/c',
  'a@{b',
  'a b',
  'a~1',
  'a^',
  'a:b',
  'a?',
  'a*',
  'a[b',
  'a\\b',
  'tab\there',
  'del\x7f',
  'ok@name',
  'ünïcode',
];

describe('branch names', () => {
  it('refuses @, which git would expand', () => {
    expect(isValidBranchName('@')).toBe(false);
  });

  it('follows git check-ref-format --branch', () => {
    for (const name of NAMES) {
      const git =
        spawnSync('git', ['check-ref-format', '--branch', name], { encoding: 'utf8', cwd: tmpdir() }).status === 0 &&
        !name.startsWith('-');
      expect({ name, ok: isValidBranchName(name) }).toEqual({ name, ok: git });
    }
  });
});
