import { firstParagraph, isForeignPath, loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// vitest

const VITEST_FAIL = /^\s*FAIL\s+(\S.*?)\s*$/;
const VITEST_SEPARATOR = /^\s*⎯{3,}/;

/** Reads vitest output into failing items and its summary line. */
export function parseVitest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  for (let i = 0; i < lines.length; i++) {
    const header = VITEST_FAIL.exec(lines[i] ?? '');
    if (!header || !/ > |\[.*\]/.test(header[1] ?? '')) continue;
    // Several headers can share one error.
    const heads: string[] = [header[1] ?? ''];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const h = VITEST_FAIL.exec(lines[j] ?? '');
      if (!h) break;
      heads.push(h[1] ?? '');
    }
    const body: string[] = [];
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (VITEST_SEPARATOR.test(l) || VITEST_FAIL.test(l) || /^\s*(Test Files|Tests)\s+\d/.test(l)) break;
      body.push(l);
    }
    i = j - 1;
    const frames = body.filter((l) => /^\s*❯ /.test(l));
    const firstFrame = body.findIndex((l) => /^\s*❯ /.test(l));
    const textLines = (firstFrame >= 0 ? body.slice(0, firstFrame) : body).filter(
      (l) => !/^\s*[-+] (Expected|Received)\s*$/.test(l),
    );
    const message = messageOf(firstParagraph(textLines));
    let location: FailureLocation | undefined;
    for (const f of frames) {
      const fm = /❯ (?:.*\s)?(\S+?):(\d+):(\d+)\s*$/.exec(f);
      if (fm && !isForeignPath(fm[1] ?? '')) {
        location = loc(fm[1] ?? '', fm[2], fm[3]);
        break;
      }
    }
    for (const head of heads) {
      const fileLevel = /^(.*?)\s*\[\s*(.*?)\s*\]\s*$/.exec(head);
      const parts = head.split(' > ');
      const file = fileLevel ? (fileLevel[1] ?? '') : (parts[0] ?? '').trim();
      const name = fileLevel ? file : parts.slice(1).join(' > ').trim() || file;
      failures.push({ runner: 'vitest', name, message: message || 'failed', location: location ?? { file } });
    }
  }
  let summary: string | undefined;
  for (const l of lines) {
    const m = /^\s*Tests\s+(\d+ (?:failed|passed).*?)\s*$/.exec(l);
    if (m) summary = (m[1] ?? '').replace(/\s*\(\d+\)$/, '').replace(/ \| /g, ', ');
  }
  return { failures, summary };
}
