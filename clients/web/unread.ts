/**
 * Unread messages in the conversations not on screen: a count on the conversation's button (a
 * badge, and in its accessible name: "lobby, 3 unread"), cleared when it is opened, and one polite
 * announcement for screen readers that sums up what came in ("3 unread messages in lobby"), not
 * one per message. Only someone else's live message counts: never one's own (from this tab or
 * another), never scrollback; a message already shown (by id) is not counted twice.
 */
import { ui } from './dom.ts';
import { rooms, type Room } from './state.ts';

/** Messages arriving within this long after the first one are summed up in one announcement. */
const ANNOUNCE_AFTER_MS = 600;

const pending = new Set<Room>();
let timer: ReturnType<typeof setTimeout> | undefined;

/** One more unread message in a conversation not on screen. */
export function countUnread(room: Room): void {
  room.unread += 1;
  renderUnread(room);
  announce(room);
}

/** Opening a conversation reads it. */
export function clearUnread(room: Room): void {
  room.unread = 0;
  pending.delete(room);
  renderUnread(room);
}

export function renderUnread(room: Room): void {
  const { tab, unread } = room;
  tab.classList.toggle('unread', unread > 0);
  const badge = tab.querySelector<HTMLElement>('.badge');
  if (badge) {
    badge.textContent = unread > 99 ? '99+' : String(unread);
    badge.hidden = unread === 0;
  }
  // The badge is aria-hidden; the name says it in words.
  if (unread > 0) tab.setAttribute('aria-label', `${room.id}, ${unread} unread`);
  else tab.removeAttribute('aria-label');
}

function announce(room: Room): void {
  pending.add(room);
  if (timer !== undefined) return;
  // Emptied first, so the same words later (after the conversation was read) are announced again.
  ui.announcer.textContent = '';
  timer = setTimeout(() => {
    timer = undefined;
    const parts = [...pending].filter((r) => r.unread > 0 && rooms.get(r.id) === r).map((r) => `${r.unread} unread message${r.unread === 1 ? '' : 's'} in ${r.id}`);
    pending.clear();
    if (parts.length > 0) ui.announcer.textContent = parts.join('; ');
  }, ANNOUNCE_AFTER_MS);
}

/** Signing out: nothing more to announce. */
export function resetAnnouncer(): void {
  clearTimeout(timer);
  timer = undefined;
  pending.clear();
  ui.announcer.textContent = '';
}
