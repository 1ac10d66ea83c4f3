/**
 * The web chat: sign in with a token (or a ready-made dev token), join conversations, scrollback,
 * live messages, presence with typing, delivery reports and the connection state — everything
 * drawn from the typed client (clients/chat), no framework. All text goes in through
 * `textContent`, never as HTML; the server's CSP allows no inline code anyway.
 */
import { createChatClient, type ChatClient, type ConnectionState, type Conversation, type DeliveryReport, type PresenceView, type RoomEvent } from './client.ts';

type MessageEvent = Extract<RoomEvent, { type: 'message' }>;

const CONVERSATION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
const PAGE_SIZE = 50;
const TOKEN_KEY = 'realtime-chat-token';
const ROOMS_KEY = 'realtime-chat-rooms';

// ---- elements

function $<T extends HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

const ui = {
  connection: $('connection'),
  me: $('me'),
  signout: $<HTMLButtonElement>('signout'),
  signin: $('signin'),
  signinForm: $<HTMLFormElement>('signin-form'),
  devTokens: $('dev-tokens'),
  token: $<HTMLTextAreaElement>('token'),
  signinError: $('signin-error'),
  chat: $('chat'),
  joinForm: $<HTMLFormElement>('join-form'),
  conversation: $<HTMLInputElement>('conversation'),
  tabs: $('tabs'),
  people: $('people'),
  peopleCount: $('people-count'),
  roomTitle: $('room-title'),
  leave: $<HTMLButtonElement>('leave'),
  notice: $('notice'),
  noticeText: $('notice-text'),
  noticeClose: $<HTMLButtonElement>('notice-close'),
  scroller: $('scroller'),
  earlier: $<HTMLButtonElement>('earlier'),
  earlierNote: $('earlier-note'),
  log: $('log'),
  messages: $('messages'),
  composer: $<HTMLFormElement>('composer'),
  message: $<HTMLTextAreaElement>('message'),
  ack: $<HTMLInputElement>('ack'),
  composerError: $('composer-error'),
};

// ---- state

type Delivery = { status: 'pending' } | { status: 'error'; message: string } | DeliveryReport;

interface MessageView {
  /** The server's message id; a local key (`local:n`) until the send returns. */
  key: string;
  senderId: string;
  senderName: string | undefined;
  body: string;
  sentAt: Date;
  /** The stored event's id (`<epoch>:<seq>`): the room's order; undefined while the own send is in flight. */
  eventId: string | undefined;
  mine: boolean;
  sending: boolean;
  delivery: Delivery | undefined;
  element: HTMLLIElement | null;
}

interface Room {
  id: string;
  conversation: Conversation;
  /** By message id (or local key): each message once, whichever way it came (live, scrollback, own send). */
  messages: Map<string, MessageView>;
  /** Oldest first. */
  order: MessageView[];
  /** undefined: the first page is not read yet; null: nothing older is kept. */
  nextBefore: string | null | undefined;
  loadingEarlier: boolean;
  unread: boolean;
  tab: HTMLButtonElement;
  draft: string;
  /** Reports that arrived before the message they are about (scrollback pages come newest first). */
  reports: Map<string, DeliveryReport>;
  removers: Array<() => void>;
}

let chat: ChatClient | null = null;
let stopStateUpdates: () => void = () => undefined;
let me: { userId: string; name: string | undefined } | null = null;
const rooms = new Map<string, Room>();
let active: Room | null = null;
let localSeq = 0;
/** Display names by user id, learned from presence, messages and the token. */
const names = new Map<string, string>();

const nameOf = (userId: string): string => names.get(userId) ?? userId;

// ---- sign in

/** The "Dev token" picker exists only where the server hands out its ready-made tokens. */
async function loadDevTokens(): Promise<void> {
  let tokens: Array<{ userId: string; name: string; token: string }>;
  try {
    const res = await fetch('/chat/dev-tokens', { cache: 'no-store' });
    if (!res.ok) return; // production, or a real AUTH_SECRET: paste one
    ({ tokens } = (await res.json()) as { tokens: typeof tokens });
  } catch {
    return;
  }
  if (tokens.length === 0) return;
  const label = document.createElement('label');
  label.htmlFor = 'dev-token';
  label.textContent = 'Dev token';
  const select = document.createElement('select');
  select.id = 'dev-token';
  const none = document.createElement('option');
  none.value = '';
  none.textContent = 'Pick a ready-made token…';
  select.append(none);
  for (const t of tokens) {
    const option = document.createElement('option');
    option.value = t.userId;
    option.textContent = t.name;
    option.dataset.token = t.token;
    select.append(option);
  }
  select.addEventListener('change', () => {
    const token = select.selectedOptions[0]?.dataset.token;
    if (token) ui.token.value = token;
  });
  ui.devTokens.replaceChildren(label, select);
  ui.devTokens.hidden = false;
}

