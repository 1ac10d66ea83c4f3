import type { IncomingMessage } from 'node:http';
import { TRPCError } from '@trpc/server';
import type { Plugin } from 'graphql-yoga';
import { DomainError } from '../domain/errors.ts';
import type { Principal } from '../domain/types.ts';

/**
 * Authentication before parsing (notes/graphql-yoga.md §5): a request without a valid admin or
 * service token ends here with 401/403 and learns nothing about the schema — no validation
 * errors, no introspection. Only GraphiQL's own HTML page (which holds no schema) is served
 * without a token, when GraphiQL is enabled; the queries it sends need one like any other.
 */
export function useRequireAdmin(options: {
  verify: (token: string, req: IncomingMessage | undefined) => Promise<Principal>;
  principals: WeakMap<Request, Principal>;
  graphiql: boolean;
}): Plugin {
  return {
    async onRequest({ request, endResponse, fetchAPI, serverContext }) {
      if (options.graphiql && request.method === 'GET' && (request.headers.get('accept') ?? '').includes('text/html')) return;
      const match = /^Bearer\s+(\S+)$/i.exec(request.headers.get('authorization') ?? '');
      let principal: Principal | null = null;
      let refusal = 'an admin token is required (Authorization: Bearer <token>)';
      if (match) {
        try {
          principal = await options.verify(match[1]!, (serverContext as { req?: IncomingMessage } | undefined)?.req);
        } catch (error) {
          principal = null;
          refusal = tokenRefusal(error);
        }
      }
      const refuse = (status: number, code: string, message: string) =>
        endResponse(
          new fetchAPI.Response(JSON.stringify({ errors: [{ message, extensions: { code } }] }), {
            status,
            headers: { 'content-type': 'application/json', ...(status === 401 && { 'www-authenticate': 'Bearer' }) },
          }),
        );
      if (!principal) return refuse(401, 'UNAUTHENTICATED', refusal);
      if (principal.role !== 'admin' && principal.role !== 'service') return refuse(403, 'FORBIDDEN', 'the admin plane needs a token with role admin');
      options.principals.set(request, principal);
    },
  };
}

/**
 * Why a token that was sent is refused, in the words tRPC callers get (transport/authenticate.ts):
 * the verifier's UNAUTHENTICATED message (invalid, expired, too long-lived, signed before a dev
 * restart…), an `authenticate` hook's UNAUTHORIZED message, otherwise just "invalid token".
 */
function tokenRefusal(error: unknown): string {
  if (error instanceof DomainError && error.code === 'UNAUTHENTICATED') return error.message;
  if (error instanceof TRPCError && error.code === 'UNAUTHORIZED') return error.message;
  return 'invalid token';
}
