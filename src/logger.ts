import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * The app's logger: pino with secrets redacted wherever they might appear in a log object;
 * stdout unless `destination` is given. Stdout is written asynchronously: a pipe whose
 * reader falls behind (a log shipper, a terminal) must not stall webhook answers. pino
 * flushes what is pending when the process exits.
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({
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
  }, destination ?? pino.destination({ dest: 1, sync: false }));
}
