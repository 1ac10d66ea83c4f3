import { DomainError } from '../domain/errors.ts';
import type { DeliveryReport, MessageId, PendingDeliveryReport, RoomId, UserId } from '../domain/types.ts';
import { ACK_ACCEPTED, ACK_DUPLICATE, lateAck, type AckResult } from './ack-results.ts';

export type { AckResult } from './ack-results.ts';

/**
 * Pending acknowledgements, shaped like socket.io's cluster-adapter request map: every entry has
 * a deadline and leaves the map exactly once — all acked, timed out, or flushed at shutdown —
 * and always in a `DeliveryReport`. Completed reports are kept for `reportRetentionMs` so late
 * acks and `deliveryStatus` can still be answered. The clock is injected; timers are unref'd.
 */

export interface TrackInput {
  messageId: MessageId;
  conversationId: RoomId;
  senderId: UserId;
  expected: readonly UserId[];
  timeoutMs: number;
}

export interface PendingAckSnapshot {
  messageId: MessageId;
  conversationId: RoomId;
  senderId: UserId;
  expected: UserId[];
  acked: UserId[];
  missing: UserId[];
  createdAt: Date;
  expiresAt: Date;
  attempts: number;
}

export interface RetryRequest {
  messageId: MessageId;
  conversationId: RoomId;
  missing: UserId[];
  attempt: number;
}

export interface AckTrackerOptions {
  /** Re-send interval to recipients that have not acked; 0 disables re-sends. */
  retryMs: number;
  /** How long a finished report stays queryable (and late acks recognised). */
  reportRetentionMs: number;
  /** Most finished reports kept at once; over it the oldest is forgotten first (default: no limit). */
  maxFinished?: number;
  onReport: (report: DeliveryReport, senderId: UserId) => void;
  onRetry: (request: RetryRequest) => void;
  now?: () => number;
}

interface PendingEntry {
  messageId: MessageId;
  conversationId: RoomId;
  senderId: UserId;
  expected: UserId[];
  /** `expected` as a set: an ack's check is one lookup, not a scan of a room's worth of ids. */
  expectedSet: Set<UserId>;
  acked: Set<UserId>;
  createdAt: number;
  expiresAt: number;
  attempts: number;
  timeout: NodeJS.Timeout;
  retry: NodeJS.Timeout | null;
}

interface FinishedEntry {
  report: DeliveryReport;
  senderId: UserId;
  forgetAt: number;
}

export class AckTracker {
  private readonly pendingById = new Map<MessageId, PendingEntry>();
  private readonly finished = new Map<MessageId, FinishedEntry>();
  private readonly now: () => number;
  private readonly sweepTimer: NodeJS.Timeout;

