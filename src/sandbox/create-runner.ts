import type { Logger } from 'pino';
import { createBwrapRunner } from './bwrap.js';
import type { Runner, RunnerOptions } from './runner.js';
import { createUnsandboxedRunner } from './unsandboxed.js';

/**
 * The runner the app uses, made once at start-up: bwrap fails here, naming the install
 * command, when bubblewrap is missing or unusable; 'unsandboxed' (also spelled 'none') is
 * the explicit opt-in to no isolation and says so loudly.
 */
export function createRunner(backend: 'bwrap' | 'unsandboxed' | 'none', log: Logger, opts: RunnerOptions = {}): Runner {
  if (backend === 'bwrap') return createBwrapRunner(log, opts);
  return createUnsandboxedRunner(log, opts);
}
