import { loc, messageOf } from './helpers.js';
import type { FailingItem, FailureLocation, RunnerResult } from './types.js';

// pytest

const PYTEST_LOCATION = /^(\S+?\.py):(\d+): (.*)$/;

/** Reads pytest output into failing items and its summary line. */
export function parsePytest(lines: readonly string[]): RunnerResult {
  // Sections `___ title ___` under FAILURES / ERRORS.
  const sections = new Map<string, { locations: FailureLocation[]; errors: string[] }>();
  let current: { locations: FailureLocation[]; errors: string[] } | undefined;
  let inReport = false;
  const loose: { location: FailureLocation; text: string }[] = []; // --tb=line
  for (const line of lines) {
    const banner = /^={3,} (.*?) ={3,}$/.exec(line);
    if (banner) {
      inReport = /^(FAILURES|ERRORS)$/.test(banner[1] ?? '');
      current = undefined;
      continue;
    }
    if (!inReport) continue;
    const title = /^_{3,} (.*?) _{3,}$/.exec(line);
    if (title) {
      current = { locations: [], errors: [] };
      sections.set(title[1] ?? '', current);
      continue;
    }
    const lm = PYTEST_LOCATION.exec(line);
    if (lm) {
      const l = loc(lm[1] ?? '', lm[2]);
      if (current) current.locations.push(l);
      else loose.push({ location: l, text: lm[3] ?? '' });
      continue;
    }
    const e = /^E\s+(.*)$/.exec(line);
    if (e && current) current.errors.push(e[1] ?? '');
  }

  const failures: FailingItem[] = [];
  for (const line of lines) {
    const m = /^(FAILED|ERROR) (\S+?(?:\[.*?\])?)(?: - (.*))?\s*$/.exec(line);
    if (!m) continue;
    const nodeid = m[2] ?? '';
    const [file = nodeid, ...rest] = nodeid.split('::');
    const dotted = rest.join('.');
    const section =
      sections.get(dotted) ??
      sections.get(`ERROR at setup of ${dotted}`) ??
      sections.get(`ERROR at teardown of ${dotted}`) ??
      [...sections.entries()].find(([t]) => dotted !== '' && t.endsWith(dotted))?.[1] ??
      (rest.length === 0 ? sections.get(`ERROR collecting ${file}`) : undefined);
    const own = section?.locations.filter(
      (l) => l.file === file || l.file.endsWith(`/${file}`) || file.endsWith(`/${l.file}`),
    );
    const location = own?.[own.length - 1] ??
      section?.locations[section.locations.length - 1] ??
      loose.find((l) => l.location.file.endsWith(file))?.location ?? { file };
    const message = m[3] ?? messageOf(section?.errors ?? []) ?? '';
    failures.push({
      runner: 'pytest',
      name: nodeid,
      message: message || (m[1] === 'ERROR' ? 'error' : 'failed'),
      location,
    });
  }
  if (!failures.length) {
    // No short summary (e.g. `-rN`): the sections themselves.
    for (const [title, s] of sections) {
      const location = s.locations[s.locations.length - 1];
      failures.push({
        runner: 'pytest',
        name: title,
        message: messageOf(s.errors) || 'failed',
        ...(location ? { location } : {}),
      });
    }
    for (const l of loose)
      failures.push({ runner: 'pytest', name: l.location.file, message: l.text, location: l.location });
  }
  let summary: string | undefined;
  for (const l of lines) {
    const s =
      /^=*\s*((?:\d+ (?:failed|passed|errors?|skipped|xfailed|xpassed|warnings?|deselected)(?:, )?)+)(?: in [\d.]+s.*?)?\s*=*$/.exec(
        l,
      );
    if (s) summary = (s[1] ?? '').trim();
  }
  return { failures, summary };
}
