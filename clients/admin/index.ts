/**
 * A typed client for the GraphQL admin plane, on the documents generated from
 * clients/admin/operations.graphql (`npm run codegen`). Plain `fetch` to `/graphql` with
 * `Authorization: Bearer <token>`; every method returns the typed result and throws an
 * `AdminClientError` (HTTP status plus `extensions.code`) on any error.
 *
 *   const admin = createAdminClient({ url: 'http://localhost:3000', token });
 *   const { rooms } = await admin.rooms({ first: 10, orderBy: 'ACTIVITY' });
 */
import {
  BroadcastSystemEventDocument,
  CloseRoomDocument,
  DeliveryReportDocument,
  DisconnectUserDocument,
  NodesDocument,
  PendingAcksDocument,
  RoomDocument,
  RoomsDocument,
  StatsDocument,
  UpdateConversationDocument,
  UserDocument,
  type DeliveryReportQuery,
  type NodesQuery,
  type PendingAcksQuery,
  type RoomOrder,
  type RoomQuery,
  type RoomsQuery,
  type StatsQuery,
  type TypedDocumentString,
  type UserQuery,
} from './__generated__/graphql.ts';

export type { RoomOrder };
export type BroadcastStats = StatsQuery['stats'];
export type RoomPage = RoomsQuery['rooms'];
export type RoomSummary = RoomPage['edges'][number]['node'];
export type RoomDetail = NonNullable<RoomQuery['room']>;
export type UserPresence = NonNullable<UserQuery['user']>;
export type PendingAck = PendingAcksQuery['pendingAcks'][number];
export type DeliveryReport = NonNullable<DeliveryReportQuery['deliveryReport']>;
export type NodeStats = NodesQuery['nodes'][number];

export interface AdminClientOptions {
  /** The server (`http://localhost:3000`) or its GraphQL endpoint (`…/graphql`). */
  url: string;
  /** A JWT with `role: admin` (or `service`, for the publishing mutations only). */
  token: string;
  /** Defaults to the global `fetch`. */
  fetch?: typeof fetch;
  /** Per-request timeout in milliseconds (default 10 000; 0 = none). */
  timeoutMs?: number;
}

export interface GraphQLErrorShape {
  message: string;
  path?: ReadonlyArray<string | number>;
  extensions?: { code?: string } & Record<string, unknown>;
}

/** Any failed admin call: transport, HTTP or GraphQL. */
export class AdminClientError extends Error {
  override readonly name = 'AdminClientError';
  /** HTTP status of the response; 0 when the server could not be reached. */
  readonly status: number;
  /** `extensions.code` of the first GraphQL error (UNAUTHENTICATED, FORBIDDEN, BAD_USER_INPUT, …), or NETWORK_ERROR / BAD_RESPONSE. */
  readonly code: string | undefined;
  /** Every GraphQL error of the response. */
  readonly errors: readonly GraphQLErrorShape[];

  constructor(message: string, details: { status: number; code: string | undefined; errors?: readonly GraphQLErrorShape[]; cause?: unknown }) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.status = details.status;
    this.code = details.code;
    this.errors = details.errors ?? [];
  }
}

export interface AdminClient {
  /** Runs any generated document (or another TypedDocumentString) and returns its data. */
  request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables?: TVariables): Promise<TResult>;
  stats(): Promise<BroadcastStats>;
  rooms(args?: { first?: number; after?: string | null; orderBy?: RoomOrder }): Promise<RoomPage>;
  /** Every active room, following the cursors page by page. */
  allRooms(args?: { pageSize?: number; orderBy?: RoomOrder }): Promise<RoomSummary[]>;
  room(conversationId: string): Promise<RoomDetail | null>;
  user(userId: string): Promise<UserPresence | null>;
  pendingAcks(args?: { conversationId?: string; first?: number }): Promise<PendingAck[]>;
  deliveryReport(messageId: string): Promise<DeliveryReport | null>;
  nodes(): Promise<NodeStats[]>;
  broadcastSystemEvent(args: { conversationId: string; event: string; data?: unknown }): Promise<boolean>;
  updateConversation(args: { conversationId: string; changes: Record<string, unknown> }): Promise<boolean>;
  /** Ends every subscription of the room; resolves with the connections affected. */
  closeRoom(args: { conversationId: string; reason?: string }): Promise<number>;
  /** Closes every connection of the user (terminal close code 4500); resolves with how many. */
  disconnectUser(args: { userId: string; reason?: string }): Promise<number>;
}

