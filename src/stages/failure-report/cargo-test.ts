import { loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// cargo test

/** Reads cargo-test output into failing items and its summary line. */
export function parseCargoTest(lines: readonly string[]): RunnerResult {
  const failures: FailingItem[] = [];
  const named = new Set<string>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    // Compile errors: `error[E0308]: mismatched types` then ` --> src/lib.rs:2:21`.
    const ce = /^error(?:\[(E\d+)\])?: (.*)$/.exec(line);
    if (ce) {
      const arrow = /^\s*--> (.*?):(\d+):(\d+)\s*$/.exec(lines[i + 1] ?? '');
      if (arrow)
        failures.push({
          runner: 'cargo-test',
          name: ce[1] ?? 'error',
          message: ce[2] ?? '',
          location: loc(arrow[1] ?? '', arrow[2], arrow[3]),
        });
      continue;
    }
    const head = /^---- (.+?) stdout ----\s*$/.exec(line);
    if (!head) continue;
    const name = head[1] ?? '';
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (/^---- .+ stdout ----\s*$/.test(l) || /^(failures|successes):\s*$/.test(l) || /^test result: /.test(l)) break;
      body.push(l);
    }
    i = j - 1;
    let message = '';
    let location: FailureLocation | undefined;
    for (let k = 0; k < body.length; k++) {
      const b = body[k] ?? '';
      // Rust ≥ 1.73: `thread 'x' (123) panicked at src/lib.rs:16:9:` then the message.
      const now = /^thread '.*?'(?: \(\d+\))? panicked at (.*?):(\d+):(\d+):\s*$/.exec(b);
      if (now) {
        location = loc(now[1] ?? '', now[2], now[3]);
        const rest: string[] = [];
        for (let r = k + 1; r < body.length; r++) {
          const t = body[r] ?? '';
          if (/^(stack backtrace:|note: )/.test(t) || t.trim() === '') break;
          rest.push(t);
        }
        message = messageOf(rest);
        break;
      }
      // Older: `thread 'x' panicked at 'message', src/lib.rs:16:9`.
      const old = /^thread '.*?' panicked at '(.*)', (.*?):(\d+):(\d+)\s*$/.exec(b);
      if (old) {
        message = old[1] ?? '';
        location = loc(old[2] ?? '', old[3], old[4]);
        break;
      }
      // `Error: …` from a test returning Result.
      const err = /^Error: (.*)$/.exec(b);
      if (err && !message) message = err[1] ?? '';
    }
    if (!message) message = messageOf(body) || 'failed';
    named.add(name);
    failures.push({ runner: 'cargo-test', name, message, ...(location ? { location } : {}) });
  }
  // The `failures:` list names tests whose output block was missing (e.g. captured elsewhere).
  for (let i = 0; i < lines.length; i++) {
    if (!/^failures:\s*$/.test(lines[i] ?? '')) continue;
    for (let j = i + 1; j < lines.length; j++) {
      const l = lines[j] ?? '';
      if (l.trim() === '' && j === i + 1) continue;
      const m = /^ {4}(\S+)\s*$/.exec(l);
      if (!m) break;
      const name = m[1] ?? '';
      if (!named.has(name)) {
        named.add(name);
        failures.push({ runner: 'cargo-test', name, message: 'failed' });
      }
    }
  }
  const results = lines
    .map((l) => /^test result: FAILED\. (.*?)(?:; finished in .*)?$/.exec(l)?.[1])
    .filter((s): s is string => s !== undefined);
  return { failures, summary: results.length ? results.join(' / ') : undefined };
}
