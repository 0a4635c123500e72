/** Helpers every runner's parser shares: ANSI stripping, messages, locations. */

import type { FailingItem, FailureLocation } from './types.js';

// CSI sequences (colours, cursor moves), OSC sequences (hyperlinks) and stray escapes.
// eslint-disable-next-line no-control-regex
const ANSI =
  /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]|\u009b[0-?]*[ -/]*[@-~]/g;

export function stripAnsi(text: string): string {
  return text.replace(ANSI, '');
}

export const MAX_MESSAGE_LINES = 3;
const MAX_MESSAGE_CHARS = 400;

/** The first few non-empty lines, trimmed and capped: enough to name the error. */
export function messageOf(lines: readonly string[], maxLines = MAX_MESSAGE_LINES): string {
  const kept = lines
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .slice(0, maxLines);
  const text = kept.join('\n');
  return text.length > MAX_MESSAGE_CHARS ? `${text.slice(0, MAX_MESSAGE_CHARS - 1)}…` : text;
}

/** The lines up to the first blank line after some text. */
export function firstParagraph(lines: readonly string[]): string[] {
  const start = lines.findIndex((l) => l.trim() !== '');
  if (start < 0) return [];
  const end = lines.findIndex((l, k) => k > start && l.trim() === '');
  return lines.slice(start, end < 0 ? undefined : end);
}

export function int(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number.parseInt(s, 10);
  return Number.isFinite(n) ? n : undefined;
}

export function loc(file: string, line?: string, column?: string): FailureLocation {
  const l: FailureLocation = { file };
  const ln = int(line);
  const col = int(column);
  if (ln !== undefined) l.line = ln;
  if (col !== undefined) l.column = col;
  return l;
}

/** Code that is not the project's: the runtime, the runners, installed packages. */
export function isForeignPath(file: string): boolean {
  return (
    file.startsWith('node:') ||
    file.includes('node_modules/') ||
    file.startsWith('internal/') ||
    /^<.*>$/.test(file) ||
    file.startsWith('/rustc/') ||
    /\/(src\/)?(runtime|testing|reflect|sync)\/[^/]+\.go$/.test(file) ||
    /\/go(-[\d.]+)?\/src\//.test(file) ||
    /\/(lib\/)?python\d[\d.]*\//.test(file)
  );
}

// A JS stack frame: `at fn (path:line:col)`, `at path:line:col`, or node's TAP `fn (path:line:col)`.
export const JS_FRAME =
  /^\s*(?:at\s+)?(?:(?:async\s+)?[^\s(][^(]*?\s+)?\(?((?:file:\/\/)?[^\s()]+?):(\d+):(\d+)\)?\s*$/;

/** The first stack frame in the project's own code. */
export function firstOwnJsFrame(lines: readonly string[]): FailureLocation | undefined {
  for (const line of lines) {
    const m = JS_FRAME.exec(line);
    if (!m) continue;
    const file = (m[1] ?? '').replace(/^file:\/\//, '');
    if (file === '' || isForeignPath(file) || file === 'native') continue;
    return loc(file, m[2], m[3]);
  }
  return undefined;
}

export function dedupe(items: FailingItem[]): FailingItem[] {
  const seen = new Set<string>();
  const out: FailingItem[] = [];
  for (const item of items) {
    const key = `${item.runner}\0${item.name}\0${item.location?.file ?? ''}\0${item.location?.line ?? ''}\0${item.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(item);
  }
  return out;
}
