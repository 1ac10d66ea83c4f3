import type { Audience, EventId, RoomEnvelope, RoomEvent, RoomId, ResyncReason } from '../domain/types.ts';
import { compareEventIds, formatEventId, newEpoch, parseEventId, type ParsedEventId } from './event-id.ts';
import { encodeEvent, withHead, type EncodedEvent } from './serialized-event.ts';
import { keptBytes, ShapeCache, StoredEnvelope, type EventShape, type Kept } from './stored-event.ts';

/**
 * Per-room event log for resume: assigns ids (strictly increasing per room) and keeps the last
 * `size` stored events in a ring. A room's log lives while the room is active and for `ttlMs`
 * after it goes idle (empty); then it is forgotten and old ids answer `resync`. A kept event is
 * its superjson text plus a pointer to a shape it shares with its neighbours (serialized-event.ts,
 * stored-event.ts); reads hand out envelopes that carry the text and decode the event on demand.
 *
 * What idle rooms leave behind has a budget for the whole node: at most `maxIdleRooms` idle logs
 * and `maxIdleBytes` of their events (estimated). Over either, the log idle the longest is
 * forgotten at once — exactly as if its TTL had passed: a late resume gets `resync`
 * (`history_unavailable`, the room starts a new epoch), so no stream has a silent gap.
 * Pure: the clock is injected and expiry happens in `sweep()`, which the owner schedules.
 */

export type ResumeResult =
  | { kind: 'replay'; events: RoomEnvelope[]; head: EventId }
  | { kind: 'resync'; reason: ResyncReason; head: EventId };

/**
 * One page of scrollback as a history answers it: stored events strictly older than the page's
 * `before`, newest first, that the reader's `accept` takes; `more` when an older one it takes is
 * still kept (so a next page would not be empty).
 */
export interface StoredPage {
  events: RoomEnvelope[];
  more: boolean;
}

/** Which stored events a reader of scrollback takes (its type filter and audience rules). */
export type AcceptEnvelope = (envelope: RoomEnvelope) => boolean;

/**
 * The newest stored seq strictly older than `before`: a stored event's id is `<epoch>:<seq>`, so
 * an id with a sub-sequence or a local part (a typing event, a `subscribed` or `resync` position)
 * comes after stored event `seq` itself.
 */
export function newestSeqBefore(before: ParsedEventId): number {
  return before.sub === 0 && (before.local ?? 0) === 0 ? before.seq - 1 : before.seq;
}

interface RoomLog {
  epoch: string;
  lastSeq: number;
  lastSub: number;
  /**
   * Ring buffer of stored events, as two parallel rings: what each one's slot keeps (its string
   * values, or its whole text) and its shape. `start` is the oldest slot, `length` how many are kept.
   */
  kept: Kept[];
  shapes: EventShape[];
  start: number;
  length: number;
  shapeCache: ShapeCache;
  /** When the room went idle (no local member), or null while active. */
  idleSince: number | null;
  /** Estimated bytes of the kept events (keptBytes of each slot). */
  bytes: number;
}

/**
 * Whether a resume from `from` can be answered completely by a history whose head is
 * `epoch:seq.sub` and which still keeps its last `length` stored events — the one rule both the
 * in-memory and the Redis history follow. Replay is complete only if every stored event after
 * `from.seq` is still kept.
 */
export function judgeResume(
  from: ParsedEventId | null,
  history: { epoch: string; seq: number; sub: number; length: number },
): { kind: 'replay'; head: EventId } | Extract<ResumeResult, { kind: 'resync' }> {
  const head = formatEventId(history.epoch, history.seq, history.sub);
  if (!from) return { kind: 'resync', reason: 'unknown_event_id', head };
  // A stream's local part (`-k`) adds nothing to the room's history: resume from its position.
  const order = compareEventIds({ epoch: from.epoch, seq: from.seq, sub: from.sub }, history);
  if (order === null) return { kind: 'resync', reason: 'history_unavailable', head };
  if (order > 0) return { kind: 'resync', reason: 'unknown_event_id', head };
  if (from.seq + 1 < history.seq - history.length + 1) return { kind: 'resync', reason: 'history_truncated', head };
  return { kind: 'replay', head };
}

export interface RoomHistoryOptions {
  size: number;
  ttlMs: number;
  /** Node-wide budget for idle logs: how many, and their estimated bytes (default: unbounded). */
  maxIdleRooms?: number;
  maxIdleBytes?: number;
  now?: () => number;
  /** For tests that need fixed ids. */
  epoch?: () => string;
}

