import type { Outcome } from '../../queue/outcome.js';
import type { StatusPhase } from '../../report/status.js';
import type { JobContext } from '../context.js';

/**
 * A kind of job: its stages in order, run by the lifecycle (lifecycle.ts), which owns what
 * every kind shares. A new kind is a new file here and one entry in JOB_KINDS.
 */
export interface JobKind {
  /** The phase the status comment shows first. */
  firstPhase: StatusPhase;
  /** Whether an escalation pushes the stopped work to a WIP branch (where the repository asks). */
  keepsWip: boolean;
  /** The stages, after the lifecycle's setup, to the delivery; an escalation is thrown. */
  run(ctx: JobContext): Promise<Outcome>;
  /** After the escalation is reported: what the kind leaves behind that the next attempt must not reuse. */
  afterEscalation?(ctx: JobContext): Promise<void>;
}
