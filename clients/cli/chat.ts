/**
 * A small terminal chat on the typed client:
 *   npm run chat -- --room lobby --token <jwt> [--url ws://localhost:3000/trpc]
 * Type a line to send it. A line starting with `/` is a command and never a message:
 * /ack <text> (send with a delivery report), /who, /help, /quit.
 * Shows the connection state, joins, leaves, typing, delivery reports and system events as they happen.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { decodeJwt } from 'jose';
import { createChatClient, type DeliveryReport, type RoomEvent } from '../chat/index.ts';

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.CHAT_URL ?? 'ws://localhost:3000/trpc' },
    room: { type: 'string', default: 'lobby' },
    token: { type: 'string', default: process.env.TOKEN },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help || !values.token) {
  process.stderr.write('usage: npm run chat -- --room <id> --token <jwt> [--url ws://localhost:3000/trpc]\n(`npm start` prints ready-made dev tokens)\n');
  process.exit(values.help ? 0 : 1);
}

const HELP = [
  '  commands (a line starting with / is never sent as a message):',
  '    /ack <text>   send <text> and show its delivery report (who got it, who did not)',
  '    /who          who is in the room, and who is typing',
  '    /help         this list',
  '    /quit         leave (end of input does too)',
  '  anything else is sent as a message',
].join('\n');

const room = values.room;
const token = values.token;
/** Display names by user id: from the token, the presence snapshot, joins and messages. */
const names = new Map<string, string>();
const ownClaims = (() => {
  try {
    const claims = decodeJwt(token);
    return { userId: claims.sub, name: typeof claims.name === 'string' ? claims.name : undefined };
  } catch {
    return { userId: undefined, name: undefined };
  }
})();
if (ownClaims.userId !== undefined && ownClaims.name !== undefined) names.set(ownClaims.userId, ownClaims.name);

function learn(userId: string, name: string | undefined): void {
  if (name !== undefined && name !== '') names.set(userId, name);
}
function nameOf(userId: string): string {
  return names.get(userId) ?? userId;
}
function list(userIds: readonly string[]): string {
  return userIds.map(nameOf).join(', ');
}

const client = connect();

