import { createGraphQLError } from 'graphql-yoga';
import { canAccess } from '../auth/tokens.ts';
import { isConversationId } from '../domain/conversation-id.ts';
import type { AdminContext } from './context.ts';

/**
 * Role checks inside resolvers. The request plugin already turned away everyone who is not
 * admin or service; these keep service tokens to the publishing mutations.
 */
export function requireAdmin(ctx: AdminContext): void {
  if (ctx.principal.role !== 'admin') throw forbidden('this field needs an admin token');
}

export function requirePublisher(ctx: AdminContext): void {
  if (ctx.principal.role !== 'admin' && ctx.principal.role !== 'service') throw forbidden('this mutation needs an admin or service token');
}

/**
 * A service token publishes only into the conversations its `conversations` claim lists (`*`:
 * all; no claim: none), like a user token; an admin token anywhere.
 */
export function requireConversation(ctx: AdminContext, conversationId: string): void {
  if (ctx.principal.role !== 'admin' && !canAccess(ctx.principal, conversationId)) {
    throw forbidden(`not allowed in conversation ${conversationId}: not in this service token's conversations claim`);
  }
}

export function forbidden(message: string) {
  return createGraphQLError(message, { extensions: { code: 'FORBIDDEN', http: { status: 403 } } });
}

export function badInput(message: string) {
  return createGraphQLError(message, { extensions: { code: 'BAD_USER_INPUT', http: { status: 400 } } });
}

export function validConversationId(value: string): string {
  if (!isConversationId(value)) throw badInput('conversationId must be 1–128 characters of A-Z a-z 0-9 _ . : -');
  return value;
}