ui.signinForm.addEventListener('submit', (event) => {
  event.preventDefault();
  const token = ui.token.value.trim();
  if (!token) {
    showSigninError('Paste a token first (or pick a dev token).');
    ui.token.focus();
    return;
  }
  connect(token);
});

ui.signout.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(ROOMS_KEY);
  void disconnect();
  showSignin();
  setConnection({ status: 'signed-out', text: 'Signed out' });
});

function showSigninError(text: string): void {
  ui.signinError.textContent = text;
  ui.signinError.hidden = false;
}

function showSignin(): void {
  ui.chat.hidden = true;
  ui.signin.hidden = false;
  ui.signout.hidden = true;
  ui.me.hidden = true;
  ui.token.focus();
}

/** The token's claims as the page shows them (the server checks the signature; this only reads). */
function claimsOf(token: string): { sub?: string; name?: string } | null {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as unknown;
    return claims && typeof claims === 'object' ? (claims as { sub?: string; name?: string }) : null;
  } catch {
    return null;
  }
}

function connect(token: string): void {
  const claims = claimsOf(token);
  if (!claims?.sub) {
    showSigninError('That is not a token: a token is a JWT, three base64url parts separated by dots.');
    ui.token.focus();
    return;
  }
  ui.signinError.hidden = true;
  me = { userId: claims.sub, name: claims.name };
  if (claims.name) names.set(claims.sub, claims.name);
  sessionStorage.setItem(TOKEN_KEY, token);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const client = createChatClient({
    url: `${scheme}//${location.host}/trpc`,
    token,
    transport: 'auto',
    onTerminalError: (error) => {
      // The server refused the token for good: back to the sign-in form, saying why.
      if (chat !== client) return;
      sessionStorage.removeItem(TOKEN_KEY);
      showSigninError(`The server refused this token: ${error.message}`);
      void disconnect(false);
      showSignin();
    },
  });
  chat = client;
  stopStateUpdates = client.onState(renderConnection);
  renderConnection(client.state);

  ui.signin.hidden = true;
  ui.chat.hidden = false;
  ui.signout.hidden = false;
  ui.me.hidden = false;
  ui.me.textContent = `Signed in as ${me.name ?? me.userId}`;
  const saved = (sessionStorage.getItem(ROOMS_KEY) ?? '').split(',').filter((id) => CONVERSATION_ID.test(id));
  for (const id of saved.length > 0 ? saved : ['general']) join(id, false);
  select(rooms.values().next().value!);
  ui.message.focus();
}

async function disconnect(clearState = true): Promise<void> {
  const client = chat;
  chat = null;
  // What the status says now stays (e.g. `Closed: <why>` after a refused token).
  stopStateUpdates();
  for (const room of rooms.values()) for (const remove of room.removers) remove();
  rooms.clear();
  active = null;
  ui.tabs.replaceChildren();
  ui.messages.replaceChildren();
  ui.people.replaceChildren();
  ui.notice.hidden = true;
  ui.composerError.textContent = '';
  if (clearState) names.clear();
  await client?.close().catch(() => undefined);
}

// ---- connection state

function setConnection(view: { status: string; text: string }): void {
  ui.connection.dataset.state = view.status;
  ui.connection.textContent = view.text;
}

function renderConnection(state: ConnectionState): void {
  const transport = state.transport === 'sse' ? 'SSE' : state.transport === 'websocket' ? 'WebSocket' : undefined;
  switch (state.status) {
    case 'connecting':
      return setConnection({ status: 'connecting', text: 'Connecting…' });
    case 'connected':
      return setConnection({ status: 'connected', text: transport ? `Connected · ${transport}` : 'Connected' });
    case 'reconnecting':
      return setConnection({ status: 'reconnecting', text: `Reconnecting…${state.error ? ` (${state.error.message})` : ''}` });
    case 'closed':
      return setConnection({ status: 'closed', text: state.error ? `Closed: ${state.error.message}` : 'Closed' });
  }
}

// ---- conversations

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

