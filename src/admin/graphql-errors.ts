import { GraphQLError } from 'graphql';
import { createGraphQLError, maskError as yogaMaskError } from 'graphql-yoga';
import { DomainError, type DomainErrorCode } from '../domain/errors.ts';

/**
 * The one place where domain errors become GraphQL errors (the tRPC plane has its own in
 * transport/trpc-errors.ts): every code has its `extensions.code` and HTTP status, and a rate
 * limit or an outage its `extensions.retryAfterMs`. A domain error is the caller's to read — its
 * message names the problem — so it is not masked; everything else is, as Yoga does by default.
 */
export const GRAPHQL_CODES: Readonly<Record<DomainErrorCode, { code: string; status: number }>> = {
  UNAUTHENTICATED: { code: 'UNAUTHENTICATED', status: 401 },
  TOKEN_EXPIRED: { code: 'UNAUTHENTICATED', status: 401 },
  FORBIDDEN_CONVERSATION: { code: 'FORBIDDEN', status: 403 },
  NOT_A_MEMBER: { code: 'PRECONDITION_FAILED', status: 412 },
  ACK_UNKNOWN: { code: 'NOT_FOUND', status: 404 },
  ACK_NOT_EXPECTED: { code: 'FORBIDDEN', status: 403 },
  MESSAGE_NOT_FOUND: { code: 'NOT_FOUND', status: 404 },
  NOT_SENDER: { code: 'FORBIDDEN', status: 403 },
  RATE_LIMITED: { code: 'TOO_MANY_REQUESTS', status: 429 },
  LIMIT_EXCEEDED: { code: 'TOO_MANY_REQUESTS', status: 429 },
  MESSAGE_TOO_LARGE: { code: 'BAD_USER_INPUT', status: 400 },
  INVALID_EVENT_DATA: { code: 'BAD_USER_INPUT', status: 400 },
  INVALID_INPUT: { code: 'BAD_USER_INPUT', status: 400 },
  BAD_FRAME: { code: 'BAD_REQUEST', status: 400 },
  INVALID_REQUEST: { code: 'BAD_REQUEST', status: 400 },
  BATCH_TOO_LARGE: { code: 'PAYLOAD_TOO_LARGE', status: 413 },
  WEBSOCKET_REQUIRED: { code: 'METHOD_NOT_SUPPORTED', status: 405 },
  METHOD_NOT_SUPPORTED: { code: 'METHOD_NOT_SUPPORTED', status: 405 },
  SHUTTING_DOWN: { code: 'SERVICE_UNAVAILABLE', status: 503 },
  UNAVAILABLE: { code: 'SERVICE_UNAVAILABLE', status: 503 },
};

export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof DomainError) {
    const mapped = GRAPHQL_CODES[original.code];
    const path = error instanceof GraphQLError ? error.path : undefined;
    const retry = original.retryAfterMs !== undefined ? { retryAfterMs: original.retryAfterMs } : {};
    return createGraphQLError(original.message, { ...(path && { path }), extensions: { code: mapped.code, ...retry, http: { status: mapped.status } } });
  }
  return yogaMaskError(error, message, isDev);
}

/**
 * The domain error inside what Yoga hands its logger, if any. Yoga logs at error every error
 * whose mapping replaced it; a domain error is the caller's refusal, not our failure, so the admin
 * plane logs it at debug, without a stack, instead.
 */
export function domainRefusal(args: unknown[]): DomainError | undefined {
  for (const arg of args) {
    const original = arg instanceof GraphQLError ? arg.originalError : arg;
    if (original instanceof DomainError) return original;
  }
  return undefined;
}
