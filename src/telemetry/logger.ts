import { pino, type DestinationStream, type Logger } from 'pino';

/** Log output waiting for a stuck reader beyond this is dropped rather than held in memory. */
const MAX_PENDING_LOG_BYTES = 16 * 1024 * 1024;

/**
 * The app's logger: pino with secrets redacted wherever they might appear in a log object;
 * stdout unless `destination` is given. Stdout is written asynchronously: a pipe whose
 * reader falls behind (a log shipper, a terminal) must not stall webhook answers. pino
 * flushes what is pending when the process exits; past 16 MiB pending, lines are dropped.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'token',
          '*.token',
          'privateKey',
          '*.privateKey',
          'secret',
          '*.secret',
          'apiKey',
          '*.apiKey',
          'headers.authorization',
          '*.headers.authorization',
          'req.headers.authorization',
          'request.headers.authorization',
          'env.ANTHROPIC_API_KEY',
          'env.PRIVATE_KEY',
          'env.WEBHOOK_SECRET',
          'config.privateKey',
          'config.anthropicApiKey',
          'config.webhookSecret',
        ],
        censor: '[REDACTED]',
      },
    },
    destination ?? pino.destination({ dest: 1, sync: false, maxLength: MAX_PENDING_LOG_BYTES }),
  );
}