function join(id: string, save: boolean): Room {
  const existing = rooms.get(id);
  if (existing || !chat) return existing!;
  const client = chat;
  const tab = document.createElement('button');
  tab.type = 'button';
  tab.className = 'tab';
  tab.setAttribute('aria-controls', 'room');
  tab.textContent = id; // its accessible name: exactly the conversation id
  const room: Room = {
    id,
    conversation: client.join(id, {
      // Not after sign-out or a refused token: a join of a client that is gone says nothing.
      onError: (error) => {
        if (chat === client && rooms.get(id) === room) notice(`Could not join ${id}: ${errorText(error)}`);
      },
    }),
    messages: new Map(),
    order: [],
    nextBefore: undefined,
    loadingEarlier: false,
    unread: false,
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
    c.on('message', (event, eventId) => addMessage(room, event, eventId, true)),
    c.on('message_delivered', (event) => applyReport(room, event.report)),
    c.on('resync', (event) => {
      notice(`Resynced ${id}: the server could not replay what this tab missed (${event.reason}); messages were read again.`);
      void loadNewest(room);
    }),
    c.onPresence((presence) => {
      for (const member of presence.members.values()) if (member.name) names.set(member.userId, member.name);
      if (room === active) renderPresence(presence);
    }),
  );
  void loadNewest(room);
  return room;
}

/** Leaving stops the subscription (the others see you go); the last conversation stays. */
function leave(room: Room): void {
  if (rooms.size < 2 || !rooms.has(room.id)) return;
  chat?.setTyping(room.id, false);
  for (const remove of room.removers) remove();
  room.conversation.leave();
  room.tab.remove();
  rooms.delete(room.id);
  sessionStorage.setItem(ROOMS_KEY, [...rooms.keys()].join(','));
  if (active === room) {
    active = null;
    const next = rooms.values().next().value!;
    select(next);
    next.tab.focus();
  } else {
    renderLeave();
  }
}

function renderLeave(): void {
  ui.leave.disabled = rooms.size < 2;
  ui.leave.setAttribute('aria-label', active ? `Leave ${active.id}` : 'Leave');
  ui.leave.title = rooms.size < 2 ? 'Join another conversation first' : '';
}

ui.leave.addEventListener('click', () => {
  if (active) leave(active);
});

function select(room: Room): void {
  if (active === room) return;
  if (active) {
    active.draft = ui.message.value;
    chat?.setTyping(active.id, false);
  }
  active = room;
  room.unread = false;
  for (const r of rooms.values()) {
    const selected = r === room;
    if (selected) r.tab.setAttribute('aria-current', 'true');
    else r.tab.removeAttribute('aria-current');
    r.tab.classList.toggle('unread', r.unread);
  }
  ui.roomTitle.textContent = `# ${room.id}`;
  renderLeave();
  ui.message.value = room.draft;
  renderAllMessages(room);
  renderPresence(room.conversation.presence);
  renderEarlier(room);
  scrollToEnd();
}

// ---- messages

function viewOf(event: MessageEvent, eventId: string): MessageView {
  const m = event.message;
  if (m.senderName) names.set(m.senderId, m.senderName);
  return { key: m.id, senderId: m.senderId, senderName: m.senderName, body: m.body, sentAt: new Date(m.sentAt), eventId, mine: m.senderId === me?.userId, sending: false, delivery: undefined, element: null };
}

