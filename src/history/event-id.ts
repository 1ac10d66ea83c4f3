import type { EventId } from '../domain/types.ts';

/**
 * Event ids: `<epoch>:<seq>` for stored events and `<epoch>:<seq>.<n>` for ephemeral ones sent
 * after stored event `seq`. Events that belong to one stream only (its `resync`, ack re-sends)
 * carry the stream's position plus a local part, `<position>-<k>`: after everything that stream
 * has had, before the room's next event, and a resume from it is a resume from `<position>`.
 * `seq`, `n` and `k` are zero-padded, so within one epoch the ids also sort as strings. The epoch
 * is random per room history: an id from a history that no longer exists (a restarted node, an
 * expired room) is recognised and answered with `resync`, never a silent gap.
 */

const SEQ_WIDTH = 12;

export interface ParsedEventId {
  epoch: string;
  seq: number;
  /** Sub-sequence of an ephemeral event; 0 for a stored one. */
  sub: number;
  /** Local part of an event sent to one stream only; 0 for a room event. */
  local?: number;
}

export function formatEventId(epoch: string, seq: number, sub = 0, local = 0): EventId {
  const base = `${epoch}:${String(seq).padStart(SEQ_WIDTH, '0')}`;
  const withSub = sub === 0 ? base : `${base}.${String(sub).padStart(SEQ_WIDTH, '0')}`;
  return local === 0 ? withSub : `${withSub}-${String(local).padStart(SEQ_WIDTH, '0')}`;
}

const PATTERN = /^([A-Za-z0-9]{1,32}):(\d{1,15})(?:\.(\d{1,15}))?(?:-(\d{1,15}))?$/;

export function parseEventId(id: string): ParsedEventId | null {
  const m = PATTERN.exec(id);
  if (!m) return null;
  const seq = Number(m[2]);
  const sub = m[3] === undefined ? 0 : Number(m[3]);
  const local = m[4] === undefined ? 0 : Number(m[4]);
  if (!Number.isSafeInteger(seq) || !Number.isSafeInteger(sub) || !Number.isSafeInteger(local)) return null;
  return local === 0 ? { epoch: m[1]!, seq, sub } : { epoch: m[1]!, seq, sub, local };
}

/** Orders two ids of the same epoch; ids of different epochs are not comparable (null). */
export function compareEventIds(a: ParsedEventId, b: ParsedEventId): number | null {
  if (a.epoch !== b.epoch) return null;
  return a.seq - b.seq || a.sub - b.sub || (a.local ?? 0) - (b.local ?? 0);
}

/**
 * The id of an event for one stream only, sent after `position` (the last id that stream got):
 * greater than it, smaller than the room's next event, and so never a step back for the client's
 * resume point. Null when `position` is not one of our ids.
 */
export function localEventIdAfter(position: EventId): EventId | null {
  const parsed = parseEventId(position);
  return parsed && formatEventId(parsed.epoch, parsed.seq, parsed.sub, (parsed.local ?? 0) + 1);
}

export function newEpoch(): string {
  // 48 random bits in base36: collisions across restarts are not a practical concern.
  const bytes = new Uint8Array(6);
  crypto.getRandomValues(bytes);
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n.toString(36).padStart(10, '0');
}

/**
 * The position just before a room event: a resume from it replays that event (a stored one; an
 * ephemeral one is never replayed). For a stream that goes live with that event as its first.
 */
export function eventIdBefore(id: EventId): EventId | null {
  const parsed = parseEventId(id);
  if (!parsed) return null;
  if (parsed.sub > 0) return formatEventId(parsed.epoch, parsed.seq);
  return parsed.seq > 0 ? formatEventId(parsed.epoch, parsed.seq - 1) : null;
}
