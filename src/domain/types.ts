/**
 * Domain vocabulary shared by every layer. Nothing here imports a transport.
 */

/** A conversation (room) id: 1–128 characters of `[A-Za-z0-9_.:-]`. */
export type RoomId = string;
/** The user id, always taken from the `sub` claim of a verified token. */
export type UserId = string;
/** One WebSocket connection (or the pseudo-connection of an embedding call). */
export type ConnectionId = string;
/** Server-assigned message id (UUID). */
export type MessageId = string;
/**
 * Opaque, strictly increasing per stream in delivery order: `<epoch>:<seq>` for stored events,
 * `<epoch>:<seq>.<n>` for ephemeral ones, `<position>-<k>` for events of one stream only (see
 * history/event-id.ts).
 */
export type EventId = string;

export type Role = 'user' | 'admin' | 'service';

/** Who a verified token says the caller is. */
export interface Principal {
  userId: UserId;
  name?: string;
  role: Role;
  /** Conversation ids the caller may use; `'*'` allows all. */
  conversations: ReadonlySet<string> | '*';
  /** Expiry, epoch seconds, when the token has one. */
  exp?: number;
}

export interface ChatMessage {
  id: MessageId;
  senderId: UserId;
  senderName?: string;
  body: string;
  sentAt: Date;
  clientMessageId?: string;
  ackRequired: boolean;
}

export type DeliveryStatus = 'delivered' | 'partial' | 'failed';

export interface DeliveryReport {
  messageId: MessageId;
  conversationId: RoomId;
  status: DeliveryStatus;
  expected: UserId[];
  acked: UserId[];
  missing: UserId[];
  createdAt: Date;
  completedAt: Date;
  latencyMs: number;
}

/** What `message.deliveryStatus` answers while the report is not made yet. */
export interface PendingDeliveryReport extends Omit<DeliveryReport, 'status' | 'completedAt' | 'latencyMs'> {
  status: 'pending';
  completedAt: null;
  latencyMs: null;
  expiresAt: Date;
}

interface EventBase {
  conversationId: RoomId;
  at: Date;
}

export type RoomEvent =
  /**
   * `resendOf`: on an ack re-send, the id the message had when first sent. A re-send carries a
   * new id (after everything its stream has had) so that it never moves a resume point back;
   * clients that already have `resendOf` ack it again and do not show it again.
   */
  | (EventBase & { type: 'message'; message: ChatMessage; resendOf?: EventId })
  | (EventBase & { type: 'user_joined'; userId: UserId; name?: string })
  | (EventBase & { type: 'user_left'; userId: UserId })
  | (EventBase & { type: 'user_disconnected'; userId: UserId })
  /**
   * Presence changes coalesced over PRESENCE_BATCH_MS (after a leading single event): net per
   * user against what this node last announced, each user at most once. To every subscriber
   * (so a live diff may list the subscriber's own user).
   */
  | (EventBase & { type: 'presence_diff'; joins: PresenceJoin[]; leaves: PresenceLeave[] })
  | (EventBase & { type: 'typing'; userId: UserId; isTyping: boolean })
  | (EventBase & { type: 'message_delivered'; report: DeliveryReport })
  | (EventBase & { type: 'conversation_updated'; changes: Record<string, unknown> })
  | (EventBase & { type: 'system'; event: string; data: unknown })
  | (EventBase & { type: 'resync'; reason: ResyncReason })
  /**
   * First event of every stream, to the subscribing connection only: its id is the stream's
   * position in the room (so a client that drops before anything else happens resumes from it),
   * with who is present at that moment — at most PRESENCE_SNAPSHOT_LIMIT members listed,
   * `memberCount` counts them all.
   */
  | (EventBase & { type: 'subscribed'; resumed: boolean; members: MemberPresence[]; memberCount: number });

/** The most members a `subscribed` event lists; `memberCount` says how many there are. */
export const PRESENCE_SNAPSHOT_LIMIT = 100;

export type RoomEventType = RoomEvent['type'];

/**
 * Why a subscriber must refetch: its resume point is too old (`history_truncated`), from a
 * history that is gone (`history_unavailable`: a restart, an expired or evicted room, a lost
 * cluster history) or not this room's (`unknown_event_id`); or an event could not be delivered
 * to it (`event_undeliverable`: a safety net that should never fire).
 */
export type ResyncReason = 'history_truncated' | 'history_unavailable' | 'unknown_event_id' | 'event_undeliverable';

/**
 * Who receives an event. Evaluated per subscriber, on live delivery and on replay alike.
 * An empty audience means every subscriber of the room.
 */
export interface Audience {
  /** The sending/joining connection, which does not get its own event. */
  exceptConnection?: ConnectionId;
  /** The sending client's connections (a `clientKey`: its SSE streams, for a send over HTTP). */
  exceptClient?: string;
  /** The typing user's own connections do not get its typing events. */
  exceptUser?: UserId;
  /** Only these users' connections (delivery reports, ack re-sends). */
  onlyUsers?: readonly UserId[];
}

/** A room event as it travels through the fan-out seam: with its id and audience. */
export interface RoomEnvelope {
  id: EventId;
  event: RoomEvent;
  audience: Audience;
  /** When it was published, epoch ms with sub-ms precision (internal: for latency, never sent). */
  publishedAt?: number;
  /**
   * The event as superjson serializes it, when the broker has it already (the single-node history
   * keeps events in this form): frames are built from it, not from serializing `event` again.
   */
  serialized?: SerializedEvent;
}

/**
 * A room event serialized with superjson (the router's transformer), as JSON text: `json` is
 * `JSON.stringify` of superjson's `json` part, `meta` of its `meta` part (absent when superjson
 * has none). `{"json":<json>,"meta":<meta>}` is what superjson makes of the event.
 */
export interface SerializedEvent {
  type: RoomEventType;
  json: string;
  meta: string | undefined;
}

export interface PresenceJoin {
  userId: UserId;
  name?: string;
}

export interface PresenceLeave {
  userId: UserId;
  reason: 'left' | 'disconnected';
}

export interface MemberPresence {
  userId: UserId;
  name?: string;
  connections: number;
  joinedAt: Date;
  typing: boolean;
}

export interface SendResult {
  messageId: MessageId;
  eventId: EventId;
  sentAt: Date;
  /** The users whose ack is expected, when the message requires acks. */
  expected?: UserId[];
}
