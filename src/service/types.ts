import type { AckRouter } from '../acks/ack-router.ts';
import type { AckTracker } from '../acks/ack-tracker.ts';
import type { ConnectionId, DeliveryReport, MessageId, PendingDeliveryReport, Principal, RoomEnvelope, RoomId, UserId } from '../domain/types.ts';
import type { RoomSnapshot } from '../rooms/room-registry.ts';
import type { ServiceStats } from './stats.ts';
import type { PresenceStore } from '../presence/presence-store.ts';

/** The service's vocabulary with the transport and the cluster: what each side provides the other. */

/** Why the server ends a connection; the transport maps each to a WebSocket close code. */
export type CloseReason = 'slow_consumer' | 'token_expired' | 'kicked' | 'room_closed' | 'shutdown';

/** One client's key: client ids are chosen by clients, so they are scoped by the user. */
export function clientKey(userId: UserId, clientId: string): string {
  return `${userId}\u0000${clientId}`;
}

/** How a connection reaches us: a WebSocket, or one SSE stream (which carries one subscription). */
export type TransportKind = 'websocket' | 'sse';

/** What the service needs of a live connection; the transport provides it. */
export interface ConnectionHandle {
  id: ConnectionId;
  principal: Principal;
  readonly transport: TransportKind;
  /**
   * The client this connection belongs to, as `clientKey(userId, clientId)` — set when the client
   * named itself (`clientId` in the `conversation.events` input). A send over HTTP naming the same
   * `clientId` is not delivered to it (its own streams), unless `echo`.
   */
  readonly clientKey?: string;
  /**
   * Bytes queued for this connection that the network has not taken (frames written in the
   * current loop turn, which leave when it ends, not counted).
   */
  bufferedBytes(): number;
  /** Ends the connection; the client may resume from its last event id. */
  close(reason: CloseReason, detail?: string): void;
}

export interface SendInput {
  principal: Principal;
  /** The sending connection (excluded from the broadcast unless `echo`); null over HTTP. */
  connectionId: ConnectionId | null;
  /** The sending client's id (HTTP sends beside SSE streams): its streams are excluded unless `echo`. */
  clientId?: string;
  conversationId: RoomId;
  body: string;
  clientMessageId?: string;
  ack?: boolean | { timeoutMs: number };
  echo?: boolean;
}

/**
 * Where a subscription's events go, and what it is told of its life. The transport writes each
 * event to its socket (a pre-built frame on the fast path); the service decides what goes out and
 * when a connection is too far behind. Methods, so that a transport can hand over one small object
 * per subscription rather than closures.
 */
export interface SubscriberSink {
  /** `shared`: the same envelope goes to other subscribers too (worth caching its frame). */
  write(envelope: RoomEnvelope, shared: boolean): void;
  /**
   * Called once the subscription receives the room's live events and its user counts as present
   * (cluster-wide), before any event is written. The transport sends tRPC's `started` then, so
   * "started" means nothing published from now on is missed — in a cluster the room
   * subscription crosses the network first — and that the user is in the room.
   */
  live?(): void;
  /**
   * Called once when the subscription is over (as `done` settles): `error` undefined for an end
   * (cancel, socket close, room closed), else why it could not start.
   */
  ended?(error?: unknown): void;
}

export interface SubscriptionInput {
  connectionId: ConnectionId;
  conversationId: RoomId;
  lastEventId?: string | null;
  sink: SubscriberSink;
}

export interface SubscriptionHandle {
  /** Ends the subscription (the client stopped it); `done` then resolves. */
  cancel(): void;
  /** Settles when the subscription ends (as `sink.ended` is called); rejects if it could not start. */
  readonly done: Promise<void>;
}

/** What a cluster replaces besides the broker (all default to this process). */
export interface ServiceSeams {
  presence?: PresenceStore;
  ackRouter?: (tracker: AckTracker) => AckRouter;
}

/**
 * What the admin plane, /metrics, the log and the cluster's node calls read of this node:
 * snapshots and counters, never the service's parts themselves.
 */
export interface ServiceFigures {
  /** Rooms with a member, open connections and distinct users on this node. */
  counts(): { rooms: number; connections: number; users: number };
  /** Open connections on this node by transport (an SSE stream counts as one). */
  connectionsByTransport(): Record<TransportKind, number>;
  roomIds(): RoomId[];
  /** One room's membership on this node; undefined when nobody is in it. */
  room(roomId: RoomId): RoomSnapshot | undefined;
  typingUsers(roomId: RoomId): UserId[];
  userConnectionCount(userId: UserId): number;
  pendingAckCount(): number;
  /** The report of an acknowledged message, pending or finished; null once forgotten. */
  deliveryReport(messageId: MessageId): Promise<DeliveryReport | PendingDeliveryReport | null>;
  /** Counters and latency windows since start. */
  readonly stats: Readonly<ServiceStats>;
}
