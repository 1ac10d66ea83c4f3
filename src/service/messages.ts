import { randomUUID } from 'node:crypto';
import type { AckItem, AckOutcome, AckRouter } from '../acks/ack-router.ts';
import type { AckResult, AckTracker, PendingAckSnapshot, RetryRequest } from '../acks/ack-tracker.ts';
import type { Broker } from '../broker/broker.ts';
import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { Audience, DeliveryReport, MemberPresence, MessageId, PendingDeliveryReport, Principal, RoomEnvelope, RoomEvent, RoomId, SendResult, UserId } from '../domain/types.ts';
import type { RoomRegistry } from '../rooms/room-registry.ts';
import { ExpiringMap } from '../util/expiring-map.ts';
import { TokenBuckets } from '../util/token-bucket.ts';
import type { ServiceStats } from './stats.ts';
import { clientKey, type SendInput } from './types.ts';

export interface MessagesDeps {
  config: Pick<Config, 'maxMessageBytes' | 'maxPendingAcksPerSender' | 'ackTimeoutMs' | 'historyTtlMs' | 'maxRetainedRecords' | 'messageRatePerSec' | 'messageRateBurst'>;
  broker: Broker;
  registry: RoomRegistry;
  acks: AckTracker;
  ackRouter: AckRouter;
  stats: ServiceStats;
  /** Who is present in the room now (the expected recipients of an acknowledged send). */
  members(roomId: RoomId): Promise<MemberPresence[]>;
  publish(roomId: RoomId, event: RoomEvent, audience: Audience): Promise<RoomEnvelope>;
  emit(roomId: RoomId, event: RoomEvent, audience: Audience): void;
}

/**
 * The send pipeline and what follows a send: size, idempotency (`clientMessageId`, kept
 * HISTORY_TTL_MS, at most MAX_RETAINED_RECORDS keys on the node), the per-user rate, the
 * pending-ack limit; for acknowledged sends, the tracking (before publishing: in a cluster an ack
 * may come back at once), the re-sends to who has not acked (same envelope, only to them) and the
 * report — published to the sender as `message_delivered` and handed to a `broadcastWithAck`
 * caller waiting for it.
 */
export class Messages {
  /** Envelopes of messages waiting for acks, for re-sends with the same id. */
  private readonly awaitingAck = new Map<MessageId, RoomEnvelope>();
  /** Callers of broadcastWithAck waiting for their report. */
  private readonly reportWaiters = new Map<MessageId, (report: DeliveryReport) => void>();
  private readonly sent: ExpiringMap<string, Promise<SendResult>>;
  private readonly messageRate: TokenBuckets;
  private readonly config: MessagesDeps['config'];
  private readonly broker: Broker;
  private readonly registry: RoomRegistry;
  private readonly acks: AckTracker;
  private readonly ackRouter: AckRouter;
  private readonly stats: ServiceStats;
  private readonly members: MessagesDeps['members'];
  private readonly publish: MessagesDeps['publish'];
  private readonly emit: MessagesDeps['emit'];

  constructor(deps: MessagesDeps) {
    ({ config: this.config, broker: this.broker, registry: this.registry, acks: this.acks, ackRouter: this.ackRouter, stats: this.stats, members: this.members, publish: this.publish, emit: this.emit } = deps);
    this.sent = new ExpiringMap(deps.config.historyTtlMs, Date.now, deps.config.maxRetainedRecords);
    this.messageRate = new TokenBuckets(deps.config.messageRatePerSec, deps.config.messageRateBurst);
  }

  send(input: SendInput): Promise<SendResult> {
    const { principal, conversationId: roomId } = input;
    if (Buffer.byteLength(input.body, 'utf8') > this.config.maxMessageBytes) {
      throw new DomainError('MESSAGE_TOO_LARGE', `body: must be at most ${this.config.maxMessageBytes} UTF-8 bytes (MAX_MESSAGE_BYTES)`);
    }
    const key = input.clientMessageId === undefined ? undefined : `${principal.userId}\u0000${roomId}\u0000${input.clientMessageId}`;
    const earlier = key === undefined ? undefined : this.sent.get(key);
    if (earlier) return earlier;
    const wait = this.messageRate.take(principal.userId);
    if (wait > 0) throw new DomainError('RATE_LIMITED', `too many messages; retry in ${wait} ms`, wait);
    if (input.ack && this.acks.pendingOf(principal.userId) >= this.config.maxPendingAcksPerSender) {
      throw new DomainError('RATE_LIMITED', `too many acknowledged messages pending (${this.config.maxPendingAcksPerSender})`, this.config.ackTimeoutMs);
    }
    const result = this.doSend(input);
    if (key !== undefined) {
      this.sent.set(key, result);
      result.catch(() => this.sent.delete(key));
    }
    return result;
  }

