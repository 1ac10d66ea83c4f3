import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';

export type Logger = PinoLogger;

/**
 * What is masked wherever it appears in a log object. Tokens and secrets are never passed to the
 * logger on purpose; these catch what might slip in with something else:
 * - `command.args` of a Redis error: ioredis attaches the failed command to its errors, and when
 *   the password in REDIS_URL is refused it fails every queued command with the AUTH error,
 *   whose args are the user name and password (`{ err }` is how they reach the log).
 * - the secret fields of Config, should a configuration object ever be logged.
 */
const REDACT_PATHS = [
  'token',
  'authorization',
  '*.token',
  '*.authorization',
  'req.headers.authorization',
  '*.command.args',
  ...['authSecret', 'metricsToken', 'redisUrl'].flatMap((key) => [key, `*.${key}`]),
];

/** Structured JSON logs on stdout (or `destination`). */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, base: { service: 'realtime' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}
