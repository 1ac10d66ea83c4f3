/* global document, fetch, setTimeout, clearTimeout, sessionStorage, ResizeObserver, AbortSignal -- browser script (eslint's config targets Node) */
// The operator dashboard: asks for an admin token once (kept in sessionStorage), then polls the
// admin GraphQL plane every 2 s and renders cards, a latency/rate chart, the busiest rooms (with
// drill-down) and the pending acks. Everything is built with textContent: no HTML from data.
import { drawChart } from './chart.js';

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60_000;
const TOKEN_KEY = 'realtime.adminToken';

const POLL_QUERY = `query DashboardPoll {
  stats {
    activeRooms connections users messagesBroadcast deliveries pendingAcks
    connectionsByTransport { websocket sse }
    acksDelivered acksPartial acksFailed slowConsumerCloses uptimeSeconds at
    deliveryLatencyMs { p50 p95 p99 max count }
    memory { rssBytes heapUsedBytes }
  }
  rooms(first: 10, orderBy: MEMBERS) {
    totalCount
    edges { node { conversationId memberCount connectionCount messagesBroadcast pendingAcks typing lastActivityAt } }
  }
  pendingAcks(first: 50) { messageId conversationId senderId expected acked missing ageMs attempts expiresAt }
}`;

const ROOM_QUERY = `query DashboardRoom($id: ID!) {
  room(conversationId: $id) {
    conversationId memberCount connectionCount messagesBroadcast pendingAcks typing createdAt lastActivityAt
    members { userId name connections joinedAt typing }
  }
}`;

const $ = (id) => document.getElementById(id);
const state = { token: null, seq: 0, timer: null, paused: false, hasData: false, prev: null, history: [], room: null, hover: null };

// ---- formatting ------------------------------------------------------------------------------
const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const decFmt = new Intl.NumberFormat(undefined, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
const minuteFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', hour12: false });
const int = (n) => intFmt.format(n);
const tickFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const rate = (n) => (n === null ? '—' : n >= 100 ? int(n) : decFmt.format(n));
/** Milliseconds with a unit: "0.42 ms", "7.5 ms", "240 ms", "19.3 s". */
const ms = (n) => (n >= 1000 ? `${decFmt.format(n / 1000)} s` : `${n === 0 ? '0' : n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : int(n)} ms`);
const mib = (bytes) => `${decFmt.format(bytes / 1048576)} MiB`;
/** "4 s", "3 m 07 s", "2 h 05 m", "1 d 4 h"; with `precise`, tenths below 10 s ("2.4 s"). */
function duration(msTotal, precise = false) {
  const s = Math.max(0, Math.round(msTotal / 1000));
  if (s < 60) return precise && msTotal < 10_000 ? `${decFmt.format(Math.max(0, msTotal) / 1000)} s` : `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} m`;
  return `${Math.floor(s / 86400)} d ${Math.floor(s / 3600) % 24} h`;
}
const ago = (iso) => `${duration(Date.now() - Date.parse(iso))} ago`;

// ---- GraphQL -----------------------------------------------------------------------------------
class AuthError extends Error {}

async function graphql(operationName, query, variables) {
  let res;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { authorization: `Bearer ${state.token}`, 'content-type': 'application/json', accept: 'application/graphql-response+json, application/json' },
      body: JSON.stringify({ operationName, query, variables }),
      signal: AbortSignal.timeout(POLL_MS * 3),
    });
  } catch (error) {
    throw new Error(`cannot reach the server (${error.name === 'TimeoutError' ? 'timed out' : error.message})`);
  }
  const body = await res.json().catch(() => null);
  const message = body?.errors?.map((e) => e.message).join('; ') || `HTTP ${res.status}`;
  if (res.status === 401 || res.status === 403) throw new AuthError(`${res.status === 401 ? 'Token refused' : 'Not an admin token'}: ${message}`);
  if (!res.ok || !body?.data || body.errors) throw new Error(`server answered ${res.status}: ${message}`);
  return body.data;
}

// ---- polling -----------------------------------------------------------------------------------
async function poll() {
  clearTimeout(state.timer);
  const seq = ++state.seq; // a newer poll (or sign-out, or pause) supersedes this one
  if (!state.token || state.paused) return;
  const room = state.room;
  try {
    const [data, detail] = await Promise.all([graphql('DashboardPoll', POLL_QUERY), room ? graphql('DashboardRoom', ROOM_QUERY, { id: room }) : null]);
    if (seq !== state.seq) return;
    render(data, room === state.room ? detail : undefined);
    setStatus('live', 'Live');
  } catch (error) {
    if (seq !== state.seq) return;
    if (error instanceof AuthError) return signOut(error.message);
    failed(error.message);
  }
  if (seq === state.seq) state.timer = setTimeout(poll, POLL_MS);
}