  private async doSend(input: SendInput): Promise<SendResult> {
    const { principal, conversationId: roomId } = input;
    const sentAt = new Date();
    const messageId = randomUUID();
    const ackRequired = Boolean(input.ack);
    const expected = ackRequired ? (await this.members(roomId)).map((m) => m.userId).filter((u) => u !== principal.userId) : undefined;
    const event: RoomEvent = {
      type: 'message',
      conversationId: roomId,
      at: sentAt,
      message: {
        id: messageId,
        senderId: principal.userId,
        ...(principal.name !== undefined && { senderName: principal.name }),
        body: input.body,
        sentAt,
        ...(input.clientMessageId !== undefined && { clientMessageId: input.clientMessageId }),
        ackRequired,
      },
    };
    const audience: Audience = input.echo
      ? {}
      : { ...(input.connectionId !== null && { exceptConnection: input.connectionId }), ...(input.clientId !== undefined && { exceptClient: clientKey(input.principal.userId, input.clientId) }) };
    if (expected) {
      // Tracked before it is published: in a cluster an ack from another node may come back at once.
      const timeoutMs = typeof input.ack === 'object' ? input.ack.timeoutMs : this.config.ackTimeoutMs;
      await this.ackRouter.track({ messageId, conversationId: roomId, senderId: principal.userId, expected, timeoutMs });
    }
    let envelope: RoomEnvelope;
    try {
      envelope = await this.publish(roomId, event, audience);
    } catch (error) {
      if (expected) this.ackRouter.cancel(messageId);
      throw error;
    }
    this.registry.recordActivity(roomId);
    if (expected && this.acks.isPending(messageId)) this.awaitingAck.set(messageId, envelope);
    return { messageId, eventId: envelope.id, sentAt, ...(expected && { expected }) };
  }

  /** Server-side send with acks: resolves with the final report. */
  async broadcastWithAck(input: Omit<SendInput, 'ack' | 'connectionId'> & { timeoutMs?: number }): Promise<DeliveryReport> {
    const { timeoutMs, ...rest } = input;
    const { messageId } = await this.doSend({ ...rest, connectionId: null, ack: { timeoutMs: timeoutMs ?? this.config.ackTimeoutMs } });
    // A room without recipients has already reported; finished reports stay queryable.
    const status = await this.ackRouter.status(messageId);
    if (status && status.report.status !== 'pending') return status.report as DeliveryReport;
    return new Promise((resolve) => this.reportWaiters.set(messageId, resolve));
  }

  ack(principal: Principal, conversationId: RoomId, messageId: MessageId): Promise<AckResult> {
    return this.ackRouter.ack(messageId, conversationId, principal.userId);
  }

  /** Several acks of one user (a `message.ack` list): one outcome per item, in order. */
  ackMany(principal: Principal, items: readonly AckItem[]): Promise<AckOutcome[]> {
    return this.ackRouter.ackMany(items, principal.userId);
  }

  async deliveryStatus(principal: Principal, messageId: MessageId): Promise<DeliveryReport | PendingDeliveryReport> {
    const status = await this.ackRouter.status(messageId);
    if (!status) throw new DomainError('MESSAGE_NOT_FOUND', `no delivery report for message ${messageId}`);
    if (status.senderId !== principal.userId) throw new DomainError('NOT_SENDER', 'only the sender may read the delivery report');
    return status.report;
  }

  pendingAcks(filter: { conversationId?: RoomId } = {}): Promise<PendingAckSnapshot[]> {
    return this.ackRouter.pending(filter);
  }

  onReport(report: DeliveryReport, senderId: UserId): void {
    this.awaitingAck.delete(report.messageId);
    if (this.ackRouter.reported) this.ackRouter.reported(report, senderId, () => this.announceReport(report, senderId));
    else this.announceReport(report, senderId);
  }

  private announceReport(report: DeliveryReport, senderId: UserId): void {
    this.stats.ackReported(report.status, report.latencyMs);
    this.emit(report.conversationId, { type: 'message_delivered', conversationId: report.conversationId, at: report.completedAt, report }, { onlyUsers: [senderId] });
    const waiter = this.reportWaiters.get(report.messageId);
    if (waiter) {
      this.reportWaiters.delete(report.messageId);
      waiter(report);
    }
  }

  onRetry(request: RetryRequest): void {
    const envelope = this.awaitingAck.get(request.messageId);
    if (!envelope || request.missing.length === 0) return;
    this.broker.redeliver(request.conversationId, { ...envelope, audience: { onlyUsers: request.missing } });
  }

  /** Expired keys, refilled buckets, envelopes of messages no longer pending here (the owner's periodic sweep). */
  sweep(): void {
    this.sent.sweep();
    this.messageRate.sweep();
    // Messages forgotten without a report (adopted by another node in a cluster) keep no envelope.
    for (const id of this.awaitingAck.keys()) if (!this.acks.isPending(id)) this.awaitingAck.delete(id);
  }

  sizes(): { awaitingAck: number; reportWaiters: number } {
    return { awaitingAck: this.awaitingAck.size, reportWaiters: this.reportWaiters.size };
  }
}
