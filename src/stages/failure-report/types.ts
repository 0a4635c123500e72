/** The failure report's shapes: what every runner's parser returns. */

/** A test runner or checker whose output the failure report can read. */
export type TestRunner =
  | 'node-test'
  | 'vitest'
  | 'jest'
  | 'pytest'
  | 'go-test'
  | 'cargo-test'
  | 'tsc'
  | 'eslint'
  | 'unknown';

export interface FailureLocation {
  file: string;
  line?: number;
  column?: number;
}

export interface FailingItem {
  runner: TestRunner;
  /** The failing test (with its suite path where printed) or the diagnostic's code or rule. */
  name: string;
  /** The first line(s) of the error message. */
  message: string;
  location?: FailureLocation;
}

export interface ParsedFailure {
  /** The runner the output is mostly from; `unknown` when none was recognised. */
  runner: TestRunner;
  failures: FailingItem[];
  /** The runner's own count line, e.g. "2 failed, 5 passed", when it prints one. */
  summary?: string;
}

/** What one runner's parser reads from the output. */
export interface RunnerResult {
  failures: FailingItem[];
  summary?: string;
}
