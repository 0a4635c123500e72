/**
 * Runs fn up to `attempts` times with exponential backoff, unless `retryable` says the
 * failure is permanent (a rejected push will not succeed by asking again).
 */
export async function withRetries<T>(
  fn: (attempt: number) => Promise<T>,
  opts: {
    attempts: number;
    baseDelayMs: number;
    retryable?: (err: unknown) => boolean;
    onRetry?: (err: unknown, attempt: number) => void;
  },
): Promise<T> {
  let lastError: unknown;
  for (let attempt = 1; attempt <= opts.attempts; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      lastError = err;
      if (attempt === opts.attempts || (opts.retryable && !opts.retryable(err))) break;
      opts.onRetry?.(err, attempt);
      await new Promise((r) => setTimeout(r, opts.baseDelayMs * 2 ** (attempt - 1)));
    }
  }
  throw lastError;
}
