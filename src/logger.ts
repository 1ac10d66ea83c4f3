import { pino, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/** Structured JSON logs on stdout. Tokens and secrets are never passed to it. */
export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'realtime' },
    redact: { paths: ['token', 'authorization', '*.token', '*.authorization', 'req.headers.authorization'], censor: '[redacted]' },
  });
}