function failed(message) {
  if (!state.hasData) {
    showError(`${message[0].toUpperCase()}${message.slice(1)}. Retrying every ${POLL_MS / 1000} s…`);
    $('login-submit').disabled = false; // another token may be entered meanwhile
    $('login-submit').textContent = 'Open dashboard';
    return;
  }
  setStatus('error', 'Disconnected — retrying');
  const banner = $('banner');
  banner.textContent = `Disconnected: ${message}. Retrying every ${POLL_MS / 1000} s; the figures below are from ${$('updated-at').textContent}.`;
  banner.hidden = false;
  $('dash').classList.add('stale');
}

// ---- rendering ---------------------------------------------------------------------------------
function render(data, detail) {
  const s = data.stats;
  const at = Date.parse(s.at);
  const prev = state.prev;
  const dt = prev ? (at - prev.at) / 1000 : 0;
  const fresh = !prev || dt <= 0 || s.messagesBroadcast < prev.messages; // first poll, or the server restarted
  const msgRate = fresh ? null : (s.messagesBroadcast - prev.messages) / dt;
  const delRate = fresh ? null : (s.deliveries - prev.deliveries) / dt;
  state.prev = { at, messages: s.messagesBroadcast, deliveries: s.deliveries };
  const lat = s.deliveryLatencyMs;
  state.history.push({ t: at, p50: lat.count ? lat.p50 : null, p99: lat.count ? lat.p99 : null, rate: msgRate });
  while (state.history.length && state.history[0].t < at - WINDOW_MS) state.history.shift();

  if (!state.hasData) {
    state.hasData = true;
    $('login').hidden = true;
    $('dash').hidden = false;
    for (const id of ['pause', 'signout', 'updated']) $(id).hidden = false;
  }
  $('banner').hidden = true;
  $('dash').classList.remove('stale');
  $('updated-at').textContent = timeFmt.format(at);
  $('updated-at').dateTime = s.at;

  const byTransport = s.connectionsByTransport;
  card('connections', int(s.connections), s.connections ? `${int(byTransport.websocket)} WebSocket · ${int(byTransport.sse)} SSE` : 'nobody connected');
  $('card-connections').title = `Open connections by transport: ${int(byTransport.websocket)} WebSocket, ${int(byTransport.sse)} SSE (one per event stream)${s.users ? ` · ${decFmt.format(s.connections / s.users)} per user` : ''}`;
  card('rooms', int(s.activeRooms), data.rooms.edges[0] ? `largest: ${int(data.rooms.edges[0].node.memberCount)} members` : 'no active rooms');
  card('users', int(s.users), `up ${duration(s.uptimeSeconds * 1000)}`);
  card('messages', `${rate(msgRate)}`, `${int(s.messagesBroadcast)} sent in total`, '/s');
  card('deliveries', `${rate(delRate)}`, `${int(s.deliveries)} total${msgRate ? ` · fan-out ×${decFmt.format(delRate / msgRate)}` : ''}`, '/s');
  card('pending', int(s.pendingAcks), `${int(s.acksDelivered)} ok · ${int(s.acksPartial)} partial · ${int(s.acksFailed)} failed`);
  $('card-pending').title = `Finished reports since start: ${int(s.acksDelivered)} delivered, ${int(s.acksPartial)} partial, ${int(s.acksFailed)} failed`;
  $('card-pending').classList.toggle('warn', s.pendingAcks > 0);
  $('meta').textContent = `Latency over the last 60 s: p95 ${ms(lat.p95)} · max ${ms(lat.max)} · ${int(lat.count)} samples  ·  RSS ${mib(s.memory.rssBytes)} · heap ${mib(s.memory.heapUsedBytes)}  ·  slow-consumer closes ${int(s.slowConsumerCloses)}`;
  renderChart();
  renderRooms(data.rooms);
  renderAcks(data.pendingAcks);
  if (detail !== undefined && state.room) renderRoom(detail?.room ?? null);
}

