/**
 * The composer: Enter to send, the typing signal while a draft is written, and sending — the
 * message shows at once, takes its place in the room's order when the server answers, and
 * carries its delivery line when it asked for one.
 */
import type { ChatClient } from './client.ts';
import { errorText, scrollToEnd, ui } from './dom.ts';
import { render, renderDelivery } from './message-view.ts';
import { applyReport, insert } from './messages.ts';
import { session, type MessageView, type Room } from './state.ts';

let localSeq = 0;

export function initComposer(): void {
  ui.message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.composer.requestSubmit();
    }
  });

  ui.message.addEventListener('input', () => {
    if (session.active && session.chat) session.chat.setTyping(session.active.id, ui.message.value.trim() !== '');
    ui.composerError.textContent = '';
  });

  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    const room = session.active;
    const client = session.chat;
    const me = session.me;
    const body = ui.message.value;
    if (!room || !client || body.trim() === '' || !me) return;
    ui.message.value = '';
    room.draft = '';
    client.setTyping(room.id, false);
    ui.message.focus();
    const ack = ui.ack.checked;
    const view: MessageView = { key: `local:${++localSeq}`, senderId: me.userId, senderName: me.name, body, sentAt: new Date(), eventId: undefined, mine: true, sending: true, delivery: ack ? { status: 'pending' } : undefined, element: null };
    insert(room, view);
    scrollToEnd();
    void send(client, room, view, ack);
  });
}

async function send(client: ChatClient, room: Room, view: MessageView, ack: boolean): Promise<void> {
  try {
    const sent = ack ? await client.send(room.id, view.body, { ack: true }) : await client.send(room.id, view.body);
    view.sending = false;
    room.messages.delete(view.key);
    if (room.messages.has(sent.messageId)) {
      // Scrollback got there first: that copy stays, this one goes.
      room.order.splice(room.order.indexOf(view), 1);
      view.element?.remove();
      view.element = null;
      return;
    }
    // Now it has its place in the room's order: move it there.
    room.order.splice(room.order.indexOf(view), 1);
    room.messages.delete(view.key);
    view.key = sent.messageId;
    view.sentAt = new Date(sent.sentAt);
    view.eventId = sent.eventId;
    insert(room, view);
    const early = room.reports.get(view.key);
    if (early) view.delivery = early;
    if (view.element) render(view);
    if (sent.report) {
      sent.report.then(
        (report) => applyReport(room, report),
        (error: unknown) => {
          // The report itself was lost (closed client); the message was sent.
          if (view.delivery?.status === 'pending') {
            view.delivery = { status: 'error', message: errorText(error) };
            if (view.element) renderDelivery(view, view.element);
          }
        },
      );
    }
  } catch (error) {
    view.sending = false;
    view.delivery = { status: 'error', message: `not sent — ${errorText(error)}` };
    if (view.element) render(view);
    if (room === session.active) ui.composerError.textContent = `Not sent: ${errorText(error)}`;
  }
}
