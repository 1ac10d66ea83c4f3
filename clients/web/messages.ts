/**
 * A conversation's message log: each message once (by id, whichever way it came), in the room's
 * order, delivery reports matched to their messages, the newest page on join or resync and
 * "earlier" scrollback.
 */
import type { DeliveryReport, RoomEvent } from './client.ts';
import { errorText, isNearEnd, notice, scrollToEnd, ui } from './dom.ts';
import { render, renderDelivery } from './message-view.ts';
import { names, PAGE_SIZE, rooms, session, type MessageEvent, type MessageView, type Room } from './state.ts';
import { countUnread } from './unread.ts';

/** The "Load earlier messages" button. */
export function initMessages(): void {
  ui.earlier.addEventListener('click', () => {
    if (session.active) void loadEarlier(session.active);
  });
}

function viewOf(event: MessageEvent, eventId: string): MessageView {
  const m = event.message;
  if (m.senderName) names.set(m.senderId, m.senderName);
  return { key: m.id, senderId: m.senderId, senderName: m.senderName, body: m.body, sentAt: new Date(m.sentAt), eventId, mine: m.senderId === session.me?.userId, sending: false, delivery: undefined, element: null };
}

/** Puts a message in its place (by time sent), once; returns false when it was already there. */
export function insert(room: Room, view: MessageView): boolean {
  if (room.messages.has(view.key)) return false;
  room.messages.set(view.key, view);
  let i = room.order.length;
  while (i > 0 && comesAfter(room.order[i - 1]!, view)) i--;
  room.order.splice(i, 0, view);
  const report = room.reports.get(view.key);
  if (report) {
    room.reports.delete(view.key);
    view.delivery = report;
  }
  if (room === session.active) {
    const next = room.order[i + 1]?.element ?? null;
    ui.messages.insertBefore(render(view), next);
  }
  return true;
}

const SEQ = /^(.*):(\d+)$/;

/**
 * Room order: by the stored events' sequence where both have one in the same epoch (exact, and
 * the same on every node), else by time sent; a send still in flight goes last.
 */
function comesAfter(a: MessageView, b: MessageView): boolean {
  const sa = a.eventId ? SEQ.exec(a.eventId) : null;
  const sb = b.eventId ? SEQ.exec(b.eventId) : null;
  if (sa && sb && sa[1] === sb[1]) return Number(sa[2]) > Number(sb[2]);
  if (a.sentAt.getTime() !== b.sentAt.getTime()) return a.sentAt > b.sentAt;
  return !a.eventId && !!b.eventId;
}

/**
 * How a message came: `live` on the room's stream (a resume's replay too); `scrollback` from a
 * history page (on join, or "earlier"); `reread` in the newest page read again after a resync,
 * where what is newer than anything the room had is what the tab missed.
 */
export type Arrival = 'live' | 'scrollback' | { reread: MessageView | undefined };

export function addMessage(room: Room, event: MessageEvent, eventId: string, arrival: Arrival): void {
  const nearEnd = isNearEnd();
  const view = viewOf(event, eventId);
  if (!insert(room, view)) return; // already shown (by message id): never counted twice
  if (arrival === 'scrollback') return;
  if (room === session.active) {
    if (arrival === 'live' && nearEnd) scrollToEnd();
    return;
  }
  if (view.mine) return; // one's own, sent from another tab or device
  if (arrival === 'live' || !arrival.reread || comesAfter(view, arrival.reread)) countUnread(room);
}

export function applyReport(room: Room, report: DeliveryReport): void {
  const view = room.messages.get(report.messageId);
  if (!view) {
    room.reports.set(report.messageId, report);
    return;
  }
  view.delivery = report;
  if (view.element) renderDelivery(view, view.element);
}

/**
 * The newest page: on join, and again after a resync (merged by message id, so nothing shows
 * twice; what the resync brought that is newer than what the room had counts as unread).
 */
export async function loadNewest(room: Room, resync = false): Promise<void> {
  try {
    const page = await room.conversation.history({ limit: PAGE_SIZE, types: ['message', 'message_delivered'] });
    if (rooms.get(room.id) !== room) return;
    // A resync before the first page was ever read has nothing to compare with: all of it is scrollback.
    applyPage(room, page.events, resync && room.nextBefore !== undefined ? { reread: room.order.at(-1) } : 'scrollback');
    room.nextBefore = page.nextBefore;
    if (room === session.active) {
      renderEarlier(room);
      scrollToEnd();
    }
  } catch (error) {
    if (rooms.get(room.id) === room) notice(`Could not read the history of ${room.id}: ${errorText(error)}`);
  }
}

async function loadEarlier(room: Room): Promise<void> {
  if (room.loadingEarlier || !room.nextBefore) return;
  const hadFocus = document.activeElement === ui.earlier;
  room.loadingEarlier = true;
  renderEarlier(room);
  const before = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  try {
    const page = await room.conversation.history({ before: room.nextBefore, limit: PAGE_SIZE, types: ['message', 'message_delivered'] });
    if (rooms.get(room.id) !== room) return;
    ui.log.setAttribute('aria-busy', 'true');
    applyPage(room, page.events, 'scrollback');
    ui.log.setAttribute('aria-busy', 'false');
    room.nextBefore = page.nextBefore;
    // Keep what the reader was looking at where it was.
    if (room === session.active) ui.scroller.scrollTop = ui.scroller.scrollHeight - before;
  } catch (error) {
    notice(`Could not load earlier messages: ${errorText(error)}`);
  } finally {
    room.loadingEarlier = false;
    if (room === session.active) renderEarlier(room);
    // Disabled while it loaded, the button lost focus (to <body>): it gets it back, or, once nothing
    // older is kept and the button is gone, the note in its place does. Unless focus moved on meanwhile.
    const dropped = document.activeElement === null || document.activeElement === document.body;
    if (hadFocus && dropped && room === session.active) (ui.earlier.hidden ? ui.earlierNote : ui.earlier).focus();
  }
}

function applyPage(room: Room, events: Array<{ id: string; event: RoomEvent }>, arrival: Exclude<Arrival, 'live'>): void {
  // Newest first: reports before their messages, which `insert` picks up.
  for (const { id, event } of events) {
    if (event.type === 'message') addMessage(room, event, id, arrival);
    else if (event.type === 'message_delivered') applyReport(room, event.report);
  }
}

export function renderAllMessages(room: Room): void {
  ui.log.setAttribute('aria-busy', 'true');
  ui.messages.replaceChildren(...room.order.map(render));
  ui.log.setAttribute('aria-busy', 'false');
}

export function renderEarlier(room: Room): void {
  ui.earlier.disabled = room.loadingEarlier || !room.nextBefore;
  ui.earlier.hidden = room.nextBefore === null;
  ui.earlierNote.hidden = room.nextBefore !== null;
}