function card(name, value, sub, unit) {
  const node = $(`card-${name}`);
  const valueNode = node.querySelector('.value');
  valueNode.textContent = value;
  if (unit && value !== '—') valueNode.append(span('unit', unit));
  node.querySelector('.sub').textContent = sub;
}

function renderChart() {
  const chart = $('chart');
  if (chart.hidden || !state.hasData) return;
  drawChart(chart, state.history, {
    windowMs: WINDOW_MS,
    gapMs: POLL_MS * 2.5,
    formatMs: (n) => tickFmt.format(n),
    formatRate: (n) => tickFmt.format(n),
    formatTime: (t) => minuteFmt.format(t),
    onHover: (point) => legend(point),
  });
  legend(null);
}

function legend(point) {
  const p = point ?? state.history[state.history.length - 1];
  $('legend-p50').textContent = p?.p50 != null ? ms(p.p50) : '—';
  $('legend-p99').textContent = p?.p99 != null ? ms(p.p99) : '—';
  $('legend-rate').textContent = p?.rate != null ? `${rate(p.rate)}/s` : '—';
  $('legend').classList.toggle('hovering', Boolean(point));
}

function renderRooms(rooms) {
  const body = $('rooms').tBodies[0];
  $('rooms-count').textContent = rooms.totalCount > rooms.edges.length ? `· top ${rooms.edges.length} of ${int(rooms.totalCount)}` : `· ${int(rooms.totalCount)}`;
  if (!rooms.edges.length) return body.replaceChildren(emptyRow(7, 'No active rooms.'));
  body.replaceChildren(
    ...rooms.edges.map(({ node: r }) => {
      const tr = row([
        cell(r.conversationId, 'mono'),
        cell(int(r.memberCount), 'num'),
        cell(int(r.connectionCount), 'num'),
        cell(int(r.messagesBroadcast), 'num'),
        cell(int(r.pendingAcks), r.pendingAcks ? 'num warn-text' : 'num'),
        cell(r.typing.length ? `✎ ${r.typing.join(', ')}` : '', 'typing'),
        cell(ago(r.lastActivityAt), 'num muted'),
      ]);
      tr.tabIndex = 0;
      tr.dataset.room = r.conversationId;
      tr.classList.add('clickable');
      tr.classList.toggle('selected', r.conversationId === state.room);
      return tr;
    }),
  );
}

function renderAcks(acks) {
  const body = $('acks').tBodies[0];
  $('acks-count').textContent = acks.length ? `· ${int(acks.length)}${acks.length === 50 ? '+' : ''}` : '';
  if (!acks.length) return body.replaceChildren(emptyRow(8, 'No acknowledged message is waiting. ✓'));
  body.replaceChildren(
    ...acks.map((a) => {
      const progress = document.createElement('td');
      const bar = span('bar');
      const fill = span('fill');
      fill.style.width = `${a.expected.length ? (a.acked.length / a.expected.length) * 100 : 0}%`; // CSSOM, allowed by the CSP
      bar.append(fill);
      progress.append(bar, span('bar-text', `${int(a.acked.length)} / ${int(a.expected.length)}`));
      const tr = row([
        cell(a.messageId, 'mono ellipsis'),
        cell(a.conversationId, 'mono'),
        cell(a.senderId, 'mono'),
        progress,
        cell(a.missing.join(', '), 'mono missing ellipsis'),
        cell(int(a.attempts), 'num'),
        cell(duration(a.ageMs, true), a.ageMs > 10_000 ? 'num warn-text' : 'num'),
        cell(duration(Math.max(0, Date.parse(a.expiresAt) - Date.now())), 'num muted'),
      ]);
      tr.children[0].title = a.messageId;
      tr.children[4].title = a.missing.join(', ');
      return tr;
    }),
  );
}

