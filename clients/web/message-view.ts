/** One message as a list item: sender, time, body and its delivery line. */
import { nameOf, type Delivery, type MessageView } from './state.ts';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export function render(view: MessageView): HTMLLIElement {
  const li = view.element ?? document.createElement('li');
  view.element = li;
  li.className = `msg${view.mine ? ' mine' : ''}${view.sending ? ' sending' : ''}`;
  li.dataset.id = view.key;
  const meta = document.createElement('div');
  meta.className = 'meta';
  const sender = document.createElement('span');
  sender.className = 'sender';
  sender.textContent = view.senderName ?? nameOf(view.senderId);
  const time = document.createElement('time');
  time.dateTime = view.sentAt.toISOString();
  time.textContent = view.sending ? 'sending…' : timeFormat.format(view.sentAt);
  meta.append(sender, time);
  const body = document.createElement('div');
  body.className = 'body';
  body.textContent = view.body;
  li.replaceChildren(meta, body);
  renderDelivery(view, li);
  return li;
}

const people = (ids: readonly string[]) => ids.map(nameOf).join(', ');

function deliveryText(delivery: Delivery): string {
  switch (delivery.status) {
    case 'pending':
      return 'Delivery: pending';
    case 'error':
      return `Delivery: unknown — ${delivery.message}`;
    case 'delivered':
      return `Delivery: delivered to ${people(delivery.acked)}`;
    case 'partial':
      return `Delivery: partial — missing ${people(delivery.missing)}; delivered to ${people(delivery.acked)}`;
    case 'failed':
      return delivery.expected.length === 0 ? 'Delivery: failed — nobody received it (nobody else was here)' : `Delivery: failed — nobody received it (missing ${people(delivery.missing)})`;
  }
}

export function renderDelivery(view: MessageView, li: HTMLLIElement): void {
  let line = li.querySelector<HTMLElement>('.delivery');
  if (!view.delivery) {
    line?.remove();
    return;
  }
  if (!line) {
    line = document.createElement('div');
    line.className = 'delivery';
    li.append(line);
  }
  line.dataset.status = view.delivery.status;
  line.textContent = deliveryText(view.delivery);
}