  constructor(private readonly options: AckTrackerOptions) {
    this.now = options.now ?? Date.now;
    const every = Math.max(50, Math.min(60_000, Math.floor(options.reportRetentionMs / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  /** Starts waiting for the expected users; with nobody to wait for, reports `failed` at once. */
  track(input: TrackInput): void {
    if (this.pendingById.has(input.messageId) || this.finished.has(input.messageId)) {
      throw new Error(`message ${input.messageId} is already tracked`);
    }
    const createdAt = this.now();
    const expectedSet = new Set(input.expected);
    const entry: PendingEntry = {
      messageId: input.messageId,
      conversationId: input.conversationId,
      senderId: input.senderId,
      expected: [...expectedSet],
      expectedSet,
      acked: new Set(),
      createdAt,
      expiresAt: createdAt + input.timeoutMs,
      attempts: 1,
      timeout: undefined as unknown as NodeJS.Timeout,
      retry: null,
    };
    this.pendingById.set(entry.messageId, entry);
    if (entry.expected.length === 0) {
      this.complete(entry);
      return;
    }
    entry.timeout = setTimeout(() => this.complete(entry), input.timeoutMs);
    entry.timeout.unref();
    if (this.options.retryMs > 0 && this.options.retryMs < input.timeoutMs) {
      entry.retry = setInterval(() => this.retry(entry), this.options.retryMs);
      entry.retry.unref();
    }
  }

  /**
   * Takes over a message another node was tracking (that node died): same deadline, the acks
   * recorded so far. Reports at once if the deadline has passed or everyone has acked.
   */
  adopt(input: { messageId: MessageId; conversationId: RoomId; senderId: UserId; expected: readonly UserId[]; acked: readonly UserId[]; createdAt: number; expiresAt: number }): void {
    if (this.pendingById.has(input.messageId) || this.finished.has(input.messageId)) return;
    const expectedSet = new Set(input.expected);
    const expected = [...expectedSet];
    const entry: PendingEntry = {
      messageId: input.messageId,
      conversationId: input.conversationId,
      senderId: input.senderId,
      expected,
      expectedSet,
      acked: new Set(input.acked.filter((u) => expectedSet.has(u))),
      createdAt: input.createdAt,
      expiresAt: input.expiresAt,
      attempts: 1,
      timeout: undefined as unknown as NodeJS.Timeout,
      retry: null,
    };
    this.pendingById.set(entry.messageId, entry);
    const left = input.expiresAt - this.now();
    if (entry.acked.size === expected.length || left <= 0) {
      this.complete(entry);
      return;
    }
    entry.timeout = setTimeout(() => this.complete(entry), left);
    entry.timeout.unref();
  }

  /** Forgets a message without a report: its publish failed, so nobody received it. */
  cancel(messageId: MessageId): void {
    const entry = this.pendingById.get(messageId);
    if (!entry) return;
    this.pendingById.delete(messageId);
    clearTimeout(entry.timeout);
    if (entry.retry) clearInterval(entry.retry);
  }

  /** Whether the message is still waiting for acks here. */
  isPending(messageId: MessageId): boolean {
    return this.pendingById.has(messageId);
  }

  /** Whether this tracker holds the message, pending or finished. */
  has(messageId: MessageId): boolean {
    return this.pendingById.has(messageId) || this.finishedEntry(messageId) !== undefined;
  }

  /**
   * Records `userId`'s ack of `messageId`. Throws if the message is unknown or the user was not
   * expected. Answers with one of the shared results (ack-results.ts): nothing is allocated per ack.
   */
  ack(messageId: MessageId, conversationId: RoomId, userId: UserId): AckResult {
    const entry = this.pendingById.get(messageId);
    if (entry && entry.conversationId === conversationId) {
      if (!entry.expectedSet.has(userId)) {
        throw new DomainError('ACK_NOT_EXPECTED', `user ${userId} is not an expected recipient of message ${messageId}`);
      }
      if (entry.acked.has(userId)) return ACK_DUPLICATE;
      entry.acked.add(userId);
      if (entry.acked.size === entry.expected.length) this.complete(entry);
      return ACK_ACCEPTED;
    }
    const done = this.finishedEntry(messageId);
    if (done && done.report.conversationId === conversationId) {
      if (!done.report.expected.includes(userId)) {
        throw new DomainError('ACK_NOT_EXPECTED', `user ${userId} is not an expected recipient of message ${messageId}`);
      }
      return lateAck(done.report.acked.includes(userId));
    }
    throw new DomainError('ACK_UNKNOWN', `no acknowledged message ${messageId} in conversation ${conversationId}`);
  }

  /** The report, finished or in progress; undefined once forgotten or never tracked. */
  status(messageId: MessageId): { report: DeliveryReport | PendingDeliveryReport; senderId: UserId } | undefined {
    const entry = this.pendingById.get(messageId);
    if (entry) {
      return {
        senderId: entry.senderId,
        report: {
          messageId: entry.messageId,
          conversationId: entry.conversationId,
          status: 'pending',
          expected: [...entry.expected],
          acked: entry.expected.filter((u) => entry.acked.has(u)),
          missing: entry.expected.filter((u) => !entry.acked.has(u)),
          createdAt: new Date(entry.createdAt),
          completedAt: null,
          latencyMs: null,
          expiresAt: new Date(entry.expiresAt),
        },
      };
    }
    const done = this.finishedEntry(messageId);
    return done && { report: done.report, senderId: done.senderId };
  }

  pending(filter: { conversationId?: RoomId } = {}): PendingAckSnapshot[] {
    const out: PendingAckSnapshot[] = [];
    for (const e of this.pendingById.values()) {
      if (filter.conversationId !== undefined && e.conversationId !== filter.conversationId) continue;
      out.push({
        messageId: e.messageId,
        conversationId: e.conversationId,
        senderId: e.senderId,
        expected: [...e.expected],
        acked: e.expected.filter((u) => e.acked.has(u)),
        missing: e.expected.filter((u) => !e.acked.has(u)),
        createdAt: new Date(e.createdAt),
        expiresAt: new Date(e.expiresAt),
        attempts: e.attempts,
      });
    }
    return out;
  }

  get pendingCount(): number {
    return this.pendingById.size;
  }

  /** Pending acks of one sender (for the per-sender limit). */
  pendingOf(senderId: UserId): number {
    let n = 0;
    for (const e of this.pendingById.values()) if (e.senderId === senderId) n += 1;
    return n;
  }

  /** Reports every pending entry now, as it stands (graceful shutdown). */
  flushAll(): void {
    for (const entry of [...this.pendingById.values()]) this.complete(entry);
  }

  /** Stops all timers; pending entries are reported first. */
  close(): void {
    this.flushAll();
    clearInterval(this.sweepTimer);
  }

  private retry(entry: PendingEntry): void {
    if (!this.pendingById.has(entry.messageId)) return;
    entry.attempts += 1;
    const missing = entry.expected.filter((u) => !entry.acked.has(u));
    this.options.onRetry({ messageId: entry.messageId, conversationId: entry.conversationId, missing, attempt: entry.attempts });
  }

  private complete(entry: PendingEntry): void {
    // Leaves the map exactly once, whichever path gets here first.
    if (!this.pendingById.delete(entry.messageId)) return;
    clearTimeout(entry.timeout);
    if (entry.retry) clearInterval(entry.retry);
    const completedAt = this.now();
    const acked = entry.expected.filter((u) => entry.acked.has(u));
    const missing = entry.expected.filter((u) => !entry.acked.has(u));
    const status = acked.length === 0 ? 'failed' : missing.length === 0 ? 'delivered' : 'partial';
    const report: DeliveryReport = {
      messageId: entry.messageId,
      conversationId: entry.conversationId,
      status,
      expected: [...entry.expected],
      acked,
      missing,
      createdAt: new Date(entry.createdAt),
      completedAt: new Date(completedAt),
      latencyMs: completedAt - entry.createdAt,
    };
    this.finished.set(entry.messageId, { report, senderId: entry.senderId, forgetAt: completedAt + this.options.reportRetentionMs });
    if (this.finished.size > (this.options.maxFinished ?? Number.POSITIVE_INFINITY)) this.finished.delete(this.finished.keys().next().value!);
    this.options.onReport(report, entry.senderId);
  }

  private finishedEntry(messageId: MessageId): FinishedEntry | undefined {
    const done = this.finished.get(messageId);
    if (done && done.forgetAt <= this.now()) {
      this.finished.delete(messageId);
      return undefined;
    }
    return done;
  }

  private sweep(): void {
    const now = this.now();
    for (const [id, done] of this.finished) if (done.forgetAt <= now) this.finished.delete(id);
  }
}
