/** Exit codes of `issue-agent run`. */
export const EXIT = {
  /** A branch with a validated change, and its report. */
  branch: 0,
  /** The pipeline ran and stopped without a branch: stuck, or it needs more information. */
  noBranch: 1,
  /** Nothing ran: bad arguments, no model key, not a checkout, an invalid config, no sandbox. */
  cannotStart: 2,
  /** Stopped with Ctrl-C. */
  interrupted: 130,
} as const;
