/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type { DocumentTypeDecoration } from '@graphql-typed-document-node/core';
export type DeliveryStatus =
  | 'delivered'
  | 'failed'
  | 'partial'
  | 'pending';

export type RoomOrder =
  /** Most recently active first. */
  | 'ACTIVITY'
  /** Alphabetical by conversation id. */
  | 'ID'
  /** Most members first. */
  | 'MEMBERS'
  /** Most messages broadcast first. */
  | 'MESSAGES';

export type PercentilesFragment = { p50: number, p95: number, p99: number, max: number, count: number };

export type StatsQueryVariables = Exact<{ [key: string]: never; }>;


export type StatsQuery = { stats: { activeRooms: number, connections: number, users: number, messagesBroadcast: number, deliveries: number, pendingAcks: number, acksDelivered: number, acksPartial: number, acksFailed: number, slowConsumerCloses: number, uptimeSeconds: number, at: string, connectionsByTransport: { websocket: number, sse: number }, deliveryLatencyMs: { p50: number, p95: number, p99: number, max: number, count: number }, ackLatencyMs: { p50: number, p95: number, p99: number, max: number, count: number }, memory: { rssBytes: number, heapUsedBytes: number } } };

export type RoomsQueryVariables = Exact<{
  first?: number | null | undefined;
  after?: string | null | undefined;
  orderBy?: RoomOrder | null | undefined;
}>;


export type RoomsQuery = { rooms: { totalCount: number, pageInfo: { hasNextPage: boolean, endCursor: string | null }, edges: Array<{ cursor: string, node: { conversationId: string, memberCount: number, connectionCount: number, messagesBroadcast: number, pendingAcks: number, lastActivityAt: string, typing: Array<string> } }> } };

export type RoomQueryVariables = Exact<{
  conversationId: string | number;
}>;


export type RoomQuery = { room: { conversationId: string, memberCount: number, connectionCount: number, createdAt: string, lastActivityAt: string, messagesBroadcast: number, pendingAcks: number, typing: Array<string>, members: Array<{ userId: string, name: string | null, connections: number, joinedAt: string, typing: boolean }>, pendingAckList: Array<{ messageId: string, senderId: string, missing: Array<string>, ageMs: number }> } | null };

export type UserQueryVariables = Exact<{
  userId: string | number;
}>;


export type UserQuery = { user: { userId: string, connections: number, rooms: Array<{ conversationId: string, connections: number, joinedAt: string, typing: boolean }> } | null };

export type PendingAcksQueryVariables = Exact<{
  conversationId?: string | number | null | undefined;
  first?: number | null | undefined;
}>;


export type PendingAcksQuery = { pendingAcks: Array<{ messageId: string, conversationId: string, senderId: string, expected: Array<string>, acked: Array<string>, missing: Array<string>, createdAt: string, expiresAt: string, ageMs: number, attempts: number }> };

export type DeliveryReportQueryVariables = Exact<{
  messageId: string | number;
}>;


export type DeliveryReportQuery = { deliveryReport: { messageId: string, conversationId: string, status: DeliveryStatus, expected: Array<string>, acked: Array<string>, missing: Array<string>, createdAt: string, completedAt: string | null, latencyMs: number | null } | null };

export type NodesQueryVariables = Exact<{ [key: string]: never; }>;


export type NodesQuery = { nodes: Array<{ nodeId: string, address: string, connections: number, rooms: number, users: number, uptimeSeconds: number, lastHeartbeat: string, self: boolean, connectionsByTransport: { websocket: number, sse: number } }> };

export type BroadcastSystemEventMutationVariables = Exact<{
  conversationId: string | number;
  event: string;
  data?: unknown;
}>;


export type BroadcastSystemEventMutation = { broadcastSystemEvent: boolean };

export type UpdateConversationMutationVariables = Exact<{
  conversationId: string | number;
  changes: unknown;
}>;


export type UpdateConversationMutation = { updateConversation: boolean };

export type CloseRoomMutationVariables = Exact<{
  conversationId: string | number;
  reason?: string | null | undefined;
}>;


export type CloseRoomMutation = { closeRoom: number };

export type DisconnectUserMutationVariables = Exact<{
  userId: string | number;
  reason?: string | null | undefined;
}>;


export type DisconnectUserMutation = { disconnectUser: number };

export class TypedDocumentString<TResult, TVariables>
  extends String
  implements DocumentTypeDecoration<TResult, TVariables>
{
  __apiType?: NonNullable<DocumentTypeDecoration<TResult, TVariables>['__apiType']>;
  private value: string;
  public __meta__?: Record<string, any> | undefined;

  constructor(value: string, __meta__?: Record<string, any> | undefined) {
    super(value);
    this.value = value;
    this.__meta__ = __meta__;
  }

  override toString(): string & DocumentTypeDecoration<TResult, TVariables> {
    return this.value;
  }
}
export const PercentilesFragmentDoc = new TypedDocumentString(`
    fragment Percentiles on LatencyPercentiles {
  p50
  p95
  p99
  max
  count
}
    `, {"fragmentName":"Percentiles"}) as unknown as TypedDocumentString<PercentilesFragment, unknown>;
