/**
 * The failed checks of a pull request's head commit, as a CI-fix job reads them: each
 * check run's output and annotations, an Actions job's log (its bounded tail), and a
 * commit status's description. Each failure is classified (caused by the change, a runner
 * or network error, or cannot tell) and fingerprinted, so the system, not the model,
 * decides to re-run, to fix, or to stop.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { FAILED_CONCLUSIONS } from '../github/ci.js';
import type { CheckAnnotation, CheckRunInfo, CiHost } from '../github/facade.js';
import { parseFailureOutput, stripAnsi } from '../stages/failure-report.js';
import type { CheckResult, ValidationReport } from '../stages/validate.js';

/** One failed check run or commit status of the head commit. */
export interface CiFailure {
  name: string;
  /** The check run, for its annotations, log and re-run; none for a commit status. */
  checkRunId?: number;
  /** A GitHub Actions job: its log can be read and the job re-run. */
  actionsJob: boolean;
  /** The run's conclusion, or the status's state. */
  conclusion: string;
  /** The run's output title, summary and text, or the status's description. */
  output: string;
  annotations: CheckAnnotation[];
  /** An Actions job's log, its last lines; why not, when it could not be read. */
  log?: string;
  logProblem?: string;
  url: string;
}

export type Cause = 'change' | 'infrastructure' | 'unknown';

export interface ClassifiedFailure extends CiFailure {
  cause: Cause;
  /** Why the cause was decided, for the status, the trace and the escalation. */
  why: string;
  /** The check's name plus its normalised failure signature, hashed. */
  fingerprint: string;
  /** The signature's first line, to name the failure to people. */
  signatureLine: string;
}

// Bounds: a PR with a hundred failing jobs is not fixed by reading all of them.
const MAX_FAILURES = 10;
const LOG_LINES = 400;

/** Conclusions that say the runner, not the code, ended the job. */
const INFRA_CONCLUSIONS = new Set(['timed_out', 'cancelled', 'startup_failure', 'stale']);

/** Lines of a job log that say the runner or the network failed, not the code. */
const INFRA_LOG =
  /The runner has received a shutdown signal|lost communication with the server|The hosted runner encountered an error|The operation was canceled|No space left on device|\b(ECONNRESET|ETIMEDOUT|EAI_AGAIN)\b|socket hang up|Could not resolve host|\b50[234] (Bad Gateway|Service Unavailable|Gateway Time-?out)\b|TLS handshake timeout|Temporary failure in name resolution/i;

/** An Actions log line's timestamp prefix. */
const LOG_TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z ?/;

/** The failed checks and statuses of `sha`, with what each says (at most MAX_FAILURES). */
export async function readFailures(ci: CiHost, sha: string, signal?: AbortSignal): Promise<CiFailure[]> {
  const [runs, statuses] = await Promise.all([ci.checkRuns(sha), ci.commitStatuses(sha)]);
  const failures: CiFailure[] = [];
  for (const r of runs.filter((r) => r.status === 'completed' && FAILED_CONCLUSIONS.has(r.conclusion ?? ''))) {
    if (failures.length >= MAX_FAILURES) break;
    failures.push(await readRun(ci, r, signal));
  }
  for (const s of statuses.filter((s) => s.state === 'failure' || s.state === 'error')) {
    if (failures.length >= MAX_FAILURES) break;
    failures.push({
      name: s.context,
      actionsJob: false,
      conclusion: s.state,
      output: s.description,
      annotations: [],
      url: s.url,
    });
  }
  return failures;
}

async function readRun(ci: CiHost, r: CheckRunInfo, signal?: AbortSignal): Promise<CiFailure> {
  const actionsJob = r.appSlug === 'github-actions';
  const [annotations, log] = await Promise.all([
    r.annotations > 0 ? ci.checkAnnotations(r.id).catch(() => []) : Promise.resolve([]),
    actionsJob
      ? ci.jobLogTail(r.id, signal).then(
          (l) => ({ text: logTail(l.text) }),
          (err: unknown) => ({ problem: err instanceof Error ? err.message : String(err) }),
        )
      : Promise.resolve(undefined),
  ]);
  return {
    name: r.name,
    checkRunId: r.id,
    actionsJob,
    conclusion: r.conclusion ?? 'failure',
    output: [r.title, r.summary, r.text].filter((t) => t.trim()).join('\n\n'),
    annotations: annotations.filter((a) => a.level === 'failure' || a.level === 'warning'),
    ...(log && 'text' in log ? { log: log.text } : {}),
    ...(log && 'problem' in log ? { logProblem: log.problem } : {}),
    url: r.url,
  };
}

/** A log's last LOG_LINES lines, without timestamps and terminal colours. */
function logTail(text: string): string {
  const lines = stripAnsi(text)
    .replace(/\r\n?/g, '\n')
    .split('\n')
    .map((l) => l.replace(LOG_TIMESTAMP, ''));
  return lines.slice(-LOG_LINES).join('\n');
}

/**
 * The annotations that say what failed: failure level, on a file. Actions adds one to every
 * failed step ("Process completed with exit code 1.", on `.github`), which says nothing of
 * which failure it was.
 */
function placing(annotations: CheckAnnotation[]): CheckAnnotation[] {
  return annotations.filter(
    (a) =>
      a.level === 'failure' &&
      a.path !== '.github' &&
      !/^Process completed with exit code \d+\.?$/.test(a.message.trim()),
  );
}

