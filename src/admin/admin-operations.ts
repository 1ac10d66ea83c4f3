import type { PendingAckSnapshot } from '../acks/ack-tracker.ts';
import type { DeliveryReport, MemberPresence, PendingDeliveryReport, RoomId, UserId } from '../domain/types.ts';
import type { Percentiles } from '../util/latency-histogram.ts';
import type { RealtimeService, TransportKind } from '../service/realtime-service.ts';

/**
 * What the admin plane reads and does, as plain async operations over the core. The GraphQL
 * resolvers are thin over this; a cluster implementation aggregates across nodes behind the
 * same shape. Reads never mutate.
 */

/** Open connections by transport (an SSE stream counts as one); they add up to `connections`. */
export type TransportCounts = Record<TransportKind, number>;

export interface BroadcastStatsView {
  activeRooms: number;
  connections: number;
  connectionsByTransport: TransportCounts;
  users: number;
  messagesBroadcast: number;
  deliveries: number;
  pendingAcks: number;
  acksDelivered: number;
  acksPartial: number;
  acksFailed: number;
  deliveryLatencyMs: Percentiles;
  ackLatencyMs: Percentiles;
  slowConsumerCloses: number;
  uptimeSeconds: number;
  memory: { rssBytes: number; heapUsedBytes: number };
  at: Date;
}

export interface RoomView {
  conversationId: RoomId;
  memberCount: number;
  connectionCount: number;
  members: MemberPresence[];
  typing: UserId[];
  createdAt: Date;
  lastActivityAt: Date;
  messagesBroadcast: number;
  pendingAcks: number;
}

export interface UserPresenceView {
  userId: UserId;
  connections: number;
  rooms: Array<{ conversationId: RoomId; connections: number; joinedAt: Date; typing: boolean }>;
}

export interface NodeStatsView {
  nodeId: string;
  address: string;
  connections: number;
  connectionsByTransport: TransportCounts;
  rooms: number;
  users: number;
  uptimeSeconds: number;
  lastHeartbeat: Date;
  memory: { rssBytes: number; heapUsedBytes: number };
  self: boolean;
}

export interface AdminOperations {
  stats(): Promise<BroadcastStatsView>;
  /** Every active room (the resolver sorts and pages). */
  rooms(): Promise<RoomView[]>;
  room(conversationId: RoomId): Promise<RoomView | null>;
  user(userId: UserId): Promise<UserPresenceView | null>;
  pendingAcks(filter: { conversationId?: RoomId }): Promise<PendingAckSnapshot[]>;
  deliveryReport(messageId: string): Promise<DeliveryReport | PendingDeliveryReport | null>;
  nodes(): Promise<NodeStatsView[]>;
  broadcastSystemEvent(conversationId: RoomId, event: string, data: unknown): Promise<void>;
  updateConversation(conversationId: RoomId, changes: Record<string, unknown>): Promise<void>;
  closeRoom(conversationId: RoomId, reason: string | null): Promise<number>;
  disconnectUser(userId: UserId, reason: string | null): Promise<number>;
}

/** This node's totals, read synchronously (the embedding API's getBroadcastStats, and `stats` on one node). */
export function localBroadcastStats(service: RealtimeService): BroadcastStatsView {
  const counts = service.figures.counts();
  const s = service.figures.stats;
  const memory = process.memoryUsage();
  return {
    activeRooms: counts.rooms,
    connections: counts.connections,
    connectionsByTransport: service.figures.connectionsByTransport(),
    users: counts.users,
    messagesBroadcast: s.messagesBroadcast,
    deliveries: s.deliveries,
    pendingAcks: service.figures.pendingAckCount(),
    acksDelivered: s.acks.delivered,
    acksPartial: s.acks.partial,
    acksFailed: s.acks.failed,
    deliveryLatencyMs: s.deliveryLatency.percentiles(),
    ackLatencyMs: s.ackLatency.percentiles(),
    slowConsumerCloses: s.slowConsumerCloses,
    uptimeSeconds: Math.floor((Date.now() - s.startedAt) / 1000),
    memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
    at: new Date(),
  };
}

/** `nodeId` is this node's identity in `nodes` (`config.nodeId`). */
export function createLocalAdminOperations(service: RealtimeService, address: () => string, nodeId: string): AdminOperations {
  const roomView = async (conversationId: RoomId): Promise<RoomView | null> => {
    const snapshot = service.figures.room(conversationId);
    if (!snapshot) return null;
    const members = await service.presence(conversationId);
    return {
      conversationId,
      memberCount: members.length,
      connectionCount: snapshot.connectionCount,
      members,
      typing: service.figures.typingUsers(conversationId),
      createdAt: snapshot.createdAt,
      lastActivityAt: snapshot.lastActivityAt,
      messagesBroadcast: snapshot.messagesBroadcast,
      pendingAcks: (await service.pendingAcks({ conversationId })).length,
    };
  };

  return {
    stats: () => Promise.resolve(localBroadcastStats(service)),
    async rooms() {
      const views = await Promise.all(service.figures.roomIds().map(roomView));
      return views.filter((v): v is RoomView => v !== null);
    },
    room: roomView,
    async user(userId) {
      const connections = service.figures.userConnectionCount(userId);
      const roomIds = await service.userRooms(userId);
      if (connections === 0 && roomIds.length === 0) return null;
      const rooms = await Promise.all(
        roomIds.map(async (conversationId) => {
          const member = (await service.presence(conversationId)).find((m) => m.userId === userId);
          return {
            conversationId,
            connections: member?.connections ?? 0,
            joinedAt: member?.joinedAt ?? new Date(),
            typing: member?.typing ?? false,
          };
        }),
      );
      return { userId, connections, rooms };
    },
    pendingAcks: (filter) => service.pendingAcks(filter),
    async deliveryReport(messageId) {
      return service.figures.deliveryReport(messageId);
    },
    async nodes() {
      const counts = service.figures.counts();
      const memory = process.memoryUsage();
      return [
        {
          nodeId,
          address: address(),
          connections: counts.connections,
          connectionsByTransport: service.figures.connectionsByTransport(),
          rooms: counts.rooms,
          users: counts.users,
          uptimeSeconds: Math.floor((Date.now() - service.figures.stats.startedAt) / 1000),
          lastHeartbeat: new Date(),
          memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
          self: true,
        },
      ];
    },
    async broadcastSystemEvent(conversationId, event, data) {
      await service.broadcastSystemEvent(conversationId, event, data);
    },
    async updateConversation(conversationId, changes) {
      await service.updateConversation(conversationId, changes);
    },
    async closeRoom(conversationId, reason) {
      if (!service.figures.room(conversationId)) return 0;
      await service.broadcastSystemEvent(conversationId, 'room_closed', { reason });
      return service.closeRoom(conversationId);
    },
    disconnectUser(userId, reason) {
      return Promise.resolve(service.disconnectUser(userId, 'kicked', reason ?? undefined));
    },
  };
}