export const StatsDocument = new TypedDocumentString(`
    query Stats {
  stats {
    activeRooms
    connections
    connectionsByTransport {
      websocket
      sse
    }
    users
    messagesBroadcast
    deliveries
    pendingAcks
    acksDelivered
    acksPartial
    acksFailed
    slowConsumerCloses
    uptimeSeconds
    at
    deliveryLatencyMs {
      ...Percentiles
    }
    ackLatencyMs {
      ...Percentiles
    }
    memory {
      rssBytes
      heapUsedBytes
    }
  }
}
    fragment Percentiles on LatencyPercentiles {
  p50
  p95
  p99
  max
  count
}`) as unknown as TypedDocumentString<StatsQuery, StatsQueryVariables>;
export const RoomsDocument = new TypedDocumentString(`
    query Rooms($first: Int, $after: String, $orderBy: RoomOrder) {
  rooms(first: $first, after: $after, orderBy: $orderBy) {
    totalCount
    pageInfo {
      hasNextPage
      endCursor
    }
    edges {
      cursor
      node {
        conversationId
        memberCount
        connectionCount
        messagesBroadcast
        pendingAcks
        lastActivityAt
        typing
      }
    }
  }
}
    `) as unknown as TypedDocumentString<RoomsQuery, RoomsQueryVariables>;
export const RoomDocument = new TypedDocumentString(`
    query Room($conversationId: ID!) {
  room(conversationId: $conversationId) {
    conversationId
    memberCount
    connectionCount
    createdAt
    lastActivityAt
    messagesBroadcast
    pendingAcks
    typing
    members {
      userId
      name
      connections
      joinedAt
      typing
    }
    pendingAckList {
      messageId
      senderId
      missing
      ageMs
    }
  }
}
    `) as unknown as TypedDocumentString<RoomQuery, RoomQueryVariables>;
export const UserDocument = new TypedDocumentString(`
    query User($userId: ID!) {
  user(userId: $userId) {
    userId
    connections
    rooms {
      conversationId
      connections
      joinedAt
      typing
    }
  }
}
    `) as unknown as TypedDocumentString<UserQuery, UserQueryVariables>;
export const PendingAcksDocument = new TypedDocumentString(`
    query PendingAcks($conversationId: ID, $first: Int) {
  pendingAcks(conversationId: $conversationId, first: $first) {
    messageId
    conversationId
    senderId
    expected
    acked
    missing
    createdAt
    expiresAt
    ageMs
    attempts
  }
}
    `) as unknown as TypedDocumentString<PendingAcksQuery, PendingAcksQueryVariables>;
export const DeliveryReportDocument = new TypedDocumentString(`
    query DeliveryReport($messageId: ID!) {
  deliveryReport(messageId: $messageId) {
    messageId
    conversationId
    status
    expected
    acked
    missing
    createdAt
    completedAt
    latencyMs
  }
}
    `) as unknown as TypedDocumentString<DeliveryReportQuery, DeliveryReportQueryVariables>;
export const NodesDocument = new TypedDocumentString(`
    query Nodes {
  nodes {
    nodeId
    address
    connections
    connectionsByTransport {
      websocket
      sse
    }
    rooms
    users
    uptimeSeconds
    lastHeartbeat
    self
  }
}
    `) as unknown as TypedDocumentString<NodesQuery, NodesQueryVariables>;
export const BroadcastSystemEventDocument = new TypedDocumentString(`
    mutation BroadcastSystemEvent($conversationId: ID!, $event: String!, $data: JSON) {
  broadcastSystemEvent(
    conversationId: $conversationId
    event: $event
    data: $data
  )
}
    `) as unknown as TypedDocumentString<BroadcastSystemEventMutation, BroadcastSystemEventMutationVariables>;
export const UpdateConversationDocument = new TypedDocumentString(`
    mutation UpdateConversation($conversationId: ID!, $changes: JSON!) {
  updateConversation(conversationId: $conversationId, changes: $changes)
}
    `) as unknown as TypedDocumentString<UpdateConversationMutation, UpdateConversationMutationVariables>;
export const CloseRoomDocument = new TypedDocumentString(`
    mutation CloseRoom($conversationId: ID!, $reason: String) {
  closeRoom(conversationId: $conversationId, reason: $reason)
}
    `) as unknown as TypedDocumentString<CloseRoomMutation, CloseRoomMutationVariables>;
export const DisconnectUserDocument = new TypedDocumentString(`
    mutation DisconnectUser($userId: ID!, $reason: String) {
  disconnectUser(userId: $userId, reason: $reason)
}
    `) as unknown as TypedDocumentString<DisconnectUserMutation, DisconnectUserMutationVariables>;