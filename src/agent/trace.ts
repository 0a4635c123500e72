import type { EgressReport } from '../sandbox/egress/proxy.js';
import { appendFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { sanitise } from '../util/sanitise.js';

export type TraceEvent =
  | { type: 'stage'; stage: string; phase: 'start' | 'end'; result?: string; durationMs?: number; detail?: unknown }
  | {
      type: 'model';
      stage: string;
      model: string;
      tier: string;
      usage: Record<string, number>;
      costUsd: number;
      durationMs: number;
      stopReason: string | null;
    }
  | { type: 'tool'; stage: string; tool: string; ok: boolean; errorCode?: string; durationMs: number; input: unknown }
  | {
      type: 'command';
      stage: string;
      name: string;
      command: string;
      exitCode: number | null;
      timedOut: boolean;
      durationMs: number;
      output: string;
      egress?: EgressReport;
    }
  | { type: 'note'; message: string; detail?: unknown };

/** The file name of a job's trace. */
export function traceFileName(jobKey: string): string {
  return `${jobKey.replace(/[^A-Za-z0-9_.-]+/g, '_')}.jsonl`;
}

/** Sees every event any trace writes, with the trace it belongs to (metrics, for one). */
export type TraceListener = (event: TraceEvent, trace: Trace) => void;

/** A job's JSONL trace under DATA_DIR/traces, one line per event. */
export class Trace {
  private static readonly listeners = new Set<TraceListener>();
  readonly file: string;

  /**
   * Hands every event written from now on, by any trace of this process, to `listener`;
   * answers the function that stops it. Set once where the process is wired, so the
   * pipeline is measured from what it records instead of metric calls spread through it.
   */
  static listen(listener: TraceListener): () => void {
    Trace.listeners.add(listener);
    return () => {
      Trace.listeners.delete(listener);
    };
  }

  constructor(dataDir: string, jobKey: string) {
    const dir = path.join(dataDir, 'traces');
    mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, traceFileName(jobKey));
  }

  write(event: TraceEvent): void {
    // Command output and model text can carry what a repository printed: redact like a comment.
    appendFileSync(this.file, `${sanitise(JSON.stringify({ at: new Date().toISOString(), ...event }))}\n`);
    for (const listener of Trace.listeners) {
      try {
        listener(event, this);
      } catch {
        // An observer's fault must never end a job.
      }
    }
  }
}
