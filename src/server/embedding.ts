import { localBroadcastStats, type AdminOperations, type BroadcastStatsView, type RoomView } from '../admin/admin-operations.ts';
import type { DeliveryReport, MemberPresence, Principal, RoomId, SendResult, UserId } from '../domain/types.ts';
import type { RealtimeService } from '../service/realtime-service.ts';

/** Totals of this node (CONTRACT §5 BroadcastStats, plus ack latency and slow-consumer closes). */
export type BroadcastStats = BroadcastStatsView;

/** One active room (CONTRACT §5 Room). */
export type RoomStats = RoomView;

export interface ServerSend {
  body: string;
  /** Shown as the sender; defaults to "system". */
  senderId?: UserId;
  senderName?: string;
  clientMessageId?: string;
}

/**
 * The embedding API (CONTRACT §6): what a host application calls on the server object —
 * server-side operations, no token checks; sends go out as a `service` principal.
 */
export function createEmbeddingApi(service: RealtimeService, ops: AdminOperations) {
  const systemPrincipal = (send: ServerSend): Principal => ({
    userId: send.senderId ?? 'system',
    ...(send.senderName !== undefined && { name: send.senderName }),
    role: 'service',
    conversations: '*',
  });
  return {
    broadcastMessage(conversationId: RoomId, send: ServerSend): Promise<SendResult> {
      return service.sendMessage({
        principal: systemPrincipal(send),
        connectionId: null,
        conversationId,
        body: send.body,
        ...(send.clientMessageId !== undefined && { clientMessageId: send.clientMessageId }),
      });
    },
    async broadcastSystemEvent(conversationId: RoomId, event: string, data?: unknown): Promise<{ eventId: string }> {
      return { eventId: (await service.broadcastSystemEvent(conversationId, event, data ?? null)).id };
    },
    async updateConversation(conversationId: RoomId, changes: Record<string, unknown>): Promise<{ eventId: string }> {
      return { eventId: (await service.updateConversation(conversationId, changes)).id };
    },
    broadcastTyping(conversationId: RoomId, userId: UserId, isTyping: boolean): void {
      service.broadcastTyping(conversationId, userId, isTyping);
    },
    broadcastWithAck(conversationId: RoomId, send: ServerSend & { timeoutMs?: number }): Promise<DeliveryReport> {
      return service.broadcastWithAck({
        principal: systemPrincipal(send),
        conversationId,
        body: send.body,
        ...(send.timeoutMs !== undefined && { timeoutMs: send.timeoutMs }),
      });
    },
    getRoomUsers(conversationId: RoomId): Promise<MemberPresence[]> {
      return service.presence(conversationId);
    },
    getUserRooms(userId: UserId): Promise<RoomId[]> {
      return service.userRooms(userId);
    },
    /** One room's figures (what the admin plane's `room` resolves from); null when nobody is in it. */
    getRoomStats(conversationId: RoomId): Promise<RoomStats | null> {
      return ops.room(conversationId);
    },
    /** This node's totals, as the admin plane's `stats`. */
    getBroadcastStats(): BroadcastStats {
      return localBroadcastStats(service);
    },
  };
}
