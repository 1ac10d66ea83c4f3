import { GraphQLError } from 'graphql';
import { createGraphQLError, maskError as yogaMaskError } from 'graphql-yoga';
import { DomainError, type DomainErrorCode } from '../domain/errors.ts';

/**
 * The one place where domain errors become GraphQL errors (the tRPC plane has its own in
 * transport/trpc-errors.ts). A domain error is the caller's to read — its message names the
 * problem — so it is not masked; everything else is, as Yoga does by default.
 */
const CODES: Partial<Record<DomainErrorCode, { code: string; status: number }>> = {
  INVALID_EVENT_DATA: { code: 'BAD_USER_INPUT', status: 400 },
  MESSAGE_TOO_LARGE: { code: 'BAD_USER_INPUT', status: 400 },
  FORBIDDEN_CONVERSATION: { code: 'FORBIDDEN', status: 403 },
  RATE_LIMITED: { code: 'TOO_MANY_REQUESTS', status: 429 },
  UNAVAILABLE: { code: 'SERVICE_UNAVAILABLE', status: 503 },
  SHUTTING_DOWN: { code: 'SERVICE_UNAVAILABLE', status: 503 },
};

export function maskError(error: unknown, message: string, isDev?: boolean): Error {
  const original = error instanceof GraphQLError ? error.originalError : error;
  if (original instanceof DomainError) {
    const mapped = CODES[original.code];
    if (mapped) {
      const path = error instanceof GraphQLError ? error.path : undefined;
      return createGraphQLError(original.message, { ...(path && { path }), extensions: { code: mapped.code, http: { status: mapped.status } } });
    }
  }
  return yogaMaskError(error, message, isDev);
}
