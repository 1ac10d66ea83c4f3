import { GraphQLError, Kind, parse, type DocumentNode } from 'graphql';
import { createGraphQLError, type Plugin } from 'graphql-yoga';
import type { Principal } from '../domain/types.ts';

/** The only fields a `service` token may select: the publishing mutations. */
const SERVICE_FIELDS = new Set(['broadcastSystemEvent', 'updateConversation', '__typename']);

/**
 * Keeps `service` tokens to the publishing mutations, before validation runs, so a service
 * token cannot map the rest of the schema through validation errors or introspection either.
 */
export function useServiceScope(principals: WeakMap<Request, Principal>): Plugin {
  return {
    onParams({ request, params }) {
      if (principals.get(request)?.role !== 'service') return;
      let document: DocumentNode;
      try {
        document = parse(params.query ?? '');
      } catch (error) {
        if (error instanceof GraphQLError) throw createGraphQLError('syntax error', { extensions: { code: 'GRAPHQL_PARSE_FAILED', http: { status: 400 } } });
        throw error;
      }
      const allowed = document.definitions.every(
        (d) =>
          d.kind === Kind.OPERATION_DEFINITION &&
          d.operation === 'mutation' &&
          d.selectionSet.selections.every((s) => s.kind === Kind.FIELD && SERVICE_FIELDS.has(s.name.value)),
      );
      if (!allowed) {
        throw createGraphQLError('a service token may only call broadcastSystemEvent and updateConversation', {
          extensions: { code: 'FORBIDDEN', http: { status: 403 } },
        });
      }
    },
  };
}
