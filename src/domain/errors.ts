/**
 * The one domain error type. Each plane maps `code` in exactly one place
 * (tRPC: transport/trpc-errors.ts; WebSocket close codes: transport/close-codes.ts).
 */
export type DomainErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN_CONVERSATION'
  | 'NOT_A_MEMBER'
  | 'ACK_UNKNOWN'
  | 'ACK_NOT_EXPECTED'
  | 'MESSAGE_NOT_FOUND'
  | 'NOT_SENDER'
  | 'RATE_LIMITED'
  | 'MESSAGE_TOO_LARGE'
  | 'WEBSOCKET_REQUIRED'
  | 'SHUTTING_DOWN'
  /** A per-user or per-connection limit (connections, rooms, subscriptions) is reached. */
  | 'LIMIT_EXCEEDED'
  /** Event data a publisher gave cannot be delivered (not plain JSON, a forbidden key, too deep or large). */
  | 'INVALID_EVENT_DATA'
  /** Cluster mode: Redis is unreachable; retry after `retryAfterMs`. */
  | 'UNAVAILABLE';

export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    /** For RATE_LIMITED and UNAVAILABLE: how long to wait before trying again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function isDomainError(value: unknown): value is DomainError {
  return value instanceof DomainError;
}
