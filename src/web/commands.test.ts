import { describe, expect, it } from 'vitest';
import { helpText, parseCommand } from './commands.js';

describe('parseCommand', () => {
  it('reads the three commands and a bare /agent as help', () => {
    expect(parseCommand('/agent retry')).toEqual({ kind: 'retry' });
    expect(parseCommand('/agent stop')).toEqual({ kind: 'stop' });
    expect(parseCommand('/agent help')).toEqual({ kind: 'help' });
    expect(parseCommand('/agent')).toEqual({ kind: 'help' });
    expect(parseCommand('/Agent  STOP  ')).toEqual({ kind: 'stop' });
  });

  it('takes the text after retry, on its line and below, as extra task text', () => {
    expect(parseCommand('thanks!\n/agent retry use the v2 endpoint\nand keep `old()` working')).toEqual({
      kind: 'retry',
      text: 'use the v2 endpoint\nand keep `old()` working',
    });
  });

  it('answers unknown commands with the word, and ignores look-alikes', () => {
    expect(parseCommand('/agent deploy now')).toEqual({ kind: 'unknown', word: 'deploy' });
    expect(parseCommand('/agentx retry')).toBeUndefined();
    expect(parseCommand('please /agent retry')).toBeUndefined();
    expect(parseCommand('nothing to see')).toBeUndefined();
  });

  it('ignores commands in quotes, code blocks, inline code and HTML comments', () => {
    expect(parseCommand('> /agent retry\nI disagree')).toBeUndefined();
    expect(parseCommand('```\n/agent stop\n```')).toBeUndefined();
    expect(parseCommand('~~~sh\n/agent stop\n~~~\n')).toBeUndefined();
    expect(parseCommand('example:\n\n    /agent stop\n')).toBeUndefined();
    expect(parseCommand('`/agent stop`')).toBeUndefined();
    expect(parseCommand('<!--\n/agent stop\n-->')).toBeUndefined();
    // After the fence closes, a real command still counts.
    expect(parseCommand('```\n/agent stop\n```\n/agent retry')).toEqual({ kind: 'retry' });
  });

  it('lists every command in the help and names the unknown one', () => {
    const help = helpText('deploy');
    for (const c of ['/agent retry', '/agent stop', '/agent help', '`/agent deploy`']) expect(help).toContain(c);
    expect(helpText()).not.toContain('not a command');
  });
});
