/**
 * The conversation list: joining (the join form, a tab per conversation, its subscriptions),
 * leaving, and selecting which conversation the page shows.
 */
import { errorText, notice, scrollToEnd, ui } from './dom.ts';
import { addMessage, applyReport, loadNewest, renderAllMessages, renderEarlier } from './messages.ts';
import { renderPresence } from './presence.ts';
import { CONVERSATION_ID, names, rooms, ROOMS_KEY, session, type Room } from './state.ts';
import { clearUnread } from './unread.ts';

/** The join form and the Leave button. */
export function initConversations(): void {
  ui.joinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = ui.conversation.value.trim();
    if (!CONVERSATION_ID.test(id)) {
      ui.conversation.setCustomValidity('1–128 letters, digits or _ . : -');
      ui.conversation.reportValidity();
      return;
    }
    ui.conversation.setCustomValidity('');
    ui.conversation.value = '';
    select(rooms.get(id) ?? join(id, true));
    ui.message.focus();
  });
  ui.conversation.addEventListener('input', () => ui.conversation.setCustomValidity(''));

  ui.leave.addEventListener('click', () => {
    if (session.active) leave(session.active);
  });
}

export function join(id: string, save: boolean): Room {
  const existing = rooms.get(id);
  if (existing || !session.chat) return existing!;
  const client = session.chat;
  const tab = document.createElement('button');
  tab.type = 'button';
  tab.className = 'tab';
  tab.setAttribute('aria-controls', 'room');
  tab.title = id; // a long id is cut short in the side column
  const name = document.createElement('span');
  name.className = 'tab-name';
  name.textContent = id; // its accessible name: exactly the conversation id (", 3 unread" added while there are)
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.setAttribute('aria-hidden', 'true');
  badge.hidden = true;
  tab.append(name, badge);
  const room: Room = {
    id,
    conversation: client.join(id, {
      // Not after sign-out or a refused token: a join of a client that is gone says nothing.
      onError: (error) => {
        if (session.chat === client && rooms.get(id) === room) notice(`Could not join ${id}: ${errorText(error)}`);
      },
    }),
    messages: new Map(),
    order: [],
    nextBefore: undefined,
    loadingEarlier: false,
    unread: 0,
    tab,
    draft: '',
    reports: new Map(),
    removers: [],
  };
  tab.addEventListener('click', () => select(room));
  ui.tabs.append(tab);
  rooms.set(id, room);
  if (save) sessionStorage.setItem(ROOMS_KEY, [...rooms.keys()].join(','));

  const c = room.conversation;
  room.removers.push(
    c.on('message', (event, eventId) => addMessage(room, event, eventId, 'live')),
    c.on('message_delivered', (event) => applyReport(room, event.report)),
    c.on('resync', (event) => {
      notice(`Resynced ${id}: the server could not replay what this tab missed (${event.reason}); messages were read again.`);
      void loadNewest(room, true);
    }),
    c.onPresence((presence) => {
      for (const member of presence.members.values()) if (member.name) names.set(member.userId, member.name);
      if (room === session.active) renderPresence(presence);
    }),
  );
  void loadNewest(room);
  return room;
}

/** Leaving stops the subscription (the others see you go); the last conversation stays. */
function leave(room: Room): void {
  if (rooms.size < 2 || !rooms.has(room.id)) return;
  session.chat?.setTyping(room.id, false);
  for (const remove of room.removers) remove();
  room.conversation.leave();
  room.tab.remove();
  rooms.delete(room.id);
  sessionStorage.setItem(ROOMS_KEY, [...rooms.keys()].join(','));
  if (session.active === room) {
    session.active = null;
    const next = rooms.values().next().value!;
    select(next);
    next.tab.focus();
  } else {
    renderLeave();
  }
}

function renderLeave(): void {
  const active = session.active;
  ui.leave.disabled = rooms.size < 2;
  ui.leave.setAttribute('aria-label', active ? `Leave ${active.id}` : 'Leave');
  ui.leave.title = rooms.size < 2 ? 'Join another conversation first' : '';
}

export function select(room: Room): void {
  const active = session.active;
  if (active === room) return;
  if (active) {
    active.draft = ui.message.value;
    session.chat?.setTyping(active.id, false);
  }
  session.active = room;
  clearUnread(room);
  for (const r of rooms.values()) {
    if (r === room) r.tab.setAttribute('aria-current', 'true');
    else r.tab.removeAttribute('aria-current');
  }
  ui.roomTitle.textContent = `# ${room.id}`;
  renderLeave();
  ui.message.value = room.draft;
  renderAllMessages(room);
  renderPresence(room.conversation.presence);
  renderEarlier(room);
  scrollToEnd();
}
