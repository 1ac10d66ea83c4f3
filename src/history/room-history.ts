import type { Audience, EventId, RoomEnvelope, RoomEvent, RoomId, ResyncReason } from '../domain/types.ts';
import { compareEventIds, formatEventId, newEpoch, parseEventId, type ParsedEventId } from './event-id.ts';

/**
 * Per-room event log for resume: assigns ids (strictly increasing per room) and keeps the last
 * `size` stored events in a ring. A room's log lives while the room is active and for `ttlMs`
 * after it goes idle (empty); then it is forgotten and old ids answer `resync`.
 * Pure: the clock is injected and expiry happens in `sweep()`, which the owner schedules.
 */

export type ResumeResult =
  | { kind: 'replay'; events: RoomEnvelope[]; head: EventId }
  | { kind: 'resync'; reason: ResyncReason; head: EventId };

interface RoomLog {
  epoch: string;
  lastSeq: number;
  lastSub: number;
  /** Ring buffer of stored envelopes; `start` is the oldest, `length` how many are kept. */
  ring: Array<RoomEnvelope | undefined>;
  start: number;
  length: number;
  /** When the room went idle (no local member), or null while active. */
  idleSince: number | null;
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
  now?: () => number;
  /** For tests that need fixed ids. */
  epoch?: () => string;
}

export class RoomHistory {
  private readonly logs = new Map<RoomId, RoomLog>();
  private readonly now: () => number;
  private readonly epoch: () => string;

  constructor(private readonly options: RoomHistoryOptions) {
    this.now = options.now ?? Date.now;
    this.epoch = options.epoch ?? newEpoch;
  }

  /** Gives the event the room's next id; a stored event is also kept for resume. */
  append(roomId: RoomId, event: RoomEvent, audience: Audience, store: boolean): RoomEnvelope {
    const log = this.ensure(roomId);
    if (log.idleSince !== null) log.idleSince = this.now();
    const publishedAt = performance.timeOrigin + performance.now();
    if (!store) {
      log.lastSub += 1;
      return { id: formatEventId(log.epoch, log.lastSeq, log.lastSub), event, audience, publishedAt };
    }
    log.lastSeq += 1;
    log.lastSub = 0;
    const envelope: RoomEnvelope = { id: formatEventId(log.epoch, log.lastSeq), event, audience, publishedAt };
    const capacity = this.options.size;
    if (capacity > 0) {
      if (log.ring.length < capacity) log.ring.length = capacity;
      const slot = (log.start + log.length) % capacity;
      log.ring[slot] = envelope;
      if (log.length < capacity) log.length += 1;
      else log.start = (log.start + 1) % capacity;
    }
    return envelope;
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
    const capacity = this.options.size;
    for (let i = Math.max(0, parsed.seq + 1 - oldestSeq); i < log.length; i += 1) {
      events.push(log.ring[(log.start + i) % capacity]!);
    }
    return { kind: 'replay', events, head };
  }

  /** The room has a local member again: keep its log without expiry. */
  markActive(roomId: RoomId): void {
    this.ensure(roomId).idleSince = null;
  }

  /** The room emptied: its log now expires `ttlMs` after its last activity. */
  markIdle(roomId: RoomId): void {
    const log = this.logs.get(roomId);
    if (log) log.idleSince = this.now();
  }

  /** Forgets idle logs past their TTL; returns how many were dropped. */
  sweep(): number {
    const cutoff = this.now() - this.options.ttlMs;
    let dropped = 0;
    for (const [roomId, log] of this.logs) {
      if (log.idleSince !== null && log.idleSince <= cutoff) {
        this.logs.delete(roomId);
        dropped += 1;
      }
    }
    return dropped;
  }

  has(roomId: RoomId): boolean {
    return this.logs.has(roomId);
  }

  counts(): { rooms: number; events: number } {
    let events = 0;
    for (const log of this.logs.values()) events += log.length;
    return { rooms: this.logs.size, events };
  }

  private ensure(roomId: RoomId): RoomLog {
    let log = this.logs.get(roomId);
    if (!log) {
      // A log created by a send to an empty room starts idle: it expires unless someone joins.
      log = { epoch: this.epoch(), lastSeq: 0, lastSub: 0, ring: [], start: 0, length: 0, idleSince: this.now() };
      this.logs.set(roomId, log);
    }
    return log;
  }
}
