import superjson from 'superjson';
import { DomainError } from '../domain/errors.ts';
import type { DeliveryReport, MessageId, PendingDeliveryReport, RoomId, UserId } from '../domain/types.ts';
import type { ClusterNode } from './cluster-node.ts';
import type { ClusterKeys } from './keys.ts';
import type { RedisConnections } from './redis-connection.ts';
import type { Logger } from '../logger.ts';
import type { AckItem, AckOutcome, AckRouter } from '../acks/ack-router.ts';
import { ACK_DUPLICATE, ACK_ACCEPTED, ACK_LATE, lateAck } from '../acks/ack-results.ts';
import type { AckResult, AckTracker, PendingAckSnapshot, TrackInput } from '../acks/ack-tracker.ts';

/**
 * Acks across nodes. The node that accepted a send owns the message: its tracker keeps the
 * timer, the re-sends and the report. Before the message is published, the owner writes a record
 * to Redis (owner, conversation, sender, expected, deadline); an ack on any node is checked and
 * recorded there by one script, which also names the owner, and the owner is notified. Recording
 * every ack in Redis is what lets a survivor take over a dead owner's messages with an exact
 * count: it claims the record (same script slot, so no ack falls between) and finishes it with
 * the original deadline. Final reports are written back so `deliveryStatus` answers on any node.
 */

const ACK_SCRIPT = `
local h = redis.call('HMGET', KEYS[1], 'o', 'c', 'e', 'x')
if not h[1] then
  local r = redis.call('GET', KEYS[3])
  if r then return {'late', r} end
  return {'unknown'}
end
if h[2] ~= ARGV[1] then return {'unknown'} end
local found = false
for _, u in ipairs(cjson.decode(h[3])) do
  if u == ARGV[2] then found = true break end
end
if not found then return {'not_expected'} end
local t = redis.call('TIME')
if t[1] * 1000 + math.floor(t[2] / 1000) > tonumber(h[4]) then return {'late_deadline'} end
local added = redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], redis.call('PTTL', KEYS[1]))
return {'ok', h[1], added}
`;

/**
 * Claims the right to report: false if another node owns the message now (it adopted it) or
 * has reported it already; otherwise the acks recorded in Redis, which the owner merges in (an
 * ack counted on another node whose notification had not arrived before the deadline fired).
 */
const FINALIZE_SCRIPT = `
local owner = redis.call('HGET', KEYS[1], 'o')
if owner and owner ~= ARGV[1] then return false end
if not owner and redis.call('EXISTS', KEYS[3]) == 1 then return false end
return redis.call('SMEMBERS', KEYS[2])
`;

