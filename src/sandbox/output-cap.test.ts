import { describe, expect, it } from 'vitest';
import { OutputCap } from './output-cap.js';

describe('OutputCap', () => {
  it('keeps everything under the budget', () => {
    const cap = new OutputCap(100);
    cap.push(Buffer.from('hello '));
    cap.push(Buffer.from('world'));
    expect(cap.toString()).toBe('hello world');
    expect(cap.omittedBytes).toBe(0);
  });

  it('keeps exactly the budget without a marker', () => {
    const cap = new OutputCap(10);
    cap.push(Buffer.from('0123456789'));
    expect(cap.toString()).toBe('0123456789');
    expect(cap.omittedBytes).toBe(0);
  });

  it('keeps head and tail halves around an explicit marker', () => {
    const cap = new OutputCap(20);
    cap.push(Buffer.from('HEAD-56789'));
    for (let i = 0; i < 50; i++) cap.push(Buffer.from('middle'));
    cap.push(Buffer.from('0123-TAIL\n'));
    const text = cap.toString();
    expect(cap.omittedBytes).toBe(10 + 300 + 10 - 20);
    expect(text.startsWith('HEAD-56789\n')).toBe(true);
    expect(text).toContain(`[… ${cap.omittedBytes} bytes omitted …]`);
    expect(text.endsWith('0123-TAIL\n')).toBe(true);
  });
});