function renderRoom(room) {
  const bodyNode = $('room-body');
  $('room-title').replaceChildren('Room ', span('mono', state.room));
  $('room-close').hidden = false;
  if (!room) return bodyNode.replaceChildren(paragraph('empty', 'This room is no longer active: everyone has left.'));
  const facts = paragraph(
    'facts muted',
    `${int(room.memberCount)} members · ${int(room.connectionCount)} connections · ${int(room.messagesBroadcast)} messages · ${int(room.pendingAcks)} pending acks · created ${ago(room.createdAt)}`,
  );
  const typing = paragraph('typing-line');
  typing.append(span('label', 'Typing: '));
  if (room.typing.length) typing.append(...room.typing.map((u) => span('chip', `✎ ${u}`)));
  else typing.append(span('muted', 'nobody'));
  const table = document.createElement('table');
  table.className = 'table members';
  table.createTHead().append(row(['User', 'Name', 'Connections', 'Joined', 'Typing'].map((h, i) => cell(h, i === 2 ? 'num' : '', 'th'))));
  const tbody = table.createTBody();
  if (!room.members.length) tbody.append(emptyRow(5, 'No members.'));
  for (const m of room.members) {
    tbody.append(
      row([
        cell(m.userId, 'mono'),
        cell(m.name ?? '—', m.name ? '' : 'muted'),
        m.connections ? cell(int(m.connections), 'num') : cell('reconnecting', 'num warn-text'),
        cell(ago(m.joinedAt), 'muted'),
        cell(m.typing ? '✎ typing' : '', 'typing'),
      ]),
    );
  }
  const scroll = document.createElement('div');
  scroll.className = 'scroll';
  scroll.append(table);
  bodyNode.replaceChildren(facts, typing, scroll);
}

// ---- DOM helpers -------------------------------------------------------------------------------
function span(className, text) {
  const node = document.createElement('span');
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
function paragraph(className, text) {
  const node = document.createElement('p');
  node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}
function cell(text, className = '', tag = 'td') {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}
function row(cells) {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}
function emptyRow(span, text) {
  const td = cell(text, 'empty');
  td.colSpan = span;
  return row([td]);
}

// ---- session, status and controls ---------------------------------------------------------------
function setStatus(kind, text) {
  $('status').dataset.state = kind;
  $('status-text').textContent = text;
}

function showError(message) {
  const node = $('login-error');
  node.textContent = message;
  node.hidden = !message;
}

function signIn(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  setStatus('connecting', 'Connecting…');
  $('login-submit').disabled = true;
  $('login-submit').textContent = 'Connecting…';
  void poll();
}

function signOut(message = '') {
  clearTimeout(state.timer);
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(state, { token: null, seq: state.seq + 1, paused: false, hasData: false, prev: null, history: [], room: null });
  // Forget everything that was shown: nothing read with the old token stays on screen.
  for (const id of ['rooms', 'acks']) $(id).tBodies[0].replaceChildren();
  for (const node of document.querySelectorAll('.card .value')) node.textContent = '—';
  $('chart').replaceChildren();
  closeRoom();
  $('dash').hidden = true;
  for (const id of ['pause', 'signout', 'updated']) $(id).hidden = true;
  $('pause').textContent = 'Pause';
  $('pause').setAttribute('aria-pressed', 'false');
  $('login').hidden = false;
  $('login-submit').disabled = false;
  $('login-submit').textContent = 'Open dashboard';
  $('token').value = '';
  showError(message);
  setStatus('signed-out', message ? 'Signed out — token refused' : 'Signed out');
  $('token').focus();
}

function selectRoom(id) {
  state.room = id;
  for (const tr of $('rooms').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.room === id);
  $('room-title').replaceChildren('Room ', span('mono', id));
  $('room-body').replaceChildren(paragraph('empty', 'Loading…'));
  void poll();
}

function closeRoom() {
  state.room = null;
  $('room-title').textContent = 'Room';
  $('room-close').hidden = true;
  $('room-body').replaceChildren(paragraph('empty', 'Select a room to see its members and who is typing.'));
  for (const tr of $('rooms').tBodies[0].rows) tr.classList.remove('selected');
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim().replace(/^Bearer\s+/i, '');
  if (!token) return showError('Paste an admin token first.');
  showError('');
  signIn(token);
});
$('signout').addEventListener('click', () => signOut());
$('pause').addEventListener('click', () => {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(state.paused));
  if (state.paused) {
    clearTimeout(state.timer);
    state.seq += 1; // a poll in flight is dropped
    setStatus('paused', 'Paused');
  } else {
    void poll();
  }
});
$('room-close').addEventListener('click', closeRoom);
$('rooms').addEventListener('click', (event) => {
  const tr = event.target.closest('tr[data-room]');
  if (tr) selectRoom(tr.dataset.room);
});
$('rooms').addEventListener('keydown', (event) => {
  const tr = event.target.closest('tr[data-room]');
  if (tr && (event.key === 'Enter' || event.key === ' ')) {
    event.preventDefault();
    selectRoom(tr.dataset.room);
  }
});
new ResizeObserver(() => renderChart()).observe($('chart'));

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) signIn(saved);
else signOut();
