import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { quote, systemPrompt } from '../agent/context.js';
import { runLoop } from '../agent/loop.js';
import { ModelError } from '../agent/model.js';
import { FailureSummarySchema, reportFailure } from '../agent/tools/report-failure.js';
import type { Tool } from '../agent/tools/tool.js';
import { formatFailureReport, parseFailureOutput } from './failure-report.js';
import type { StageDeps } from './types.js';
import type { ValidationReport } from './validate.js';

const RULES = `Stage: FAILURE SUMMARY. You read the output of a repository's failing checks and report,
for the engineer who will fix it: the most likely cause, the files and lines to look at, and a
short verbatim excerpt. Be brief and specific; do not propose a full fix.`;

const LOG_LINES_FOR_MODEL = 200;

const noRunner = {
  backend: 'unsandboxed' as const,
  run: async () => Promise.reject(new Error('the failure summary runs no commands')),
};

/**
 * The validation sub-agent: a deterministic pass extracts what parsers can (failing tests,
 * file:line, messages); a fast-tier call adds the likely cause and an excerpt. The coder
 * gets this report, never the raw log (which stays in the trace). When the model cannot
 * help, the deterministic part alone is the report.
 */
export async function summariseFailures(
  deps: Pick<StageDeps, 'model' | 'trace' | 'log' | 'guard' | 'onToolCall'>,
  report: ValidationReport,
): Promise<string> {
  const failed = report.results.filter((r) => !r.ok);
  const parsed = failed.map((r) => ({ r, parsed: parseFailureOutput(r.output, r.command) }));
  const deterministic = parsed
    .map(
      ({ r, parsed: p }) =>
        `$ ${r.command}\n${r.timedOut ? 'timed out' : `exit code ${r.exitCode}`}\n${p.failures.length ? formatFailureReport(p) : '(no failing test recognised in the output)'}`,
    )
    .join('\n\n');
  const scratch = await mkdtemp(path.join(tmpdir(), 'issue-agent-summary-'));
  try {
    const task = parsed
      .map(({ r, parsed: p }) => {
        const lines = r.tail.split('\n');
        const tail =
          lines.length > LOG_LINES_FOR_MODEL
            ? [
                `[… ${lines.length - LOG_LINES_FOR_MODEL} earlier lines omitted …]`,
                ...lines.slice(-LOG_LINES_FOR_MODEL),
              ]
            : lines;
        return [
          quote('command', r.command),
          quote('parsed', formatFailureReport(p)),
          quote('log-tail', tail.join('\n')),
        ].join('\n');
      })
      .join('\n\n');
    const result = await runLoop({
      stage: 'summary',
      tier: 'fast',
      model: deps.model,
      system: systemPrompt(RULES, ''),
      task: `${task}\n\nCall report_failure.`,
      tools: [reportFailure] as unknown as Tool[],
      ctx: { workTree: scratch, runner: noRunner, sandboxReadOnlyPaths: [], log: deps.log, touched: new Set() },
      maxTurns: 2,
      trace: deps.trace,
      log: deps.log,
      guard: deps.guard,
      onToolCall: deps.onToolCall,
    }).catch((err: unknown) => {
      // The summary is a help, not a gate: a model failure here leaves the parsed report.
      if (err instanceof ModelError)
        return { kind: 'stuck' as const, reason: 'retry-limit' as const, evidence: err.message };
      throw err;
    });
    if (result.kind !== 'done') {
      deps.log.info({ reason: result.reason }, 'the failure summary gave nothing; using the parsed report alone');
      return deterministic;
    }
    const s = FailureSummarySchema.parse(result.input);
    const where = s.locations.map((l) => `${l.path}:${l.line}`).join(', ');
    return [
      deterministic,
      '',
      `Likely cause: ${s.likely_cause}`,
      ...(where ? [`Look at: ${where}`] : []),
      ...(s.excerpt.trim() ? ['Excerpt:', s.excerpt.trim()] : []),
    ].join('\n');
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
