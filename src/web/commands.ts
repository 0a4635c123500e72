/** The commands people write in issue and pull-request comments. */
export type Command =
  | { kind: 'retry'; text?: string }
  | { kind: 'stop' }
  | { kind: 'help' }
  | { kind: 'unknown'; word: string };

export const COMMAND_NAMES = ['retry', 'stop', 'help'] as const;
const MAX_TEXT = 4_000;

/**
 * Lines that are prose written by the commenter: quoted replies (`>`), fenced and indented
 * code, and HTML comments are blanked, so a command someone quotes or shows as an example
 * never runs. Line numbers are kept.
 */
function proseLines(body: string): string[] {
  const lines = body
    .replace(/\r\n?/g, '\n')
    .replace(/<!--[\s\S]*?(?:-->|$)/g, (m) => m.replace(/[^\n]/g, ' '))
    .split('\n');
  let fence: string | undefined;
  let previousBlank = true;
  return lines.map((line) => {
    const open = /^ {0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      if (open && open[1]![0] === fence[0] && open[1]!.length >= fence.length && line.trim() === open[1])
        fence = undefined;
      return '';
    }
    if (open) {
      fence = open[1];
      return '';
    }
    const blank = line.trim() === '';
    // An indented code block starts after a blank line; inside a list it is a continuation,
    // which is fine to drop too: a command is written at the start of a line.
    const code = /^(?: {4}|\t)/.test(line) && previousBlank;
    previousBlank = blank || (code && previousBlank);
    if (code || /^ {0,3}>/.test(line)) return '';
    // Inline code spans: `/agent retry` in a sentence is an example, not an order.
    return line.replace(/(`+)[^`]*?\1/g, (m) => ' '.repeat(m.length));
  });
}

/**
 * The first command in a comment: a line that starts with `/agent`. Text after
 * `/agent retry` (the rest of that line and the lines below it) becomes part of the task.
 * Answers undefined when the comment holds no command.
 */
export function parseCommand(body: string): Command | undefined {
  const original = body.replace(/\r\n?/g, '\n').split('\n');
  const prose = proseLines(body);
  for (let i = 0; i < prose.length; i++) {
    const m = /^ {0,3}\/agent(?=$|[ \t])(?:[ \t]+(\S+))?/i.exec(prose[i]!);
    if (!m) continue;
    const word = (m[1] ?? '').toLowerCase();
    if (word === '' || word === 'help') return { kind: 'help' };
    if (word === 'stop') return { kind: 'stop' };
    if (word === 'retry') {
      // The extra text is taken from the original lines so code in it survives.
      const rest = /^ {0,3}\/agent[ \t]+\S+[ \t]*(.*)$/i.exec(original[i]!)?.[1] ?? '';
      const text = [rest, ...original.slice(i + 1)].join('\n').trim().slice(0, MAX_TEXT);
      return text ? { kind: 'retry', text } : { kind: 'retry' };
    }
    return { kind: 'unknown', word: word.slice(0, 40) };
  }
  return undefined;
}

/** The reply to `/agent help` and to a command the app does not know. */
export function helpText(unknownWord?: string): string {
  return [
    ...(unknownWord !== undefined
      ? [`\`/agent ${unknownWord.replace(/`/g, '')}\` is not a command I know. These are:`, '']
      : ['**issue-agent** commands (people with write access):', '']),
    '- `/agent retry [more context]`: start a new attempt; text after the command becomes part of the task. On a pull request I opened, it revises that pull request.',
    '- `/agent stop`: stop the running job at its next step; the work tree is removed and nothing is pushed.',
    '- `/agent help`: this list.',
    '',
    'Adding the trigger label to an issue starts a job; a review on a pull request I opened (changes requested, or comments) makes me revise it.',
  ].join('\n');
}