export function graphqlEndpoint(url: string): string {
  const u = new URL(url);
  if (!/\/graphql\/?$/.test(u.pathname)) u.pathname = `${u.pathname.replace(/\/+$/, '')}/graphql`;
  return u.toString();
}

export function createAdminClient(options: AdminClientOptions): AdminClient {
  const endpoint = graphqlEndpoint(options.url);
  const doFetch = options.fetch ?? fetch;
  const timeoutMs = options.timeoutMs ?? 10_000;

  async function request<TResult, TVariables>(document: TypedDocumentString<TResult, TVariables>, variables?: TVariables): Promise<TResult> {
    let response: Response;
    try {
      response = await doFetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          authorization: `Bearer ${options.token}`,
        },
        body: JSON.stringify({ query: document.toString(), ...(variables !== undefined && { variables }) }),
        ...(timeoutMs > 0 && { signal: AbortSignal.timeout(timeoutMs) }),
      });
    } catch (error) {
      // undici says "fetch failed"; the cause names what happened (ECONNREFUSED, ENOTFOUND, …).
      const cause = error instanceof Error ? (error.cause as { code?: string; message?: string } | undefined) : undefined;
      const reason = cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
      throw new AdminClientError(`cannot reach ${endpoint}: ${reason}`, { status: 0, code: 'NETWORK_ERROR', cause: error });
    }
    const text = await response.text();
    let body: { data?: unknown; errors?: GraphQLErrorShape[] } | undefined;
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = undefined;
    }
    const errors = Array.isArray(body?.errors) ? body.errors : [];
    if (errors.length > 0) {
      const first = errors[0]!;
      throw new AdminClientError(first.message, { status: response.status, code: first.extensions?.code, errors });
    }
    if (!response.ok) {
      throw new AdminClientError(`HTTP ${response.status} ${response.statusText}`.trim(), { status: response.status, code: codeForStatus(response.status) });
    }
    if (body?.data === undefined || body.data === null) {
      throw new AdminClientError('the server answered without data', { status: response.status, code: 'BAD_RESPONSE' });
    }
    return body.data as TResult;
  }

  const client: AdminClient = {
    request,
    stats: async () => (await request(StatsDocument)).stats,
    rooms: async ({ first, after, orderBy } = {}) =>
      (await request(RoomsDocument, { ...(first !== undefined && { first }), ...(after != null && { after }), ...(orderBy !== undefined && { orderBy }) })).rooms,
    async allRooms({ pageSize = 100, orderBy } = {}) {
      const all: RoomSummary[] = [];
      let after: string | null = null;
      for (;;) {
        const page: RoomPage = await client.rooms({ first: pageSize, after, ...(orderBy !== undefined && { orderBy }) });
        all.push(...page.edges.map((e) => e.node));
        if (!page.pageInfo.hasNextPage || page.pageInfo.endCursor === null) return all;
        after = page.pageInfo.endCursor;
      }
    },
    room: async (conversationId) => (await request(RoomDocument, { conversationId })).room,
    user: async (userId) => (await request(UserDocument, { userId })).user,
    pendingAcks: async ({ conversationId, first } = {}) =>
      (await request(PendingAcksDocument, { ...(conversationId !== undefined && { conversationId }), ...(first !== undefined && { first }) })).pendingAcks,
    deliveryReport: async (messageId) => (await request(DeliveryReportDocument, { messageId })).deliveryReport,
    nodes: async () => (await request(NodesDocument)).nodes,
    broadcastSystemEvent: async ({ conversationId, event, data }) =>
      (await request(BroadcastSystemEventDocument, { conversationId, event, ...(data !== undefined && { data }) })).broadcastSystemEvent,
    updateConversation: async ({ conversationId, changes }) => (await request(UpdateConversationDocument, { conversationId, changes })).updateConversation,
    closeRoom: async ({ conversationId, reason }) => (await request(CloseRoomDocument, { conversationId, ...(reason !== undefined && { reason }) })).closeRoom,
    disconnectUser: async ({ userId, reason }) => (await request(DisconnectUserDocument, { userId, ...(reason !== undefined && { reason }) })).disconnectUser,
  };
  return client;
}

function codeForStatus(status: number): string {
  switch (status) {
    case 401:
      return 'UNAUTHENTICATED';
    case 403:
      return 'FORBIDDEN';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'TOO_MANY_REQUESTS';
    default:
      return status >= 500 ? 'INTERNAL_SERVER_ERROR' : 'BAD_REQUEST';
  }
}
