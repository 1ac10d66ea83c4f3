import { TRPCError } from '@trpc/server';
import type { TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import { ZodError } from 'zod';
import { DomainError, type DomainErrorCode } from '../domain/errors.ts';

/** The one place where domain errors become tRPC errors. */
export const TRPC_CODES: Readonly<Record<DomainErrorCode, TRPC_ERROR_CODE_KEY>> = {
  UNAUTHENTICATED: 'UNAUTHORIZED',
  TOKEN_EXPIRED: 'UNAUTHORIZED',
  FORBIDDEN_CONVERSATION: 'FORBIDDEN',
  NOT_A_MEMBER: 'PRECONDITION_FAILED',
  ACK_UNKNOWN: 'NOT_FOUND',
  ACK_NOT_EXPECTED: 'FORBIDDEN',
  MESSAGE_NOT_FOUND: 'NOT_FOUND',
  NOT_SENDER: 'FORBIDDEN',
  RATE_LIMITED: 'TOO_MANY_REQUESTS',
  MESSAGE_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  WEBSOCKET_REQUIRED: 'METHOD_NOT_SUPPORTED',
  SHUTTING_DOWN: 'SERVICE_UNAVAILABLE',
  UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  LIMIT_EXCEEDED: 'TOO_MANY_REQUESTS',
  INVALID_EVENT_DATA: 'BAD_REQUEST',
  BAD_FRAME: 'PARSE_ERROR',
  INVALID_INPUT: 'BAD_REQUEST',
  INVALID_REQUEST: 'BAD_REQUEST',
  BATCH_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  METHOD_NOT_SUPPORTED: 'METHOD_NOT_SUPPORTED',
};

/** A domain error as tRPC's error (the DomainError is its cause: the formatter reads `retryAfterMs` there). */
export function trpcErrorOf(error: DomainError): TRPCError {
  return new TRPCError({ code: TRPC_CODES[error.code], message: error.message, cause: error });
}

/** `error` mapped when it is a DomainError; anything else as it is. */
export function toTRPCError(error: unknown): unknown {
  return error instanceof DomainError ? trpcErrorOf(error) : error;
}

/** "body: Too small…; conversationId: …" — every issue, each naming its field. */
export function describeZodError(error: ZodError): string {
  return zodIssues(error).map((i) => `${i.path.length > 0 ? i.path.join('.') : 'input'}: ${i.message}`).join('; ');
}

type Issue = ZodError['issues'][number];

/**
 * The issues with each union failure replaced by the branch that got furthest, so
 * `ack: { timeoutMs: 1.5 }` names `ack.timeoutMs` rather than a bare "ack: Invalid input".
 */
export function zodIssues(error: ZodError): Array<{ path: PropertyKey[]; message: string }> {
  return error.issues.flatMap(flattenIssue);
}

function flattenIssue(issue: Issue): Array<{ path: PropertyKey[]; message: string }> {
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const depth = (branch: Issue[]) => Math.max(0, ...branch.map((i) => i.path.length));
    const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
    if (depth(best) > 0) return best.flatMap((inner) => flattenIssue({ ...inner, path: [...issue.path, ...inner.path] } as Issue));
  }
  return [{ path: issue.path, message: issue.message }];
}

export function findZodError(error: unknown): ZodError | undefined {
  if (error instanceof ZodError) return error;
  if (error instanceof Error && error.cause instanceof ZodError) return error.cause;
  return undefined;
}