/** Puts a message in its place (by time sent), once; returns false when it was already there. */
function insert(room: Room, view: MessageView): boolean {
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
  if (room === active) {
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

function addMessage(room: Room, event: MessageEvent, eventId: string, live: boolean): void {
  const nearEnd = isNearEnd();
  if (!insert(room, viewOf(event, eventId))) return;
  if (!live) return;
  if (room === active) {
    if (nearEnd) scrollToEnd();
  } else {
    room.unread = true;
    room.tab.classList.add('unread');
  }
}

function applyReport(room: Room, report: DeliveryReport): void {
  const view = room.messages.get(report.messageId);
  if (!view) {
    room.reports.set(report.messageId, report);
    return;
  }
  view.delivery = report;
  if (view.element) renderDelivery(view, view.element);
}

/** The newest page: on join, and again after a resync (merged by message id, so nothing shows twice). */
async function loadNewest(room: Room): Promise<void> {
  try {
    const page = await room.conversation.history({ limit: PAGE_SIZE, types: ['message', 'message_delivered'] });
    if (rooms.get(room.id) !== room) return;
    applyPage(room, page.events);
    room.nextBefore = page.nextBefore;
    if (room === active) {
      renderEarlier(room);
      scrollToEnd();
    }
  } catch (error) {
    if (rooms.get(room.id) === room) notice(`Could not read the history of ${room.id}: ${errorText(error)}`);
  }
}

async function loadEarlier(room: Room): Promise<void> {
  if (room.loadingEarlier || !room.nextBefore) return;
  room.loadingEarlier = true;
  renderEarlier(room);
  const before = ui.scroller.scrollHeight - ui.scroller.scrollTop;
  try {
    const page = await room.conversation.history({ before: room.nextBefore, limit: PAGE_SIZE, types: ['message', 'message_delivered'] });
    if (rooms.get(room.id) !== room) return;
    ui.log.setAttribute('aria-busy', 'true');
    applyPage(room, page.events);
    ui.log.setAttribute('aria-busy', 'false');
    room.nextBefore = page.nextBefore;
    // Keep what the reader was looking at where it was.
    if (room === active) ui.scroller.scrollTop = ui.scroller.scrollHeight - before;
  } catch (error) {
    notice(`Could not load earlier messages: ${errorText(error)}`);
  } finally {
    room.loadingEarlier = false;
    const hadFocus = document.activeElement === ui.earlier;
    if (room === active) renderEarlier(room);
    // The button goes once nothing older is kept: focus stays nearby instead of falling to <body>.
    if (hadFocus && ui.earlier.hidden) ui.earlierNote.focus();
  }
}

function applyPage(room: Room, events: Array<{ id: string; event: RoomEvent }>): void {
  // Newest first: reports before their messages, which `insert` picks up.
  for (const { id, event } of events) {
    if (event.type === 'message') addMessage(room, event, id, false);
    else if (event.type === 'message_delivered') applyReport(room, event.report);
  }
}

ui.earlier.addEventListener('click', () => {
  if (active) void loadEarlier(active);
});

// ---- sending and typing

ui.message.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.composer.requestSubmit();
  }
});

ui.message.addEventListener('input', () => {
  if (active && chat) chat.setTyping(active.id, ui.message.value.trim() !== '');
  ui.composerError.textContent = '';
});

ui.composer.addEventListener('submit', (event) => {
  event.preventDefault();
  const room = active;
  const client = chat;
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
    if (room === active) ui.composerError.textContent = `Not sent: ${errorText(error)}`;
  }
}

// ---- rendering

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

function render(view: MessageView): HTMLLIElement {
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

function renderDelivery(view: MessageView, li: HTMLLIElement): void {
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

function renderAllMessages(room: Room): void {
  ui.log.setAttribute('aria-busy', 'true');
  ui.messages.replaceChildren(...room.order.map(render));
  ui.log.setAttribute('aria-busy', 'false');
}

function renderEarlier(room: Room): void {
  ui.earlier.disabled = room.loadingEarlier || !room.nextBefore;
  ui.earlier.hidden = room.nextBefore === null;
  ui.earlierNote.hidden = room.nextBefore !== null;
}

function renderPresence(presence: PresenceView): void {
  const members = [...presence.members.values()].sort((a, b) => nameOf(a.userId).localeCompare(nameOf(b.userId)));
  ui.people.replaceChildren(
    ...members.map((member) => {
      const li = document.createElement('li');
      li.textContent = member.name ?? nameOf(member.userId);
      if (member.userId === me?.userId) {
        const you = document.createElement('span');
        you.className = 'muted';
        you.textContent = ' (you)';
        li.append(you);
      }
      if (member.typing) {
        const typing = document.createElement('span');
        typing.className = 'typing';
        typing.textContent = ' typing…';
        li.append(typing);
      }
      return li;
    }),
  );
  ui.peopleCount.textContent = `(${presence.memberCount})`;
}

function notice(text: string): void {
  ui.noticeText.textContent = text;
  ui.notice.hidden = false;
}
ui.noticeClose.addEventListener('click', () => {
  ui.notice.hidden = true;
  ui.message.focus();
});

function isNearEnd(): boolean {
  return ui.scroller.scrollHeight - ui.scroller.scrollTop - ui.scroller.clientHeight < 80;
}

function scrollToEnd(): void {
  ui.scroller.scrollTop = ui.scroller.scrollHeight;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- start

void loadDevTokens();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  ui.token.value = saved;
  connect(saved);
} else {
  showSignin();
}
