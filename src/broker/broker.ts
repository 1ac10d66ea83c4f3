import type { Audience, EventId, RoomEnvelope, RoomEvent, RoomId } from '../domain/types.ts';
import type { AcceptEnvelope, ResumeResult, StoredPage } from '../history/room-history.ts';

export type { AcceptEnvelope, ResumeResult, StoredPage };

/**
 * The fan-out seam, in the spirit of Socket.IO's Adapter and Centrifuge's Broker. Every room
 * event goes through `publish`, which assigns its id, stores it when it is durable, and hands it
 * to every node that has subscribed to the room. The in-process implementation
 * (memory-broker.ts) is the default; a Redis one replaces it without touching the routers.
 */
export interface Broker {
  /** Assigns the next id of the room, stores the event if `store`, delivers it to subscribers. */
  publish(roomId: RoomId, event: RoomEvent, options: PublishOptions): Promise<RoomEnvelope>;
  /** Hands an already published envelope to subscribers again (ack re-sends), same id. */
  redeliver(roomId: RoomId, envelope: RoomEnvelope): void;
  /** Receives the room's events on this node until the returned function is called. */
  subscribe(roomId: RoomId, listener: BrokerListener): () => void;
  /** Stored events after `lastEventId`, or `resync` when the history cannot answer completely. */
  readSince(roomId: RoomId, lastEventId: string): Promise<ResumeResult>;
  /**
   * Scrollback, from the same history as `readSince`: at most `limit` stored events strictly
   * older than `before` (the newest kept when null), newest first, that `accept` takes, and
   * whether an older one it takes is still kept. Never creates a history: an unknown or expired
   * room, or a `before` from another epoch, answers an empty page.
   */
  readBefore(roomId: RoomId, before: EventId | null, limit: number, accept?: AcceptEnvelope): Promise<StoredPage>;
  /** The id a fresh subscriber starts after (the room's latest event id). */
  head(roomId: RoomId): Promise<string>;
  /** History lifecycle: a room has local members again / has none any more. */
  roomActive(roomId: RoomId): void;
  roomIdle(roomId: RoomId): void;
  close(): Promise<void>;
  /**
   * Resolves when this node receives the room's events after `subscribe` (a cluster broker
   * subscribes over the network; the service waits before reading history). Optional: in-process
   * subscriptions are immediate.
   */
  subscribed?(roomId: RoomId): Promise<void>;
  /** Whether the broker can publish now (a cluster broker is not while Redis is unreachable). */
  readonly available?: boolean;
}

export interface PublishOptions {
  audience?: Audience;
  /** Kept in the room history for resume (every type but `typing`). */
  store: boolean;
  /**
   * Internal events (presence, reports): when the broker is unavailable, keep them (bounded) and
   * publish them in order when it is back instead of failing.
   */
  queueWhileUnavailable?: boolean;
}

export type BrokerListener = (envelope: RoomEnvelope, redelivery: boolean) => void;
