import { DomainError } from '../domain/errors.ts';
import type { DeliveryReport, MessageId, PendingDeliveryReport, RoomId, UserId } from '../domain/types.ts';
import type { AckResult, AckTracker, PendingAckSnapshot, TrackInput } from './ack-tracker.ts';

/** One ack of a list (`message.ack` with `acks`). */
export interface AckItem {
  conversationId: RoomId;
  messageId: MessageId;
}

/** One item's outcome: its result, or the domain error that refused it (and changed nothing). */
export type AckOutcome = AckResult | DomainError;

/**
 * The ack-bookkeeping seam: where an ack, a status query or a pending-ack listing goes. On one
 * node that is the local tracker; in a cluster the message's owner node may be another one.
 */
export interface AckRouter {
  /** Starts tracking a message; resolves once an ack from any node can find it (before publish). */
  track(input: TrackInput): Promise<void>;
  /** The message was never published: forget it without a report. */
  cancel(messageId: MessageId): void;
  /**
   * The owner's tracker produced a final report. A cluster router first makes sure this node
   * still owns the message (a node taken for dead may have been replaced as owner) and makes the
   * report readable everywhere, then calls `announce` — or never, when another node reports it.
   * Without this method the service announces at once.
   */
  reported?(report: DeliveryReport, senderId: UserId, announce: () => void): void;
  /** Shutdown: waits (bounded) until reports in flight have been written and announced. */
  drain?(timeoutMs: number): Promise<void>;
  ack(messageId: MessageId, conversationId: RoomId, userId: UserId): Promise<AckResult>;
  /**
   * Several acks of one user, applied in order (a repeat within the list is a duplicate); one
   * outcome per item, in the same order. Items may belong to messages owned by different nodes.
   * Only an unexpected failure rejects the whole call.
   */
  ackMany(items: readonly AckItem[], userId: UserId): Promise<AckOutcome[]>;
  status(messageId: MessageId): Promise<{ report: DeliveryReport | PendingDeliveryReport; senderId: UserId } | undefined>;
  pending(filter?: { conversationId?: RoomId }): Promise<PendingAckSnapshot[]>;
}

/** The single-node router: every message is owned by this node's tracker. */
export class LocalAckRouter implements AckRouter {
  constructor(private readonly tracker: AckTracker) {}

  track(input: TrackInput): Promise<void> {
    this.tracker.track(input);
    return Promise.resolve();
  }

  cancel(messageId: MessageId): void {
    this.tracker.cancel(messageId);
  }

  ack(messageId: MessageId, conversationId: RoomId, userId: UserId): Promise<AckResult> {
    try {
      return Promise.resolve(this.tracker.ack(messageId, conversationId, userId));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  ackMany(items: readonly AckItem[], userId: UserId): Promise<AckOutcome[]> {
    const outcomes = new Array<AckOutcome>(items.length);
    for (let i = 0; i < items.length; i += 1) {
      const item = items[i]!;
      try {
        outcomes[i] = this.tracker.ack(item.messageId, item.conversationId, userId);
      } catch (error) {
        if (!(error instanceof DomainError)) return Promise.reject(error instanceof Error ? error : new Error(String(error)));
        outcomes[i] = error;
      }
    }
    return Promise.resolve(outcomes);
  }

  status(messageId: MessageId) {
    return Promise.resolve(this.tracker.status(messageId));
  }

  pending(filter: { conversationId?: RoomId } = {}): Promise<PendingAckSnapshot[]> {
    return Promise.resolve(this.tracker.pending(filter));
  }
}
