import { readFile, stat, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { defineTool, ToolFailure } from './tool.js';
import { assertEditable } from './scope.js';
import { assertNotSymlink, assertPathAllowed, notFound, relPath, resolveInTree } from './paths.js';
import { looksBinary } from './read-file.js';
import { excerptAround, introducedSyntaxProblem } from './syntax.js';

const MAX_EDIT_BYTES = 2 * 1024 * 1024;

function lineOf(text: string, index: number): number {
  let n = 1;
  for (let i = 0; i < index; i++) if (text.charCodeAt(i) === 10) n++;
  return n;
}

function allIndexes(haystack: string, needle: string): number[] {
  const out: number[] = [];
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + 1)) out.push(i);
  return out;
}

const squash = (s: string) => s.replace(/\s+/g, ' ').trim();

function similarity(a: string, b: string): number {
  const ta = new Set(squash(a).split(/(?=[^\w])|(?<=[^\w])/));
  const tb = squash(b).split(/(?=[^\w])|(?<=[^\w])/);
  if (tb.length === 0) return 0;
  return tb.filter((t) => ta.has(t)).length / Math.max(ta.size, tb.length);
}

/** The region of `content` most like `wanted`, with its line numbers and what differs. */
export function nearestRegion(
  content: string,
  wanted: string,
): { start: number; end: number; text: string; difference: string } | undefined {
  const lines = content.split('\n');
  const span = Math.max(1, wanted.replace(/\n$/, '').split('\n').length);
  let best: { start: number; score: number } | undefined;
  for (let i = 0; i + span <= lines.length; i++) {
    const score = similarity(lines.slice(i, i + span).join('\n'), wanted);
    if (!best || score > best.score) best = { start: i, score };
  }
  if (!best || best.score < 0.3) return undefined;
  const text = lines.slice(best.start, best.start + span).join('\n');
  let difference: string;
  if (text.includes('\r') !== wanted.includes('\r') && squash(text) === squash(wanted)) {
    difference = `line endings differ (the file uses ${text.includes('\r') ? 'CRLF' : 'LF'}, old_text ${wanted.includes('\r') ? 'CRLF' : 'LF'})`;
  } else if (squash(text) === squash(wanted)) {
    difference =
      /^\s/m.test(text) !== /^\s/m.test(wanted) || text.replace(/^\s+/gm, '') === wanted.replace(/^\s+/gm, '')
        ? 'indentation differs'
        : 'whitespace differs';
  } else {
    const wantedWords = squash(wanted).split(' ');
    const foundWords = new Set(squash(text).split(' '));
    const missing = wantedWords.filter((w) => !foundWords.has(w)).slice(0, 5);
    difference = missing.length
      ? `these words of old_text are not in the file there: ${missing.map((w) => JSON.stringify(w)).join(', ')}`
      : 'the text differs';
  }
  return { start: best.start + 1, end: best.start + span, text, difference };
}

/** Text that is not UTF-8 would be rewritten with replacement characters: refuse it. */
export function decodeUtf8(buf: Buffer, rel: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(buf);
  } catch {
    throw new ToolFailure({
      code: 'not_utf8',
      message: `${rel} is not valid UTF-8; editing it as text would change bytes outside the edit`,
      hint: 'leave this file alone, or explain in finish_change why it must change',
    });
  }
}

/** Lint on edit: an edit that breaks a file's syntax is refused and the file left as it was. */
export function rejectBrokenSyntax(
  rel: string,
  before: string | undefined,
  after: string,
  what: 'edit' | 'create',
): void {
  const problem = introducedSyntaxProblem(rel, before, after);
  if (!problem) return;
  throw new ToolFailure({
    code: 'syntax_error',
    message: `the ${what} would leave ${rel} unparseable; ${what === 'edit' ? 'the file was not changed' : 'the file was not created'}. ${problem.parser} says at line ${problem.line}, column ${problem.column}: ${problem.message}\n${excerptAround(after, problem.line)}`,
    hint: `check brackets, quotes and commas in ${what === 'edit' ? 'new_text' : 'content'} around that line, then try again`,
  });
}

export const editFile = defineTool({
  name: 'edit_file',
  example: { path: 'src/add.js', old_text: '  return a - b;', new_text: '  return a + b;' },
  description:
    'Replace one exact, unique occurrence of old_text with new_text in a file. old_text must match the file byte for byte (whitespace and indentation included) and occur exactly once; include surrounding lines to make it unique.',
  input: z.strictObject({
    path: relPath('file path relative to the repository root'),
    old_text: z
      .string()
      .min(1)
      .describe('the exact text to replace, copied from read_file output without the line-number prefix'),
    new_text: z.string().describe('the replacement text'),
  }),
  async run({ path, old_text, new_text }, ctx) {
    const target = await resolveInTree(ctx.workTree, path);
    const { abs, rel } = target;
    assertPathAllowed(ctx, target);
    const st = await stat(abs).catch(() => undefined);
    if (!st) throw await notFound(ctx.workTree, rel, 'file', ctx.signal);
    if (st.size > MAX_EDIT_BYTES) {
      throw new ToolFailure({
        code: 'file_too_large',
        message: `${rel} is ${st.size} bytes, over the ${MAX_EDIT_BYTES}-byte limit for edits`,
        hint: 'files this large are usually generated: change their source instead, or explain in finish_change',
      });
    }
    assertEditable(ctx, rel);
    await assertNotSymlink(abs, rel);
    if (!st.isFile())
      throw new ToolFailure({
        code: 'not_a_file',
        message: `${rel} is not a regular file`,
        hint: 'only regular files can be edited',
      });
    const buf = await readFile(abs);
    if (looksBinary(buf))
      throw new ToolFailure({
        code: 'binary_file',
        message: `${rel} is binary (${st.size} bytes) and cannot be edited as text`,
      });
    const content = decodeUtf8(buf, rel);
    if (old_text === new_text)
      throw new ToolFailure({
        code: 'no_change',
        message: 'old_text and new_text are identical',
        hint: 'pass the changed text as new_text',
      });
    const hits = allIndexes(content, old_text);
    if (hits.length === 0) {
      const near = nearestRegion(content, old_text);
      throw new ToolFailure({
        code: 'old_text_not_found',
        message: near
          ? `old_text was not found in ${rel}. The nearest region is lines ${near.start}-${near.end} (${near.difference}):\n${near.text}`
          : `old_text was not found in ${rel}, and no region is similar`,
        hint: `read_file ${rel} around the place you mean and copy the text exactly`,
      });
    }
    if (hits.length > 1) {
      const lines = hits.map((i) => lineOf(content, i));
      throw new ToolFailure({
        code: 'old_text_not_unique',
        message: `old_text occurs ${hits.length} times in ${rel}, at lines ${lines.join(', ')}`,
        hint: 'include more surrounding lines in old_text so that it matches exactly one place',
      });
    }
    const index = hits[0]!;
    const updated = content.slice(0, index) + new_text + content.slice(index + old_text.length);
    rejectBrokenSyntax(rel, content, updated, 'edit');
    await writeFile(abs, updated);
    ctx.touched.add(rel);
    const line = lineOf(content, index);
    return {
      output: `edited ${rel} at line ${line} (-${old_text.split('\n').length} +${new_text.split('\n').length} lines)`,
      metadata: { line },
    };
  },
});