/** What decides a failure's cause besides the failure itself. */
export interface ClassifyContext {
  /** The latest check runs on the base branch. */
  baseRuns: CheckRunInfo[];
  baseRef: string;
  /** The files the pull request changes. */
  changedFiles: ReadonlySet<string>;
  /** Whether this check was already re-run on this commit: a second runner error is not retried. */
  rerunBefore: boolean;
}

/**
 * Caused by the change when its annotations point at a file the PR changes or the same
 * check passed on the base branch; a runner or network error when the conclusion or the
 * log says so (unless it was re-run already); else cannot tell.
 */
export function classify(f: CiFailure, c: ClassifyContext): ClassifiedFailure {
  const { fingerprint, signatureLine } = fingerprintOf(f);
  const decided = (cause: Cause, why: string): ClassifiedFailure => ({ ...f, cause, why, fingerprint, signatureLine });
  if (!c.rerunBefore) {
    if (INFRA_CONCLUSIONS.has(f.conclusion))
      return decided('infrastructure', `it ended ${f.conclusion.replace('_', ' ')}`);
    const infraLine = f.log?.split('\n').find((l) => INFRA_LOG.test(l));
    if (infraLine) return decided('infrastructure', `its log says: ${infraLine.trim().slice(0, 160)}`);
  }
  // Warnings are shown, but only a failure annotation on a changed file places the failure.
  const onChanged = placing(f.annotations).find((a) =>
    c.changedFiles.has(path.posix.normalize(a.path.replace(/^\.\//, ''))),
  );
  if (onChanged) return decided('change', `its annotations point at ${onChanged.path}, which the pull request changes`);
  const onBase = c.baseRuns.find((r) => r.name === f.name && r.status === 'completed');
  if (onBase?.conclusion === 'success') return decided('change', `the same check passed on ${c.baseRef}`);
  const again = c.rerunBefore ? 'it failed again after a re-run, and ' : '';
  if (onBase) return decided('unknown', `${again}the same check fails on ${c.baseRef} too (${onBase.conclusion})`);
  return decided('unknown', `${again}${c.baseRef} has no run of this check to compare with`);
}

/**
 * The check's name plus its normalised failure signature: the annotations, or the failing
 * tests and diagnostics the parsers find in the log, or the output's first lines, with
 * numbers, hashes and durations blanked out. The same failure after a fix has the same one.
 */
export function fingerprintOf(f: CiFailure): { fingerprint: string; signatureLine: string } {
  const fromAnnotations = placing(f.annotations)
    .slice(0, 5)
    .map((a) => `${a.path}: ${a.message.split('\n')[0]}`);
  const parsed = f.log ? parseFailureOutput(f.log).failures : [];
  const fromLog = parsed.slice(0, 5).map((p) => `${p.name}: ${p.message.split('\n')[0]}`);
  const fromOutput = f.output
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, 3);
  const lines = (fromAnnotations.length ? fromAnnotations : fromLog.length ? fromLog : fromOutput).map(normalise);
  const signature = lines.length ? lines : [f.conclusion];
  const fingerprint = createHash('sha256')
    .update(JSON.stringify([f.name, signature]))
    .digest('hex')
    .slice(0, 12);
  return { fingerprint, signatureLine: signature[0]!.slice(0, 200) };
}

function normalise(line: string): string {
  return line
    .replace(/\b[0-9a-f]{7,64}\b/gi, '#')
    .replace(/\d+(\.\d+)?/g, '#')
    .replace(/\s+/g, ' ')
    .trim();
}

/**
 * The failures as a validation report, for the failure summary sub-agent and the escalation:
 * one result per check, its text the output, annotations and log tail (never sent whole to
 * the coder: the summary reads it).
 */
export function ciFailureReport(failures: ClassifiedFailure[]): ValidationReport {
  const results: CheckResult[] = failures.map((f) => {
    const text = [
      `check ${f.name}: ${f.conclusion}`,
      f.output,
      ...f.annotations.map((a) => `${a.path}:${a.line}: ${a.level}: ${a.title ? `${a.title}: ` : ''}${a.message}`),
      ...(f.log
        ? ['--- job log (end) ---', f.log]
        : f.logProblem
          ? [`(the job log could not be read: ${f.logProblem})`]
          : []),
    ]
      .filter((t) => t.trim())
      .join('\n');
    return {
      name: 'ci',
      command: `CI: ${f.name}`,
      ok: false,
      exitCode: null,
      timedOut: f.conclusion === 'timed_out',
      durationMs: 0,
      tail: text,
      output: text,
    };
  });
  return { ok: false, results, failed: results[0] };
}

/** The CI failures as the coder reads them: what failed, where, and the summary of the logs. */
export function ciTaskText(failures: ClassifiedFailure[], summary: string): string {
  const parts = failures.map((f) => {
    const where = f.annotations
      .slice(0, 20)
      .map((a) => `- ${a.path}:${a.line}: ${a.message.split('\n')[0]!.slice(0, 300)}`);
    return [`Check "${f.name}" failed (${f.conclusion}); ${f.why}.`, ...where].join('\n');
  });
  return [
    "The repository's CI failed on this pull request's head commit. Fix what the change caused, keeping the change otherwise as it is.",
    '',
    ...parts,
    '',
    'What the failing checks reported:',
    summary,
  ].join('\n');
}
