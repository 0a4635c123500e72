import { describe, expect, it } from 'vitest';
import { Progress, shortSpend } from './progress.js';

describe('Progress', () => {
  it('prints a line per stage and round with the spend so far, and new check results; plain text when not a terminal', () => {
    let out = '';
    const p = new Progress({ write: (t) => (out += t), tty: false });
    const spend = '3 model calls, 1,234 input tokens (1,000 cached), 56 output tokens, $0.0123';
    p.status({ phase: 'scoping' });
    p.status({ phase: 'scoping' });
    p.status({ phase: 'planning', spend: '1 model calls, 10 input tokens (0 cached), 5 output tokens, $0.0001' });
    p.status({ phase: 'planning', checks: [{ command: 'npm test', before: false }] });
    p.status({ phase: 'coding', round: { n: 1, of: 3 }, spend, checks: [{ command: 'npm test', before: false }] });
    p.status({
      phase: 'validating',
      round: { n: 1, of: 3 },
      spend,
      checks: [
        { command: 'npm test', before: false, after: true },
        { command: 'npm run lint', after: false },
      ],
    });
    p.stop();
    expect(out).toBe(
      [
        '[1/5] scope',
        '[2/5] plan · spend so far: 1 model call, $0.0001',
        '      checks before the change: npm test failed',
        '[3/5] code (round 1/3) · spend so far: 3 model calls, $0.0123',
        '[4/5] validate (round 1/3) · spend so far: 3 model calls, $0.0123',
        '      checks: npm test passed (before the change: failed); npm run lint failed',
        '',
      ].join('\n'),
    );
  });

  it('on a terminal, draws a spinner line under the stage lines and clears it', () => {
    let out = '';
    const p = new Progress({ write: (t) => (out += t), tty: true, now: () => 0 });
    p.status({ phase: 'scoping' });
    p.line('done');
    p.stop();
    expect(out).toBe('[1/5] scope\n⠋ scope 0s\r\x1b[2Kdone\n⠋ scope 0s\r\x1b[2K');
  });

  it('shortens the spend to calls and dollars', () => {
    expect(shortSpend('12 model calls, 9 input tokens (0 cached), 1 output tokens, $1.5000')).toBe(
      '12 model calls, $1.5000',
    );
    expect(shortSpend('something else')).toBe('something else');
  });
});
