import type { Percentiles } from '../util/latency-histogram.ts';
import type { ClusterNode } from './cluster-node.ts';
import type { RoomId, UserId } from '../domain/types.ts';
import type { RedisPresence } from './redis-presence.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import { localBroadcastStats, type AdminOperations, type BroadcastStatsView, type NodeStatsView, type RoomView, type TransportCounts } from '../admin/admin-operations.ts';

/**
 * The admin plane's operations across the cluster, same shape as the local ones. Totals come from
 * asking every live node for its own figures (node-to-node calls over Redis) and adding them up;
 * members, typing and user rooms come from cluster presence; distinct users and rooms from the
 * nodes' sets in Redis; `nodes` from the heartbeats. A node that does not answer within the call
 * timeout is left out (and logged) rather than failing the whole query.
 */

interface RoomFigures {
  conversationId: RoomId;
  connectionCount: number;
  createdAt: Date;
  lastActivityAt: Date;
  messagesBroadcast: number;
}

export function createClusterAdminOperations(options: {
  local: AdminOperations;
  service: RealtimeService;
  node: ClusterNode;
  presence: RedisPresence;
  address: () => string;
}): AdminOperations {
  const { local, service, node, presence } = options;

  const roomFigures = (conversationId: RoomId): RoomFigures | null => {
    const s = service.figures.room(conversationId);
    return !s ? null : { conversationId, connectionCount: s.connectionCount, createdAt: s.createdAt, lastActivityAt: s.lastActivityAt, messagesBroadcast: s.messagesBroadcast };
  };
  node.handle('admin.stats', () => localBroadcastStats(service));
  node.handle('admin.rooms', () => service.figures.roomIds().map(roomFigures));
  node.handle('admin.room', (id) => roomFigures(id as RoomId));
  node.handle('admin.userConnections', (id) => service.figures.userConnectionCount(id as UserId));
  node.handle('admin.closeRoom', (id) => service.closeRoom(id as RoomId));
  node.handle('admin.disconnectUser', (arg) => {
    const { userId, reason } = arg as { userId: UserId; reason: string | null };
    return service.disconnectUser(userId, 'kicked', reason ?? undefined);
  });

  const merge = (parts: RoomFigures[]): RoomFigures => parts.reduce((a, b) => ({
    conversationId: a.conversationId,
    connectionCount: a.connectionCount + b.connectionCount,
    createdAt: a.createdAt < b.createdAt ? a.createdAt : b.createdAt,
    lastActivityAt: a.lastActivityAt > b.lastActivityAt ? a.lastActivityAt : b.lastActivityAt,
    messagesBroadcast: a.messagesBroadcast + b.messagesBroadcast,
  }));

  const view = async (figures: RoomFigures, pendingByRoom?: Map<RoomId, number>): Promise<RoomView> => {
    const members = await presence.members(figures.conversationId);
    const pending = pendingByRoom?.get(figures.conversationId) ?? (await service.pendingAcks({ conversationId: figures.conversationId })).length;
    return {
      ...figures,
      memberCount: members.length,
      members,
      typing: members.filter((m) => m.typing).map((m) => m.userId),
      pendingAcks: pending,
    };
  };

  return {
    ...local,
    async stats() {
      const answers = (await node.callAll<BroadcastStatsView>('admin.stats', null)).map((a) => a.value);
      const nodeIds = await node.liveNodeIds();
      const mine = localBroadcastStats(service);
      const total = answers.map(withTransports).reduce((a, b) => ({
        ...a,
        connections: a.connections + b.connections,
        connectionsByTransport: addTransports(a.connectionsByTransport, b.connectionsByTransport),
        messagesBroadcast: a.messagesBroadcast + b.messagesBroadcast,
        deliveries: a.deliveries + b.deliveries,
        pendingAcks: a.pendingAcks + b.pendingAcks,
        acksDelivered: a.acksDelivered + b.acksDelivered,
        acksPartial: a.acksPartial + b.acksPartial,
        acksFailed: a.acksFailed + b.acksFailed,
        deliveryLatencyMs: worst(a.deliveryLatencyMs, b.deliveryLatencyMs),
        ackLatencyMs: worst(a.ackLatencyMs, b.ackLatencyMs),
        slowConsumerCloses: a.slowConsumerCloses + b.slowConsumerCloses,
        uptimeSeconds: Math.max(a.uptimeSeconds, b.uptimeSeconds),
        memory: { rssBytes: a.memory.rssBytes + b.memory.rssBytes, heapUsedBytes: a.memory.heapUsedBytes + b.memory.heapUsedBytes },
      }));
      const [users, activeRooms] = await Promise.all([presence.distinctUsers(nodeIds), presence.distinctRooms(nodeIds)]);
      return { ...(total ?? mine), users, activeRooms, at: new Date() };
    },
    async rooms() {
      const answers = await node.callAll<Array<RoomFigures | null>>('admin.rooms', null);
      const byRoom = new Map<RoomId, RoomFigures[]>();
      for (const { value } of answers) {
        for (const figures of value) {
          if (!figures) continue;
          const list = byRoom.get(figures.conversationId) ?? [];
          list.push(figures);
          byRoom.set(figures.conversationId, list);
        }
      }
      const pendingByRoom = new Map<RoomId, number>();
      for (const p of await service.pendingAcks()) pendingByRoom.set(p.conversationId, (pendingByRoom.get(p.conversationId) ?? 0) + 1);
      return Promise.all([...byRoom.values()].map((parts) => view(merge(parts), pendingByRoom)));
    },
    async room(conversationId) {
      const parts = (await node.callAll<RoomFigures | null>('admin.room', conversationId)).map((a) => a.value).filter((v): v is RoomFigures => v !== null);
      return parts.length === 0 ? null : view(merge(parts));
    },
    async user(userId) {
      const answers = await node.callAll<number>('admin.userConnections', userId);
      const connections = answers.reduce((n, a) => n + a.value, 0);
      const roomIds = await presence.userRooms(userId);
      if (connections === 0 && roomIds.length === 0) return null;
      const rooms = await Promise.all(
        roomIds.map(async (conversationId) => {
          const member = (await presence.members(conversationId)).find((m) => m.userId === userId);
          return { conversationId, connections: member?.connections ?? 0, joinedAt: member?.joinedAt ?? new Date(), typing: member?.typing ?? false };
        }),
      );
      return { userId, connections, rooms };
    },
    async nodes() {
      const live = await node.liveNodes();
      const self = (await local.nodes())[0]!;
      const out: NodeStatsView[] = live.map((n) =>
        n.nodeId === node.nodeId
          ? { ...self, nodeId: n.nodeId, address: options.address(), lastHeartbeat: n.lastHeartbeat, self: true }
          : {
              nodeId: n.nodeId,
              address: n.address,
              connections: n.connections,
              connectionsByTransport: n.connectionsByTransport,
              rooms: n.rooms,
              users: n.users,
              uptimeSeconds: Math.floor((Date.now() - n.startedAt) / 1000),
              lastHeartbeat: n.lastHeartbeat,
              memory: { rssBytes: n.rssBytes, heapUsedBytes: n.heapUsedBytes },
              self: false,
            },
      );
      if (!out.some((n) => n.self)) out.push({ ...self, nodeId: node.nodeId, lastHeartbeat: node.lastHeartbeat ?? self.lastHeartbeat });
      return out.sort((a, b) => a.nodeId.localeCompare(b.nodeId));
    },
    async closeRoom(conversationId, reason) {
      const present = (await node.callAll<RoomFigures | null>('admin.room', conversationId)).some((a) => a.value !== null);
      if (!present) return 0;
      await service.broadcastSystemEvent(conversationId, 'room_closed', { reason });
      const closed = await node.callAll<number>('admin.closeRoom', conversationId);
      return closed.reduce((n, a) => n + a.value, 0);
    },
    async disconnectUser(userId, reason) {
      const closed = await node.callAll<number>('admin.disconnectUser', { userId, reason });
      return closed.reduce((n, a) => n + a.value, 0);
    },
  };
}

/** Percentiles across nodes: the worst node's, an upper bound (histograms are not shipped); counts add up. */
function worst(a: Percentiles, b: Percentiles): Percentiles {
  return { p50: Math.max(a.p50, b.p50), p95: Math.max(a.p95, b.p95), p99: Math.max(a.p99, b.p99), max: Math.max(a.max, b.max), count: a.count + b.count };
}

function addTransports(a: TransportCounts, b: TransportCounts): TransportCounts {
  return { websocket: a.websocket + b.websocket, sse: a.sse + b.sse };
}

/** A node of an older version answers without `connectionsByTransport`: all its connections were WebSockets. */
function withTransports(stats: BroadcastStatsView): BroadcastStatsView {
  const by = (stats as Partial<BroadcastStatsView>).connectionsByTransport;
  return { ...stats, connectionsByTransport: { websocket: by?.websocket ?? stats.connections, sse: by?.sse ?? 0 } };
}
