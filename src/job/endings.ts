import { ModelError } from '../agent/model.js';
import type { Stuck } from '../agent/stuck.js';
import { inlineCode, plain } from '../report/status.js';
import { EnvironmentError } from '../sandbox/environment/image-store.js';
import type { CheckResult } from '../stages/validate.js';

/** Thrown at the next step after the worker began shutting down; the job is resumed later. */
export class Interrupted extends Error {
  constructor() {
    super('interrupted: the worker is shutting down');
    this.name = 'Interrupted';
  }
}

/** Thrown at the next step after a writer asked the job to stop. */
export class Stopped extends Error {
  constructor(readonly by: string) {
    super(`stopped by ${by}`);
  }
}

/** Thrown anywhere in a job to end it in an escalation with a reason. */
export class Escalation extends Error {
  constructor(
    readonly stuck: Stuck | { reason: string; evidence: string },
    readonly failure?: CheckResult,
  ) {
    super(stuck.evidence);
  }
}

/** The escalation an error ends the job in, when it is one the job reports (a model refusing, say). */
export function toEscalation(err: unknown): Escalation | undefined {
  if (err instanceof Escalation) return err;
  if (err instanceof EnvironmentError) {
    const failure: CheckResult | undefined = err.command && {
      name: 'setup',
      command: err.command.command,
      ok: false,
      exitCode: null,
      timedOut: false,
      durationMs: 0,
      tail: err.command.tail,
      output: err.command.tail,
    };
    return new Escalation(
      {
        reason: err.kind === 'setup-failed' ? 'setup-failed' : 'environment-unavailable',
        evidence: environmentEvidence(err),
      },
      failure,
    );
  }
  if (err instanceof ModelError)
    return new Escalation({
      reason: err.kind === 'refused' ? 'model-refused' : 'model-unavailable',
      evidence: err.message,
    });
  return undefined;
}

/**
 * The image (a code span), the command that failed (another), and why. Details are our own
 * text for a devcontainer this app cannot use and for a failed setup; for the rest they
 * quote a registry's or a tool's answer, which is shown as inert text.
 */
function environmentEvidence(err: EnvironmentError): string {
  const image = inlineCode(err.image, 300);
  if (err.command) return `${image}: its setup command ${inlineCode(err.command.command, 300)} ${err.detail}`;
  return `${image}: ${err.kind === 'unsupported' ? err.detail : plain(err.detail, 1000)}`;
}