export class RoomHistory {
  private readonly logs = new Map<RoomId, RoomLog>();
  /** The idle logs, idle the longest first (re-inserted on activity): sweep and eviction order. */
  private readonly idle = new Map<RoomId, RoomLog>();
  private idleBytes = 0;
  private readonly maxIdleRooms: number;
  private readonly maxIdleBytes: number;
  private readonly now: () => number;
  private readonly epoch: () => string;
  /** Idle logs forgotten before their TTL to keep the budget. */
  evicted = 0;

  constructor(private readonly options: RoomHistoryOptions) {
    this.now = options.now ?? Date.now;
    this.epoch = options.epoch ?? newEpoch;
    this.maxIdleRooms = options.maxIdleRooms ?? Number.POSITIVE_INFINITY;
    this.maxIdleBytes = options.maxIdleBytes ?? Number.POSITIVE_INFINITY;
  }

  /** Gives the event the room's next id; a stored event is also kept for resume. */
  append(roomId: RoomId, event: RoomEvent, audience: Audience, store: boolean): RoomEnvelope {
    const log = this.ensure(roomId);
    const publishedAt = performance.timeOrigin + performance.now();
    if (!store) {
      log.lastSub += 1;
      if (log.idleSince !== null) this.touchIdle(roomId, log, 0);
      return { id: formatEventId(log.epoch, log.lastSeq, log.lastSub), event, audience, publishedAt };
    }
    const capacity = this.options.size;
    const encoded = capacity > 0 ? tryEncode(roomId, event) : null;
    log.lastSeq += 1;
    log.lastSub = 0;
    const envelope: RoomEnvelope = { id: formatEventId(log.epoch, log.lastSeq), event, audience, publishedAt };
    let grew = 0;
    if (capacity > 0) {
      const shape = log.shapeCache.shapeOf(roomId, encoded, audience, event);
      const kept = encoded ? encoded.kept : event;
      const bytes = keptBytes(kept);
      if (log.length < capacity) {
        // Grown as events come (most rooms hold a few), not allocated at full size.
        log.kept.push(kept);
        log.shapes.push(shape);
        log.length += 1;
        grew = bytes;
        // A full ring keeps exactly `capacity` slots: pushing left up to half as many again spare.
        if (log.length === capacity) [log.kept, log.shapes] = [log.kept.slice(), log.shapes.slice()];
      } else {
        const slot = log.start;
        grew = bytes - keptBytes(log.kept[slot]!);
        log.kept[slot] = kept;
        log.shapes[slot] = shape;
        log.start = (log.start + 1) % capacity;
      }
      log.bytes += grew;
      // The fan-out builds its frames from this serialization: the event is serialized once.
      if (encoded) envelope.serialized = { type: event.type, json: shape.head === null ? encoded.text : withHead(shape.head, encoded.text), meta: shape.meta };
    }
    if (log.idleSince !== null) this.touchIdle(roomId, log, grew);
    return envelope;
  }

  /** Activity in an idle room: it becomes the most recently idle, its size changed by `grew`. */
  private touchIdle(roomId: RoomId, log: RoomLog, grew: number): void {
    log.idleSince = this.now();
    this.idle.delete(roomId);
    this.idle.set(roomId, log);
    this.idleBytes += grew;
    this.keepBudget();
  }

  /** Forgets the logs idle the longest until the idle ones fit the budget. */
  private keepBudget(): void {
    while (this.idle.size > this.maxIdleRooms || (this.idleBytes > this.maxIdleBytes && this.idle.size > 0)) {
      const [roomId, log] = this.idle.entries().next().value!;
      this.forget(roomId, log);
      this.evicted += 1;
    }
  }

  private forget(roomId: RoomId, log: RoomLog): void {
    this.logs.delete(roomId);
    if (this.idle.delete(roomId)) this.idleBytes -= log.bytes;
  }

  /** The id of the latest event, stored or ephemeral: the resume point of a fresh subscriber. */
  head(roomId: RoomId): EventId {
    const log = this.ensure(roomId);
    return formatEventId(log.epoch, log.lastSeq, log.lastSub);
  }