function connect() {
  try {
    return createChatClient({
      url: values.url,
      token,
      // The server's own words: missing, invalid or expired token — and, after a development
      // restart, that its secret changed and what to do.
      onTerminalError: (error) => {
        print(`* the server refused the token: ${error.message}`);
        process.exit(1);
      },
      onTerminalClose: (code) => {
        print(`* disconnected by the server (code ${code})`);
        process.exit(2);
      },
    });
  } catch (error) {
    // A bad --url: one line saying what a good one looks like, not a stack trace.
    console.error(`chat: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  }
}
const interactive = process.stdin.isTTY === true;
const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: `${room}> ` });
const typingUsers = new Set<string>();

function time(d: Date): string {
  return d.toTimeString().slice(0, 8);
}

function print(line: string): void {
  if (interactive) {
    process.stdout.write('\r\x1b[K');
    process.stdout.write(`${line}\n`);
    rl.prompt(true);
  } else {
    process.stdout.write(`${line}\n`);
  }
}

// The connection state, as the client reports it: every change is a line, and the prompt
// carries it while not connected.
type State = typeof client.state;
const TRANSPORT_LABEL = { websocket: 'WebSocket', sse: 'SSE' } as const;
function errorText(error: unknown): string {
  if (error === null || error === undefined) return '';
  return error instanceof Error ? error.message : String(error);
}
function describeState(state: State): string {
  const why = errorText(state.error);
  switch (state.status) {
    case 'connecting':
      return `* connecting to ${values.url}…${why ? ` (${why})` : ''}`;
    case 'connected':
      return `* connected · ${state.transport ? TRANSPORT_LABEL[state.transport] : '?'}`;
    case 'reconnecting':
      return `* reconnecting…${why ? ` (${why})` : ''}`;
    case 'closed':
      return `* closed${why ? `: ${why}` : ''}`;
  }
}
let lastStateLine = '';
function showState(state: State): void {
  const line = describeState(state);
  rl.setPrompt(state.status === 'connected' ? `${room}> ` : `${room} (${state.status})> `);
  if (line === lastStateLine) return;
  lastStateLine = line;
  // Closed by the server for good: onTerminalError / onTerminalClose, called right after, say
  // why in their own line and exit — this one is only for a close they do not cover.
  if (state.status === 'closed') setTimeout(() => print(line), 0);
  else print(line);
}
showState(client.state);
client.onState(showState);

const MARK = { delivered: '✓ delivered', partial: '◐ partial', failed: '✗ failed' } as const;
/** Reports shown, by message id: the acked send's `report` and the room's `message_delivered` may both bring one. */
const reportsShown = new Set<string>();
/** Reports of this process's acked sends not in yet. */
const reportsDue = new Set<Promise<void>>();
function showReport(r: DeliveryReport): void {
  if (reportsShown.has(r.messageId)) return;
  reportsShown.add(r.messageId);
  const who = r.expected.length === 0
    ? 'nobody else was here to deliver to'
    : `${r.acked.length}/${r.expected.length} acked in ${r.latencyMs} ms${r.acked.length ? ` (${list(r.acked)})` : ''}${r.missing.length ? `; missing ${list(r.missing)}` : ''}`;
  print(`  ${MARK[r.status]}: ${who}`);
}

function describe(event: RoomEvent): string | null {
  switch (event.type) {
    case 'message':
      learn(event.message.senderId, event.message.senderName);
      return `[${time(event.message.sentAt)}] ${nameOf(event.message.senderId)}: ${event.message.body}${event.message.ackRequired ? '  (ack requested)' : ''}`;
    case 'user_joined':
      learn(event.userId, event.name);
      return `* ${nameOf(event.userId)} joined`;
    case 'user_left':
      typingUsers.delete(event.userId);
      return `* ${nameOf(event.userId)} left`;
    case 'user_disconnected':
      typingUsers.delete(event.userId);
      return `* ${nameOf(event.userId)} disconnected`;
    case 'presence_diff': {
      for (const u of event.joins) learn(u.userId, u.name);
      for (const u of event.leaves) typingUsers.delete(u.userId);
      const some = (ids: readonly string[]) => (ids.length > 5 ? `${list(ids.slice(0, 5))} and ${ids.length - 5} more` : list(ids));
      const parts = [event.joins.length > 0 && `${some(event.joins.map((u) => u.userId))} joined`, event.leaves.length > 0 && `${some(event.leaves.map((u) => u.userId))} left`].filter(Boolean);
      return parts.length > 0 ? `* ${parts.join('; ')}` : null;
    }
    case 'typing':
      if (event.isTyping) typingUsers.add(event.userId);
      else typingUsers.delete(event.userId);
      return typingUsers.size > 0 ? `  ${list([...typingUsers])} ${typingUsers.size > 1 ? 'are' : 'is'} typing…` : null;
    case 'message_delivered':
      showReport(event.report);
      return null;
    case 'conversation_updated':
      return `* conversation updated: ${JSON.stringify(event.changes)}`;
    case 'system':
      return `* [${event.event}] ${JSON.stringify(event.data)}`;
    case 'resync':
      return `* history no longer covers the gap (${event.reason}); showing live messages from here`;
    case 'subscribed': {
      for (const m of event.members) learn(m.userId, m.name);
      if (event.resumed) return null;
      const others = event.members.filter((m) => m.userId !== client.userId).map((m) => nameOf(m.userId));
      const more = event.memberCount - event.members.length;
      return `* in ${room}: ${others.length > 0 ? `${others.join(', ')}${more > 0 ? ` and ${more} more` : ''}` : 'nobody else yet'}`;
    }
  }
}

const conversation = client.join(room, {
  onEvent: (event) => {
    const line = describe(event);
    if (line) print(line);
  },
  onError: (error) => {
    // Refused for the token: the server's reason (see onTerminalError above), not a generic line.
    const refused = (error as { data?: { code?: string } | null }).data?.code === 'UNAUTHORIZED';
    print(`* ${refused ? 'the server refused the token' : 'subscription failed'}: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
});
// Who is here, from the first event of the stream (and again after a resync).
conversation.on('subscribed', (event) => {
  const line = describe(event);
  if (line) print(line);
});
// Names the presence model pages in (members the snapshot did not list).
conversation.onPresence((view) => {
  for (const m of view.members.values()) learn(m.userId, m.name);
});
// Lines typed (or piped) before the subscription has started wait for it, in order.
let pending: Promise<unknown> = conversation.started.then(() => {
  const me = client.userId ?? ownClaims.userId;
  print(`* joined ${room} as ${me === undefined ? '?' : nameOf(me)} — type to chat; /help lists the commands`);
  if (interactive) rl.prompt();
});

if (interactive) {
  process.stdin.on('keypress', (_chunk: unknown, key: { name?: string } | undefined) => {
    // A command being typed is not typing a message.
    if (key?.name !== 'return' && key?.name !== 'enter' && !rl.line.startsWith('/')) client.setTyping(room, true);
  });
}

rl.on('line', (raw) => {
  const line = raw.trim();
  pending = pending.then(() => handleLine(line)).catch((error: unknown) => print(`! ${error instanceof Error ? error.message : String(error)}`));
});
rl.on('close', () => {
  // Piped input (`echo '/ack hi' | npm run chat …`): the reports still on their way are waited for.
  void pending.then(() => Promise.allSettled(reportsDue)).then(async () => {
    await client.close();
    process.exit(0);
  });
});

async function handleLine(line: string): Promise<void> {
  client.setTyping(room, false);
  if (line === '') return rl.prompt();
  if (line.startsWith('/')) return command(line);
  await client.send(room, line);
  if (interactive) rl.prompt();
}

/** A line starting with `/`: a command, never a message. */
async function command(line: string): Promise<void> {
  const space = line.indexOf(' ');
  const name = space === -1 ? line : line.slice(0, space);
  const rest = space === -1 ? '' : line.slice(space + 1).trim();
  switch (name) {
    case '/help':
      return print(HELP);
    case '/quit':
      return rl.close();
    case '/who': {
      const members = await client.presence(room);
      for (const m of members) learn(m.userId, m.name);
      print(members.map((m) => `  ${nameOf(m.userId)} (${m.connections} connection${m.connections === 1 ? '' : 's'})${m.typing ? ' typing' : ''}`).join('\n') || '  nobody');
      return;
    }
    case '/ack': {
      if (rest === '') return print('! /ack needs a message: /ack <text>');
      const { expected, report } = await client.send(room, rest, { ack: true });
      print(`  sent with ack, waiting for ${expected?.length ?? 0} recipient(s)`);
      // The report is printed when it comes, whatever is typed meanwhile.
      const shown = report.then(showReport, (error: unknown) => print(`! no delivery report: ${errorText(error)}`));
      reportsDue.add(shown);
      void shown.finally(() => reportsDue.delete(shown));
      return;
    }
    default:
      return print(`! unknown command ${name} (not sent) — /help lists the commands`);
  }
}
