import { initTRPC, TRPCError } from '@trpc/server';
import { isExpired } from '../auth/tokens.ts';
import { DomainError } from '../domain/errors.ts';
import type { Principal, RoomId } from '../domain/types.ts';
import type { ConnectionHandle } from '../service/realtime-service.ts';
import { safeSuperjson } from './safe-superjson.ts';
import { describeZodError, findZodError, toTRPCError, trpcErrorOf, zodIssues } from './trpc-errors.ts';

/** Per-connection (ws) or per-request (http) context. The user id comes only from here. */
export interface Context {
  principal: Principal;
  /** The WebSocket connection; null for calls over HTTP. */
  connection: ConnectionHandle | null;
}

/** Decides whether a principal may use a conversation; replaceable through `authorizeJoin`. */
export type Authorize = (principal: Principal, conversationId: RoomId) => boolean | Promise<boolean>;

export const t = initTRPC.context<Context>().create({
  // superjson, with untrusted input checked before superjson walks it (safe-superjson.ts).
  transformer: safeSuperjson,
  // Stack traces never go on the wire, whatever NODE_ENV says.
  isDev: false,
  errorFormatter({ shape, error }) {
    const zodError = error.code === 'BAD_REQUEST' ? findZodError(error.cause) : undefined;
    if (zodError) {
      return { ...shape, message: `Invalid input: ${describeZodError(zodError)}`, data: { ...shape.data, issues: zodIssues(zodError).map((i) => ({ path: i.path.map(String), message: i.message })) } };
    }
    if (error.code === 'INTERNAL_SERVER_ERROR') return { ...shape, message: 'Internal server error' };
    // A rate limit or an outage says how long to wait (the typed client re-joins after it).
    const retryAfterMs = error.cause instanceof DomainError ? error.cause.retryAfterMs : undefined;
    if (retryAfterMs !== undefined) return { ...shape, data: { ...shape.data, retryAfterMs } };
    return shape;
  },
});

/** Maps domain errors once, and re-checks the token's expiry on every call. */
export const authedProcedure = t.procedure.use(async ({ ctx, next }) => {
  if (isExpired(ctx.principal)) throw trpcErrorOf(TOKEN_EXPIRED());
  const result = await next();
  if (!result.ok) {
    const mapped = toTRPCError(result.error.cause);
    if (mapped instanceof TRPCError) throw mapped;
  }
  return result;
});

const TOKEN_EXPIRED = () => new DomainError('TOKEN_EXPIRED', 'token expired');

/** The token's `exp` is checked on every call, not only when the connection opened. */
export function assertNotExpired(principal: Principal): void {
  if (isExpired(principal)) throw TOKEN_EXPIRED();
}

/**
 * The one access check: `authorize` (by default auth/tokens.ts's `canAccess`, the token's
 * `conversations` claim; replaceable through `authorizeJoin`) or FORBIDDEN_CONVERSATION.
 */
export async function requireAccess(authorize: Authorize, principal: Principal, conversationId: RoomId): Promise<void> {
  if (!(await authorize(principal, conversationId))) {
    throw new DomainError('FORBIDDEN_CONVERSATION', `not allowed in conversation ${conversationId}`);
  }
}
