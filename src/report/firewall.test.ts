import { describe, expect, it } from 'vitest';
import { escalationComment } from './escalation.js';
import { firewallSection } from './firewall.js';

describe('the firewall report', () => {
  it('names each refused destination with its reason and count, as code, bounded', () => {
    expect(firewallSection(undefined)).toEqual([]);
    expect(firewallSection({ allowed: 4, refused: [] })).toEqual([]);
    const lines = firewallSection({
      allowed: 4,
      refused: [
        { destination: 'example.org:443', reason: 'not an allowed registry', count: 3 },
        { destination: 'a`b](http://x)@team:443', reason: 'not an allowed registry', count: 1 },
      ],
    });
    expect(lines).toEqual([
      '### Firewall',
      'The install step was refused 4 connections (4 to allowed registries went through):',
      '',
      '- install tried `example.org:443` — not an allowed registry (3 times)',
      "- install tried `a'b](http://x)@team:443` — not an allowed registry",
      '',
    ]);
    const many = firewallSection({
      allowed: 0,
      refused: Array.from({ length: 25 }, (_, i) => ({
        destination: `h${i}.example:443`,
        reason: 'not an allowed registry',
        count: 1,
      })),
    });
    expect(many.filter((l) => l.startsWith('- install tried'))).toHaveLength(20);
    expect(many.at(-2)).toBe("- and 5 more destinations (in the job's trace)");
  });

  it('goes into the escalation, with what to ask the operator when the install failed', () => {
    const body = escalationComment({
      asked: ['x'],
      tried: [],
      reason: 'install-failed',
      evidence: 'the install command failed before any change',
      filesTouched: [],
      firewall: {
        allowed: 0,
        refused: [{ destination: 'evil.example:443', reason: 'not an allowed registry', count: 1 }],
      },
      spend: { modelCalls: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, seconds: 1 },
    });
    expect(body).toContain(
      '### Firewall\nThe install step was refused 1 connection (0 to allowed registries went through):\n\n- install tried `evil.example:443` — not an allowed registry\n\n### Files touched',
    );
    expect(body).toContain("ask the app's operator to allow it (SANDBOX_EGRESS_ALLOW_EXTRA)");
  });
});
