/**
 * The one domain error type, and the closed list of what can go wrong. Each plane maps `code` in
 * exactly one place (tRPC: transport/trpc-errors.ts; GraphQL: admin/graphql-errors.ts; WebSocket
 * close codes: transport/close-codes.ts); the README's error table lists all three.
 */
export type DomainErrorCode =
  /** No token, or one that does not verify (also: connectionParams missing or malformed). */
  | 'UNAUTHENTICATED'
  /** The token's `exp` has passed (checked on every call, not only at connect). */
  | 'TOKEN_EXPIRED'
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
  | 'UNAVAILABLE'
  /** A frame or input that cannot be read: not JSON, binary, not a tRPC request, unreadable superjson. */
  | 'BAD_FRAME'
  /** Input that fails its schema; the cause is the ZodError (the tRPC formatter lists its issues). */
  | 'INVALID_INPUT'
  /** A well-formed request the protocol refuses: a duplicate id, an HTTP batch over MAX_HTTP_BATCH. */
  | 'INVALID_REQUEST'
  /** A WebSocket frame with more calls than MAX_WS_BATCH. */
  | 'BATCH_TOO_LARGE'
  /** A procedure that does not exist as that kind of call on this transport. */
  | 'METHOD_NOT_SUPPORTED';

export class DomainError extends Error {
  override readonly name = 'DomainError';
  constructor(
    readonly code: DomainErrorCode,
    message: string,
    /** For RATE_LIMITED and UNAVAILABLE: how long to wait before trying again. */
    readonly retryAfterMs?: number,
    /** What caused it, e.g. the ZodError of INVALID_INPUT. */
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}
