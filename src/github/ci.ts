/**
 * How the checks of a commit stand, as the web decides on a CI result and a CI-fix job
 * reads it: the checks API's latest run of each name, and the commit statuses.
 */
import type { CiHost } from './facade.js';

/** The checks and statuses of one commit: the names still running, those that failed, and how many passed. */
export interface CiSnapshot {
  pending: string[];
  failed: string[];
  passed: number;
}

/** Check-run conclusions that fail a commit (neutral and skipped do not, as on GitHub). */
export const FAILED_CONCLUSIONS = new Set([
  'failure',
  'timed_out',
  'cancelled',
  'startup_failure',
  'action_required',
  'stale',
]);

/** How every check run and commit status on `sha` stands. */
export async function ciSnapshot(repo: Pick<CiHost, 'checkRuns' | 'commitStatuses'>, sha: string): Promise<CiSnapshot> {
  const [runs, statuses] = await Promise.all([repo.checkRuns(sha), repo.commitStatuses(sha)]);
  const snapshot: CiSnapshot = { pending: [], failed: [], passed: 0 };
  for (const r of runs) {
    if (r.status !== 'completed') snapshot.pending.push(r.name);
    else if (FAILED_CONCLUSIONS.has(r.conclusion ?? '')) snapshot.failed.push(r.name);
    else snapshot.passed += 1;
  }
  for (const s of statuses) {
    if (s.state === 'pending') snapshot.pending.push(s.context);
    else if (s.state === 'success') snapshot.passed += 1;
    else snapshot.failed.push(s.context);
  }
  return snapshot;
}
