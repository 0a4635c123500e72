import { firstOwnJsFrame, messageOf, MAX_MESSAGE_LINES } from './helpers.js';
import type { FailingItem, RunnerResult } from './types.js';

// jest

/** Reads jest output into failing items and its summary line. */
export function parseJest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  let currentFile: string | undefined;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    const fileHeader = /^\s*(?:FAIL|PASS)\s+(\S+)/.exec(line);
    if (fileHeader) {
      currentFile = fileHeader[1];
      continue;
    }
    const m = /^(\s*)● (.+?)\s*$/.exec(line);
    if (!m || /^Console\b/.test(m[2] ?? '')) continue;
    const indent = (m[1] ?? '').length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (
        /^\s*● /.test(l) ||
        /^\s*(FAIL|PASS)\s+\S/.test(l) ||
        /^(Test Suites|Tests|Summary of all failing tests):?/.test(l)
      )
        break;
      if (l.trim() !== '' && l.length - l.trimStart().length <= indent) break;
      body.push(l);
    }
    i = j - 1;
    const frameStart = body.findIndex((l) => /^\s*(>?\s*\d+ \||at\s)/.test(l));
    const text = frameStart >= 0 ? body.slice(0, frameStart) : body;
    // The message is the first paragraph; the matcher's Expected/Received come after it.
    const paragraphs = text
      .join('\n')
      .trim()
      .split(/\n\s*\n/);
    // "Test suite failed to run" explains itself at length; the error line says what broke.
    const errorLine = /failed to run/.test(m[2] ?? '')
      ? text.find((l) => /^\s*[A-Z]\w*Error\b.*?:/.test(l))
      : undefined;
    const message = errorLine
      ? errorLine.trim()
      : messageOf(
          (paragraphs[0] ?? '')
            .split('\n')
            .concat((paragraphs[1] ?? '').split('\n'))
            .slice(0, MAX_MESSAGE_LINES),
        );
    let location = firstOwnJsFrame(body.filter((l) => /^\s*at\s/.test(l)));
    // Frames are relative to jest's rootDir; the FAIL line is relative to the cwd.
    if (location && currentFile && currentFile !== location.file && currentFile.endsWith(`/${location.file}`))
      location = { ...location, file: currentFile };
    location ??= currentFile ? { file: currentFile } : undefined;
    failures.push({
      runner: 'jest',
      name: m[2] ?? '',
      message: message || 'failed',
      ...(location ? { location } : {}),
    });
  }
  let summary: string | undefined;
  for (const l of lines) {
    const s = /^Tests:\s+(.*?)\s*$/.exec(l);
    if (s) summary = (s[1] ?? '').replace(/(?:,\s*)?\d+ total$/, '') || undefined;
  }
  return { failures, summary };
}
