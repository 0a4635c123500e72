import { describe, expect, it } from 'vitest';
import { REPO_CONFIG_SCHEMA_ID, REPO_CONFIG_SCHEMA_PAGE } from '../config/repo-config.js';
import { configErrorComment } from './config-error.js';
import { STATUS_MARKER } from './status.js';
import { configErrorOf as errorOf } from '../../test/helpers/repo-config.js';

const FILE_URL = 'https://github.com/o/r/blob/main/.github/agent.yml';

describe('the invalid-config comment', () => {
  it('starts with the status marker, names the file and the ref, and says nothing ran', () => {
    const body = configErrorComment(errorOf('max_rounds: 50\n'), { ref: 'main' });
    expect(body.startsWith(`${STATUS_MARKER}\n`)).toBe(true);
    expect(body).toContain('`.github/agent.yml` on `main` is invalid, so nothing ran.');
  });

  it('lists each problem with its line, field and expectation', () => {
    const err = errorOf('max_rounds: 2\nbudgets:\n  max_cost_usd: "ten"\ncommands:\n  tests: npm test\n');
    const lines = configErrorComment(err, { ref: 'main' })
      .split('\n')
      .filter((l) => l.startsWith('- '));
    expect(lines).toEqual([
      '- line 3, field `budgets.max_cost_usd`: is text ("ten"), not a number — expected: a number above 0 and at most 1,000 (dollars per job (default 10))',
      '- line 5, field `commands.tests`: unknown key "tests" in commands (did you mean test?) — expected: one of the keys install, test, lint, typecheck',
    ]);
  });

  it("links each line into the file when it has the file's address", () => {
    const body = configErrorComment(errorOf('\n\nmax_rounds: 0\n'), { ref: 'main', fileUrl: FILE_URL });
    expect(body).toContain(`- [line 3](${FILE_URL}#L3), field \`max_rounds\`: 0 is below the minimum of 1`);
    expect(body).toContain(`[\`.github/agent.yml\`](${FILE_URL}) on \`main\``);
    // Anything but a plain https address is not made a link.
    const odd = configErrorComment(errorOf('max_rounds: 0\n'), { ref: 'main', fileUrl: 'javascript:alert(1)' });
    expect(odd).not.toContain('javascript:');
    expect(odd).toContain('- line 1, field `max_rounds`');
  });

  it('says how to fix it and where the schema is', () => {
    const body = configErrorComment(errorOf('max_rounds: 0\n'), { ref: 'trunk' });
    expect(body).toMatch(/edit `\.github\/agent\.yml` on the default branch \(`trunk`\)/);
    expect(body).toMatch(/add the trigger label again, or comment `\/agent retry`/);
    expect(body).toContain(`[\`schema/agent.schema.json\`](${REPO_CONFIG_SCHEMA_PAGE})`);
    expect(body).toContain(REPO_CONFIG_SCHEMA_ID);
  });

  it('shows a YAML syntax error with its line', () => {
    const body = configErrorComment(errorOf('commands:\n  test: [unclosed\n'), { ref: 'main' });
    expect(body).toMatch(/^- line 2, field `commands\.test`: YAML syntax: /m);
  });

  it('keeps text from the file inside its list item', () => {
    const hostile = [
      '"a`b\\n\\n# Heading\\n<!-- x -->": 1',
      '"```\\n@everyone [click](https://evil.example) <img src=x onerror=alert(1)> **bold** $x$": 2',
      'models:',
      '  fast: "\\u202Egnp.exe ``` </details> ![i](https://evil.example/i.png)"',
    ].join('\n');
    const err = errorOf(`${hostile}\n`);
    expect(err.problems).toHaveLength(3);
    const body = configErrorComment(err, { ref: 'main' });
    const lines = body.split('\n');
    const items = lines.filter((l) => l.startsWith('- '));
    // Every problem stays one list item: no line of the file's text starts a block of its own.
    expect(items).toHaveLength(3);
    expect(lines.filter((l) => /^#|^<|^```|^<!--/.test(l))).toEqual([STATUS_MARKER]);
    for (const item of items) {
      // Past the field's code span, nothing can open markup: every such character is escaped.
      const rest = item.replace(/^- line \d+, field (`+).*?\1(?=: )/, '');
      expect(rest).not.toBe(item);
      expect(rest).not.toMatch(/(?<!\\)[<>[\]*_$!@`]/);
    }
    // Backticks in a key cannot close its code span, and bidi controls are shown, not obeyed.
    expect(body).toContain('field ``a`b\\u000a\\u000a# Heading\\u000a<!-- x -->``: ');
    expect(body).not.toContain('\u202E');
    expect(body).toContain('u202egnp.exe');
  });

  it('counts the problems past twenty instead of listing them', () => {
    const text = Array.from({ length: 25 }, (_, i) => `unknown_${i}: 1`).join('\n');
    const body = configErrorComment(errorOf(text), { ref: 'main' });
    expect(body).toContain('The 25 problems:');
    expect(body.split('\n').filter((l) => l.startsWith('- line'))).toHaveLength(20);
    expect(body).toContain('- …and 5 more');
  });
});
