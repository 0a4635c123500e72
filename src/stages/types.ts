import type { Logger } from 'pino';
import type { ModelClient } from '../agent/model.js';
import type { Stuck, StuckLimits } from '../agent/stuck.js';
import type { Trace } from '../agent/trace.js';
import type { Runner } from '../sandbox/runner.js';
import type { PathPolicy } from '../agent/tools/path-policy.js';

export type StageResult<T> =
  | { kind: 'done'; value: T }
  | ({ kind: 'stuck' } & Stuck)
  | { kind: 'needs-info'; questions: string[] };

/** What every model-driven stage needs: the model, the sandbox and the work tree. */
export interface StageDeps {
  model: ModelClient;
  runner: Runner;
  workTree: string;
  sandboxReadOnlyPaths: string[];
  trace: Trace;
  log: Logger;
  onToolCall?: (tool: string, ok: boolean, errorCode?: string) => void;
  /** Job-wide budgets and wall clock, checked before every model call. */
  guard?: () => Stuck | undefined;
  /** The repository's stuck-detector limits. */
  stuckLimits?: StuckLimits;
  /** The repository's paths the agent may and may not edit (`.github/agent.yml` paths). */
  pathPolicy?: PathPolicy;
  /** Aborted when a writer asks the job to stop: running commands are killed. */
  signal?: AbortSignal;
}
