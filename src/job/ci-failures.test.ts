import { describe, expect, it } from 'vitest';
import type { CheckRunInfo } from '../github/facade.js';
import { type CiFailure, ciFailureReport, ciTaskText, classify, fingerprintOf } from './ci-failures.js';
import { defuseClosing } from './deliver.js';

const failure = (f: Partial<CiFailure> = {}): CiFailure => ({
  name: 'lint (ubuntu)',
  checkRunId: 5,
  actionsJob: true,
  conclusion: 'failure',
  output: 'ESLint found 1 problem',
  annotations: [],
  url: 'https://github.com/o/r/runs/5',
  ...f,
});
const run = (name: string, conclusion: string): CheckRunInfo => ({
  id: 1,
  name,
  status: 'completed',
  conclusion,
  appSlug: 'github-actions',
  title: '',
  summary: '',
  text: '',
  annotations: 0,
  url: '',
});
const context = {
  baseRuns: [] as CheckRunInfo[],
  baseRef: 'main',
  changedFiles: new Set(['src/x.ts']),
  rerunBefore: false,
};

describe('classify', () => {
  it('calls a runner or network error infrastructure, from the conclusion or the log', () => {
    expect(classify(failure({ conclusion: 'timed_out' }), context).cause).toBe('infrastructure');
    expect(classify(failure({ conclusion: 'cancelled' }), context).cause).toBe('infrastructure');
    const lost = classify(failure({ log: 'step 1\n##[error]The runner has received a shutdown signal.' }), context);
    expect(lost).toMatchObject({ cause: 'infrastructure' });
    expect(lost.why).toContain('shutdown signal');
    expect(classify(failure({ log: 'npm ERR! code ECONNRESET' }), context).cause).toBe('infrastructure');
  });

  it('calls a failure on a file the PR changes, or one that passes on the base branch, the change', () => {
    const annotated = failure({
      annotations: [{ path: 'src/x.ts', line: 3, level: 'failure', title: '', message: 'unused import' }],
    });
    expect(classify(annotated, context)).toMatchObject({ cause: 'change' });
    expect(classify(failure(), { ...context, baseRuns: [run('lint (ubuntu)', 'success')] })).toMatchObject({
      cause: 'change',
      why: 'the same check passed on main',
    });
  });

  it('cannot tell when the base branch fails the same check or has none', () => {
    expect(classify(failure(), { ...context, baseRuns: [run('lint (ubuntu)', 'failure')] }).cause).toBe('unknown');
    expect(classify(failure(), context).cause).toBe('unknown');
  });

  it('does not call a check infrastructure twice: after a re-run it is placed like any other', () => {
    const timedOut = failure({ conclusion: 'timed_out' });
    expect(classify(timedOut, { ...context, rerunBefore: true }).cause).toBe('unknown');
    expect(
      classify(timedOut, { ...context, rerunBefore: true, baseRuns: [run('lint (ubuntu)', 'success')] }).cause,
    ).toBe('change');
  });
});

describe('fingerprintOf', () => {
  const annotated = (message: string, line = 3) =>
    failure({ annotations: [{ path: 'src/x.ts', line, level: 'failure', title: '', message }] });

  it('is the same for the same failure, whatever its line numbers, durations and hashes', () => {
    const a = fingerprintOf(annotated("'y' is unused (took 12ms, at 3f2a9c1d)", 3));
    const b = fingerprintOf(annotated("'y' is unused (took 40ms, at 9b8e7d6c)", 9));
    expect(a.fingerprint).toBe(b.fingerprint);
    expect(a.fingerprint).toMatch(/^[0-9a-f]{12}$/);
  });

  it('differs for another message or another check', () => {
    const a = fingerprintOf(annotated("'y' is unused"));
    expect(fingerprintOf(annotated("'z' is unused")).fingerprint).not.toBe(a.fingerprint);
    expect(fingerprintOf({ ...annotated("'y' is unused"), name: 'lint (windows)' }).fingerprint).not.toBe(
      a.fingerprint,
    );
  });

  it("ignores Actions' own exit-code annotation, which every failed step has", () => {
    const exit = {
      path: '.github',
      line: 1,
      level: 'failure',
      title: '',
      message: 'Process completed with exit code 1.',
    };
    const one = failure({ annotations: [exit], log: 'not ok 1 - adds a negative number\n' });
    const other = failure({ annotations: [exit], log: 'not ok 1 - subtracts\n' });
    expect(fingerprintOf(one).fingerprint).not.toBe(fingerprintOf(other).fingerprint);
    expect(classify(one, { ...context, changedFiles: new Set(['.github']) }).cause).toBe('unknown');
  });

  it('reads failing tests from the log when there are no annotations', () => {
    const log = 'TAP version 13\nnot ok 1 - adds a negative number\n  ---\n  error: expected -1\n  ...\n';
    const f = fingerprintOf(failure({ log }));
    expect(f.signatureLine).toContain('adds a negative number');
  });
});

describe('the report and the task', () => {
  it('gives the summary the log, and the coder the annotations and the summary, not the log', () => {
    const f = classify(
      failure({
        annotations: [{ path: 'src/x.ts', line: 3, level: 'failure', title: '', message: 'unused import' }],
        log: 'RAW-LOG-LINE',
      }),
      context,
    );
    const report = ciFailureReport([f]);
    expect(report.results[0]).toMatchObject({ name: 'ci', command: 'CI: lint (ubuntu)', ok: false });
    expect(report.results[0]!.output).toContain('RAW-LOG-LINE');
    const task = ciTaskText([f], 'SUMMARY');
    expect(task).toContain('src/x.ts:3: unused import');
    expect(task).toContain('SUMMARY');
    expect(task).not.toContain('RAW-LOG-LINE');
  });
});

describe('defuseClosing', () => {
  it('keeps a closing keyword in a summary from closing an issue on merge', () => {
    expect(defuseClosing('Remove the import. Fixes #12, closes other/repo#3')).toBe(
      'Remove the import. Fixes (#12), closes (other/repo#3)',
    );
    expect(defuseClosing('Fix the lint in add.js')).toBe('Fix the lint in add.js');
  });
});
