import type { IncomingMessage } from 'node:http';
import { TRPCError } from '@trpc/server';
import { isExpired } from '../auth/tokens.ts';
import { DomainError } from '../domain/errors.ts';
import type { Principal } from '../domain/types.ts';
import { trpcErrorOf } from './trpc-errors.ts';

/** Turns a bearer token (or null when none was sent) into a principal, or throws. */
export type Authenticate = (input: { token: string | null; req: IncomingMessage }) => Promise<Principal>;

/**
 * The caller's principal, or the error a client should see: UNAUTHORIZED saying what is wrong
 * with the token (missing, invalid, expired), or what an `authenticate` hook threw, mapped.
 */
export async function authenticateOrThrow(authenticate: Authenticate, token: string | null, req: IncomingMessage): Promise<Principal> {
  let principal: Principal;
  try {
    principal = await authenticate({ token, req });
  } catch (error) {
    throw toAuthError(error);
  }
  if (isExpired(principal)) throw trpcErrorOf(new DomainError('TOKEN_EXPIRED', 'token expired: reconnect with a fresh token'));
  return principal;
}

function toAuthError(error: unknown): TRPCError {
  if (error instanceof TRPCError) return error;
  if (error instanceof DomainError) return trpcErrorOf(error);
  return trpcErrorOf(new DomainError('UNAUTHENTICATED', 'invalid token'));
}