  /** Everything stored after `lastEventId`, or why that cannot be answered. */
  readSince(roomId: RoomId, lastEventId: string): ResumeResult {
    const parsed = parseEventId(lastEventId);
    const log = this.ensure(roomId);
    const verdict = judgeResume(parsed, { epoch: log.epoch, seq: log.lastSeq, sub: log.lastSub, length: log.length });
    if (verdict.kind === 'resync' || !parsed) return verdict as ResumeResult;
    const { head } = verdict;
    const oldestSeq = log.lastSeq - log.length + 1;
    const events: RoomEnvelope[] = [];
    for (let i = Math.max(0, parsed.seq + 1 - oldestSeq); i < log.length; i += 1) events.push(this.read(log, i));
    return { kind: 'replay', events, head };
  }

  /**
   * Scrollback: at most `limit` stored events strictly older than `before` (the newest kept when
   * null), newest first, that `accept` takes. Reads only: an unknown room, an expired one, or a
   * `before` of another epoch (a history that no longer exists) or not one of our ids answers an
   * empty page — it never creates a log (unlike `readSince`, which runs on a join), and it does
   * not count as activity for the TTL or the idle budget.
   */
  readBefore(roomId: RoomId, before: EventId | null, limit: number, accept: AcceptEnvelope = () => true): StoredPage {
    const log = this.logs.get(roomId);
    if (!log || log.length === 0 || limit <= 0) return { events: [], more: false };
    const oldestSeq = log.lastSeq - log.length + 1;
    let newest = log.length - 1; // index among the kept events, 0 the oldest
    if (before !== null) {
      const parsed = parseEventId(before);
      if (!parsed || parsed.epoch !== log.epoch) return { events: [], more: false };
      newest = Math.min(newest, newestSeqBefore(parsed) - oldestSeq);
    }
    const events: RoomEnvelope[] = [];
    for (let i = newest; i >= 0; i -= 1) {
      const envelope = this.read(log, i);
      if (!accept(envelope)) continue;
      if (events.length === limit) return { events, more: true };
      events.push(envelope);
    }
    return { events, more: false };
  }

  /** The room has a local member again: keep its log without expiry (and outside the idle budget). */
  markActive(roomId: RoomId): void {
    const log = this.ensure(roomId);
    if (this.idle.delete(roomId)) this.idleBytes -= log.bytes;
    log.idleSince = null;
  }

  /** The room emptied: its log now expires `ttlMs` after its last activity. */
  markIdle(roomId: RoomId): void {
    const log = this.logs.get(roomId);
    if (!log) return;
    if (log.idleSince === null) this.idleBytes += log.bytes;
    this.idle.delete(roomId);
    log.idleSince = this.now();
    this.idle.set(roomId, log);
    this.keepBudget();
  }

  /** Forgets idle logs past their TTL; returns how many were dropped. */
  sweep(): number {
    const cutoff = this.now() - this.options.ttlMs;
    let dropped = 0;
    for (const [roomId, log] of this.idle) {
      if (log.idleSince! > cutoff) break; // idle order: the rest are younger
      this.forget(roomId, log);
      dropped += 1;
    }
    return dropped;
  }

  has(roomId: RoomId): boolean {
    return this.logs.has(roomId);
  }

  counts(): { rooms: number; events: number; idleRooms: number; idleBytes: number; evicted: number } {
    let events = 0;
    for (const log of this.logs.values()) events += log.length;
    return { rooms: this.logs.size, events, idleRooms: this.idle.size, idleBytes: this.idleBytes, evicted: this.evicted };
  }

  /** The kept event `i` places after the oldest, as an envelope. */
  private read(log: RoomLog, i: number): StoredEnvelope {
    const slot = (log.start + i) % this.options.size;
    return new StoredEnvelope(formatEventId(log.epoch, log.lastSeq - log.length + 1 + i), log.shapes[slot]!, log.kept[slot]!);
  }

  private ensure(roomId: RoomId): RoomLog {
    let log = this.logs.get(roomId);
    if (!log) {
      // A log created by a send to an empty room starts idle: it expires unless someone joins.
      log = { epoch: this.epoch(), lastSeq: 0, lastSub: 0, kept: [], shapes: [], start: 0, length: 0, shapeCache: new ShapeCache(), idleSince: this.now(), bytes: 0 };
      this.logs.set(roomId, log);
      this.idle.set(roomId, log);
      this.keepBudget();
    }
    return log;
  }
}

/** The event serialized for keeping, or null when it cannot be (see `Kept`). */
function tryEncode(roomId: RoomId, event: RoomEvent): EncodedEvent | null {
  try {
    return encodeEvent(roomId, event);
  } catch {
    return null;
  }
}
