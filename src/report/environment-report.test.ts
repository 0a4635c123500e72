import { describe, expect, it } from 'vitest';
import { toEscalation } from '../job/endings.js';
import { EnvironmentError } from '../sandbox/environment/image-store.js';
import type { CheckResult } from '../stages/validate.js';
import { escalationComment } from './escalation.js';
import { prBody } from './pr-body.js';

// A repository's setup command, its devcontainer, and a registry's answers are text from
// outside: in the PR body and the escalation they stay inert.

const HOSTILE = 'echo ok` <b>bold</b> [link](http://evil.example) `\n# Heading\n<details open>| x';

const result = (command: string, ok = true): CheckResult => ({
  name: 'setup',
  command,
  ok,
  exitCode: ok ? 0 : 4,
  timedOut: false,
  durationMs: 1200,
  tail: '',
  output: '',
});

const plan = {
  summary: 's',
  files_to_change: ['a.py'],
  files_to_read: [],
  steps: ['x'],
  verification: 'v',
  estimated_changed_lines: 1,
  confidence: 0.9,
};

/** Markup that opened outside a code span: backslash escapes and code spans taken out first. */
const openMarkup = (line: string) =>
  line
    .replace(/\\./g, '')
    .replace(/(`+)(?:(?!\1)[\s\S])*?\1/g, '')
    .match(/<[a-z]|\[[^\]]*\]\(|^#/gim);

describe('environment text in the PR body and the escalation', () => {
  it('puts a hostile setup or install command into one inert table cell', () => {
    const body = prBody({
      summary: 'fix',
      plan,
      install: { ...result(HOSTILE), name: 'install' },
      environment: {
        image: 'ghcr.io/o/img:1',
        pinned: `ghcr.io/o/img@sha256:${'a'.repeat(64)}`,
        from: '.github/agent.yml',
        setup: [result(HOSTILE)],
        reused: false,
        ignored: [],
      },
      final: { ok: true, results: [{ ...result('python3 -m pytest -q'), name: 'test' }] },
      diffStat: '',
      spend: '$0',
      rounds: 1,
    });
    const rows = body.split('\n').filter((l) => l.startsWith('| '));
    const hostileRows = rows.filter((l) => l.includes('echo ok'));
    expect(hostileRows).toHaveLength(2);
    for (const row of hostileRows) {
      expect(openMarkup(row)).toBeNull();
      // Four cells: the command stays in one, whatever pipes it holds.
      expect(row.replace(/\\\|/g, '').split('|').length - 2).toBe(4);
    }
    expect(body).not.toMatch(/^# Heading/m);
    expect(body).toContain(
      `\`ghcr.io/o/img:1\` from \`.github/agent.yml\`, run as \`ghcr.io/o/img@sha256:${'a'.repeat(64)}\``,
    );
  });

  it('shows a failed setup command and a registry answer as text, not markup', () => {
    const setup = toEscalation(
      new EnvironmentError('setup-failed', 'python:3.12', '(from .github/agent.yml) failed with exit code 4', {
        command: HOSTILE,
        tail: 'E: broken',
      }),
    )!;
    const registry = toEscalation(
      new EnvironmentError(
        'not-found',
        'python:3.12',
        'the registry has no such image or tag (<img src=x> [a](http://b))',
      ),
    )!;
    for (const esc of [setup, registry]) {
      const body = escalationComment({
        asked: ['x'],
        tried: [],
        reason: esc.stuck.reason,
        evidence: esc.stuck.evidence,
        failingCommand: esc.failure?.command,
        filesTouched: [],
        spend: { modelCalls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, seconds: 1 },
      });
      const stuck = body.split('\n').find((l) => l.startsWith(`${esc.stuck.reason}: `))!;
      expect(openMarkup(stuck)).toBeNull();
      expect(body).not.toMatch(/^# Heading/m);
      const failing = body.split('\n').find((l) => l.startsWith('**Failing command:**'));
      if (failing) expect(openMarkup(failing)).toBeNull();
    }
    expect(setup.stuck.evidence).toContain('`python:3.12`: its setup command ``echo ok` <b>bold</b>');
    expect(setup.stuck.evidence).toContain('(from .github/agent.yml) failed with exit code 4');
    expect(registry.stuck.evidence).toBe(
      '`python:3.12`: the registry has no such image or tag (\\<img src=x\\> \\[a\\](http://b))',
    );
  });
});
