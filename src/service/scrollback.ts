import type { Broker } from '../broker/broker.ts';
import type { Audience, EventId, Principal, RoomEnvelope, RoomEvent, RoomId, UserId } from '../domain/types.ts';
import { eventType } from '../history/stored-event.ts';

/**
 * Scrollback (`conversation.history`, issue 13): a page of the room's stored events, newest
 * first, read from the same history resume uses (the broker's: memory on one node, the Redis
 * stream in a cluster). A window of the last HISTORY_SIZE stored events, not an archive.
 */

export interface HistoryQuery {
  conversationId: RoomId;
  /** Only events strictly older than this id (a page's `nextBefore`); the newest kept when absent. */
  before?: EventId;
  /** At most this many events (the router bounds it: 1–100, default 50). */
  limit: number;
  /** Only events of these types; every stored type when absent. */
  types?: readonly string[];
}

export interface HistoryPage {
  /** Newest first, each with the id it had on every live stream. */
  events: Array<{ id: EventId; event: RoomEvent }>;
  /** Pass as `before` for the next (older) page; null when nothing older this caller may see is kept. */
  nextBefore: EventId | null;
}

/**
 * The caller's page. Audience rules per caller: an event addressed to some users only (a delivery
 * report) is theirs only; `exceptConnection` (and `exceptClient`) do not hide an event from its
 * sender — a chat shows your own messages — nor does anything else that only spares a live
 * connection a copy it does not need. Access is the caller's (the edge checks it first).
 */
export async function readHistory(broker: Broker, principal: Principal, query: HistoryQuery): Promise<HistoryPage> {
  const types = query.types && new Set(query.types);
  const userId = principal.userId;
  // Filtered by type and audience without decoding; only the page's events are decoded.
  const page = await broker.readBefore(query.conversationId, query.before ?? null, query.limit, (envelope: RoomEnvelope) => (!types || types.has(eventType(envelope))) && visibleTo(envelope.audience, userId));
  const events = page.events.map(({ id, event }) => ({ id, event }));
  return { events, nextBefore: page.more && events.length > 0 ? events.at(-1)!.id : null };
}

/** Whether a stored event is `userId`'s to read back: the user-level audience rules only. */
export function visibleTo(audience: Audience, userId: UserId): boolean {
  if (audience.onlyUsers && !audience.onlyUsers.includes(userId)) return false;
  if (audience.exceptUser === userId) return false;
  return true;
}