const TAKEOVER_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], 'o', ARGV[1])
local h = redis.call('HMGET', KEYS[1], 'c', 's', 'e', 't', 'x')
return {h[1], h[2], h[3], h[4], h[5], redis.call('SMEMBERS', KEYS[2])}
`;

type Scripted = {
  rtAck(record: string, acked: string, report: string, conversationId: string, userId: string): Promise<[string, string?, number?]>;
  rtTakeover(record: string, acked: string, nodeId: string): Promise<[string, string, string, string, string, string[]] | null>;
  rtFinalize(record: string, acked: string, report: string, nodeId: string): Promise<string[] | null>;
};

interface StoredReport {
  report: DeliveryReport;
  senderId: UserId;
}

interface UnwrittenReport extends StoredReport {
  announce: () => void;
}

export interface ClusterAckRouterOptions {
  tracker: AckTracker;
  node: ClusterNode;
  redis: RedisConnections;
  keys: ClusterKeys;
  /** How long finished reports stay readable (and late acks recognised). */
  retentionMs: number;
  log: Logger;
}

export class ClusterAckRouter implements AckRouter {
  private readonly cmd: Scripted;
  /** Reports finished while Redis was down, written when it is back. */
  private readonly unwritten: UnwrittenReport[] = [];
  private readonly inFlight = new Set<Promise<void>>();

  constructor(private readonly options: ClusterAckRouterOptions) {
    const { cmd } = options.redis;
    cmd.defineCommand('rtAck', { numberOfKeys: 3, lua: ACK_SCRIPT });
    cmd.defineCommand('rtTakeover', { numberOfKeys: 2, lua: TAKEOVER_SCRIPT });
    cmd.defineCommand('rtFinalize', { numberOfKeys: 3, lua: FINALIZE_SCRIPT });
    this.cmd = cmd as unknown as Scripted;
    options.node.onNotification('ack', (arg) => {
      const { messageId, conversationId, userId } = arg as { messageId: MessageId; conversationId: RoomId; userId: UserId };
      try {
        options.tracker.ack(messageId, conversationId, userId);
      } catch {
        // Already reported (or forgotten): the ack was recorded in Redis all the same.
      }
    });
    options.node.handle('acks.pending', (filter) => options.tracker.pending(filter as { conversationId?: RoomId }));
    options.redis.events.on('up', () => void this.flushReports());
  }

  async track(input: TrackInput): Promise<void> {
    const { tracker, keys, node } = this.options;
    this.options.redis.assertAvailable();
    tracker.track(input);
    if (input.expected.length === 0) return; // reported already
    const createdAt = Date.now();
    const record = keys.ack(input.messageId);
    const ttl = input.timeoutMs + this.options.retentionMs + 60_000;
    try {
      // Two slots, so two commands (a MULTI must stay on one slot on a Redis Cluster). The
      // node's list first: should this node die between the two, a survivor finds an id without
      // a record and skips it — the message was not published yet (tracking comes first).
      await this.options.redis.cmd.sadd(keys.nodeAcks(node.nodeId), input.messageId);
      await this.options.redis.cmd
        .multi()
        .hset(record, { o: node.nodeId, c: input.conversationId, s: input.senderId, e: JSON.stringify([...new Set(input.expected)]), t: createdAt, x: createdAt + input.timeoutMs })
        .pexpire(record, ttl)
        .pexpire(keys.ackAcked(input.messageId), ttl)
        .exec();
    } catch (error) {
      tracker.cancel(input.messageId);
      if (this.options.redis.available) void this.options.redis.cmd.srem(keys.nodeAcks(node.nodeId), input.messageId).catch(() => undefined);
      throw error;
    }
  }

  cancel(messageId: MessageId): void {
    this.options.tracker.cancel(messageId);
    if (this.options.redis.available) {
      void this.options.redis.cmd.del(this.options.keys.ack(messageId)).catch(() => undefined);
      void this.options.redis.cmd.srem(this.options.keys.nodeAcks(this.options.node.nodeId), messageId).catch(() => undefined);
    }
  }

  reported(report: DeliveryReport, senderId: UserId, announce: () => void): void {
    const pending: UnwrittenReport = { report, senderId, announce };
    if (!this.options.redis.available) {
      this.keepUnwritten(pending);
      return;
    }
    const writing = this.finalize(pending).catch((error: unknown) => {
      this.options.log.warn({ err: error, messageId: report.messageId }, 'report write failed; retried when Redis is back');
      this.keepUnwritten(pending);
    });
    this.inFlight.add(writing);
    void writing.finally(() => this.inFlight.delete(writing));
  }

  async drain(timeoutMs: number): Promise<void> {
    if (this.inFlight.size === 0) return;
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }

  private keepUnwritten(pending: UnwrittenReport): void {
    if (this.unwritten.length < 10_000) {
      this.unwritten.push(pending);
      return;
    }
    this.options.log.error({ messageId: pending.report.messageId }, 'too many reports waiting for Redis; announcing without writing it');
    pending.announce();
  }

  /** Writes the report if this node still owns the message, then announces it; an adopted message is left to its adopter. */
  private async finalize(pending: UnwrittenReport): Promise<void> {
    const { keys, node } = this.options;
    const { report, senderId } = pending;
    const id = report.messageId;
    const recorded = await this.cmd.rtFinalize(keys.ack(id), keys.ackAcked(id), keys.ackReport(id), node.nodeId);
    void this.options.redis.cmd.srem(keys.nodeAcks(node.nodeId), id).catch(() => undefined);
    if (recorded === null) {
      this.options.log.warn({ messageId: id }, 'message adopted by another node meanwhile: its report is left to that node');
      return;
    }
    const acked = new Set([...report.acked, ...recorded]);
    if (acked.size !== report.acked.length) {
      report.acked = report.expected.filter((u) => acked.has(u));
      report.missing = report.expected.filter((u) => !acked.has(u));
      report.status = report.missing.length === 0 ? 'delivered' : report.acked.length === 0 ? 'failed' : 'partial';
    }
    await this.options.redis.cmd
      .multi()
      .set(keys.ackReport(id), superjson.stringify({ report, senderId }), 'PX', this.options.retentionMs)
      .del(keys.ack(id), keys.ackAcked(id))
      .exec();
    pending.announce();
  }

  async ack(messageId: MessageId, conversationId: RoomId, userId: UserId): Promise<AckResult> {
    const { tracker, keys } = this.options;
    if (tracker.has(messageId)) {
      const result = tracker.ack(messageId, conversationId, userId);
      // Recorded for a takeover should this node die before reporting — only while still
      // pending: an ack that completed the message would re-create the set after the report
      // deleted it (found by chaos), leaving a key without expiry.
      if (result.accepted && !result.duplicate && tracker.isPending(messageId) && this.options.redis.available) {
        void this.cmd.rtAck(keys.ack(messageId), keys.ackAcked(messageId), keys.ackReport(messageId), conversationId, userId).catch(() => undefined);
      }
      return result;
    }
    this.options.redis.assertAvailable();
    const [outcome, detail, added] = await this.cmd.rtAck(keys.ack(messageId), keys.ackAcked(messageId), keys.ackReport(messageId), conversationId, userId);
    if (outcome === 'ok') {
      if (added === 1) this.options.node.notify(detail!, 'ack', { messageId, conversationId, userId });
      return added === 1 ? ACK_ACCEPTED : ACK_DUPLICATE;
    }
    if (outcome === 'late') {
      const { report } = superjson.parse<StoredReport>(detail!);
      if (report.conversationId !== conversationId) throw unknownAck(messageId, conversationId);
      if (!report.expected.includes(userId)) throw notExpected(messageId, userId);
      return lateAck(report.acked.includes(userId));
    }
    if (outcome === 'not_expected') throw notExpected(messageId, userId);
    // Past the deadline the owner is reporting without it: say so rather than "accepted".
    if (outcome === 'late_deadline') return ACK_LATE;
    throw unknownAck(messageId, conversationId);
  }

  /**
   * A list may span messages owned by different nodes: each item goes its own way (`ack`). The
   * ones this node owns are answered at once, in order; the others are one script call each,
   * sent in order on the one command connection, so a repeat within the list is a duplicate.
   */
  ackMany(items: readonly AckItem[], userId: UserId): Promise<AckOutcome[]> {
    return Promise.all(
      items.map((item) =>
        this.ack(item.messageId, item.conversationId, userId).catch((error: unknown) => {
          if (error instanceof DomainError) return error;
          throw error;
        }),
      ),
    );
  }

  async status(messageId: MessageId): Promise<{ report: DeliveryReport | PendingDeliveryReport; senderId: UserId } | undefined> {
    const local = this.options.tracker.status(messageId);
    if (local) return local;
    this.options.redis.assertAvailable();
    const { keys } = this.options;
    const raw = await this.options.redis.cmd.get(keys.ackReport(messageId));
    if (raw) return superjson.parse<StoredReport>(raw);
    const [record, acked] = await Promise.all([this.options.redis.cmd.hgetall(keys.ack(messageId)), this.options.redis.cmd.smembers(keys.ackAcked(messageId))]);
    if (!record.o) return undefined;
    const expected = JSON.parse(record.e!) as UserId[];
    const ackedSet = new Set(acked);
    return {
      senderId: record.s!,
      report: {
        messageId,
        conversationId: record.c!,
        status: 'pending',
        expected,
        acked: expected.filter((u) => ackedSet.has(u)),
        missing: expected.filter((u) => !ackedSet.has(u)),
        createdAt: new Date(Number(record.t)),
        completedAt: null,
        latencyMs: null,
        expiresAt: new Date(Number(record.x)),
      },
    };
  }

  async pending(filter: { conversationId?: RoomId } = {}): Promise<PendingAckSnapshot[]> {
    const answers = await this.options.node.callAll<PendingAckSnapshot[]>('acks.pending', filter);
    return answers.flatMap((a) => a.value);
  }

  /** Finishes a dead node's messages here: same deadline, the acks recorded in Redis so far. */
  async takeOver(deadNodeId: string): Promise<number> {
    const { keys, node, tracker } = this.options;
    const messageIds = await this.options.redis.cmd.smembers(keys.nodeAcks(deadNodeId));
    // Emptied first: the dead node may be this node's own previous process (same NODE_ID).
    await this.options.redis.cmd.del(keys.nodeAcks(deadNodeId));
    let adopted = 0;
    for (const messageId of messageIds) {
      const claimed = await this.cmd.rtTakeover(keys.ack(messageId), keys.ackAcked(messageId), node.nodeId);
      if (!claimed) continue;
      const [conversationId, senderId, expected, createdAt, expiresAt, acked] = claimed;
      // Adopted before anything else is awaited: an ack notification may already be on its way here.
      tracker.adopt({ messageId, conversationId, senderId, expected: JSON.parse(expected) as UserId[], acked, createdAt: Number(createdAt), expiresAt: Number(expiresAt) });
      adopted += 1;
      await this.options.redis.cmd.sadd(keys.nodeAcks(node.nodeId), messageId);
    }
    if (adopted > 0) this.options.log.warn({ deadNode: deadNodeId, adopted }, 'took over pending acks of a dead node');
    return adopted;
  }

  /**
   * After this node was taken for dead: forget the pending messages another node adopted (the
   * adopter reports them), so no message is reported twice.
   */
  async yieldAdopted(): Promise<number> {
    const { tracker, keys, node } = this.options;
    let yielded = 0;
    for (const { messageId } of tracker.pending()) {
      const owner = await this.options.redis.cmd.hget(keys.ack(messageId), 'o');
      if (owner !== null && owner !== node.nodeId) {
        tracker.cancel(messageId);
        yielded += 1;
      }
    }
    if (yielded > 0) this.options.log.warn({ yielded }, 'pending acks adopted by another node while this one was cut off: left to it');
    return yielded;
  }

  private async flushReports(): Promise<void> {
    while (this.unwritten.length > 0 && this.options.redis.available) {
      const next = this.unwritten[0]!;
      try {
        await this.finalize(next);
      } catch {
        return;
      }
      this.unwritten.shift();
    }
  }
}

function unknownAck(messageId: MessageId, conversationId: RoomId): DomainError {
  return new DomainError('ACK_UNKNOWN', `no acknowledged message ${messageId} in conversation ${conversationId}`);
}

function notExpected(messageId: MessageId, userId: UserId): DomainError {
  return new DomainError('ACK_NOT_EXPECTED', `user ${userId} is not an expected recipient of message ${messageId}`);
}
