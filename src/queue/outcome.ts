/** How a job ended, as the worker, the metrics and the CLI read it. */
export type Outcome =
  | { kind: 'pr'; url: string; number: number; created: boolean }
  | { kind: 'stuck'; reason: string; evidence: string; failingCommand?: string }
  | { kind: 'needs-info'; questions: string[] }
  | { kind: 'checkpoint'; reasons: string[] }
  | { kind: 'revised'; sha: string | null; threads: number }
  /** A CI fix re-ran jobs that failed on a runner error. */
  | { kind: 'ci-rerun'; checks: string[] }
  /** A CI fix found nothing to do: a newer head, or no failed check any more. */
  | { kind: 'superseded' }
  | { kind: 'stopped'; by: string }
  | { kind: 'invalid-config'; problems: number };
