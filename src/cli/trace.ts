import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { traceFileName } from '../agent/trace.js';

interface Event {
  at: string;
  type: string;
  stage?: string;
  phase?: string;
  result?: string;
  model?: string;
  tier?: string;
  usage?: Record<string, number>;
  costUsd?: number;
  durationMs?: number;
  tool?: string;
  ok?: boolean;
  errorCode?: string;
  name?: string;
  command?: string;
  exitCode?: number | null;
  timedOut?: boolean;
  message?: string;
  detail?: unknown;
}

/** The trace file of a job id (`owner/repo/issues/n/attempt-k`) or a path to one. */
export function resolveTraceFile(job: string, dataDir: string): string {
  if (existsSync(job)) return job;
  const file = path.join(dataDir, 'traces', traceFileName(job));
  if (!existsSync(file))
    throw new Error(`no trace for job "${job}" at ${file}; job ids look like owner/repo/issues/12/attempt-1`);
  return file;
}

function tokens(u: Record<string, number> | undefined): string {
  if (!u) return '';
  const input = (u.input_tokens ?? 0) + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
  return `${input} in (${u.cache_read_input_tokens ?? 0} cached) / ${u.output_tokens ?? 0} out`;
}

/** A readable timeline: offset, stage, step, tool or model, outcome, tokens, cost. */
export function renderTimeline(lines: string[]): string {
  const events = lines.filter((l) => l.trim()).map((l) => JSON.parse(l) as Event);
  if (events.length === 0) return '(empty trace)';
  const start = Date.parse(events[0]!.at);
  let step = 0;
  let cost = 0;
  const rows = events.map((e) => {
    const t = `+${((Date.parse(e.at) - start) / 1000).toFixed(1).padStart(6)}s`;
    switch (e.type) {
      case 'stage':
        return `${t}  ── ${e.stage} ${e.phase}${e.result ? ` (${e.result})` : ''}`;
      case 'model':
        step += 1;
        cost += e.costUsd ?? 0;
        return `${t}  ${String(e.stage).padEnd(8)} #${String(step).padEnd(3)} model ${e.model} [${e.tier}]  ${tokens(e.usage)}  $${(e.costUsd ?? 0).toFixed(4)}  ${e.durationMs} ms`;
      case 'tool':
        return `${t}  ${String(e.stage).padEnd(8)}      ${String(e.tool).padEnd(14)} ${e.ok ? 'ok' : `error ${e.errorCode}`}  ${e.durationMs} ms`;
      case 'command':
        return `${t}  ${String(e.stage).padEnd(8)}      $ ${e.command}  → ${e.timedOut ? 'timed out' : `exit ${e.exitCode}`}  ${e.durationMs} ms`;
      default:
        return `${t}  note: ${e.message}${e.detail === undefined ? '' : ` ${JSON.stringify(e.detail).slice(0, 300)}`}`;
    }
  });
  rows.push(`total: ${step} model calls, $${cost.toFixed(4)}`);
  return rows.join('\n');
}

export function printTrace(job: string, opts: { json?: boolean; dataDir: string }): string {
  const text = readFileSync(resolveTraceFile(job, opts.dataDir), 'utf8');
  return opts.json ? text : renderTimeline(text.split('\n'));
}
