/**
 * A small terminal chat on the typed client:
 *   npm run chat -- --room lobby --token <jwt> [--url ws://localhost:3000/trpc]
 * Type a line to send it. Commands: /ack <text> (send with delivery report), /who, /quit.
 * Shows joins, leaves, typing, delivery reports and system events as they happen.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createChatClient, type RoomEvent } from '../chat/index.ts';

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

const room = values.room;
const client = createChatClient({
  url: values.url,
  token: values.token,
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

function describe(event: RoomEvent): string | null {
  switch (event.type) {
    case 'message':
      return `[${time(event.message.sentAt)}] ${event.message.senderName ?? event.message.senderId}: ${event.message.body}${event.message.ackRequired ? '  (ack requested)' : ''}`;
    case 'user_joined':
      return `* ${event.name ?? event.userId} joined`;
    case 'user_left':
      return `* ${event.userId} left`;
    case 'user_disconnected':
      return `* ${event.userId} disconnected`;
    case 'presence_diff': {
      const names = (list: ReadonlyArray<{ userId: string; name?: string }>) => (list.length > 5 ? `${list.slice(0, 5).map((u) => u.name ?? u.userId).join(', ')} and ${list.length - 5} more` : list.map((u) => u.name ?? u.userId).join(', '));
      const parts = [event.joins.length > 0 && `${names(event.joins)} joined`, event.leaves.length > 0 && `${names(event.leaves)} left`].filter(Boolean);
      return parts.length > 0 ? `* ${parts.join('; ')}` : null;
    }
    case 'typing':
      if (event.isTyping) typingUsers.add(event.userId);
      else typingUsers.delete(event.userId);
      return typingUsers.size > 0 ? `  ${[...typingUsers].join(', ')} ${typingUsers.size > 1 ? 'are' : 'is'} typing…` : null;
    case 'message_delivered': {
      const r = event.report;
      return `  ✓ ${r.status}: ${r.acked.length}/${r.expected.length} acked in ${r.latencyMs} ms${r.missing.length ? `; missing ${r.missing.join(', ')}` : ''}`;
    }
    case 'conversation_updated':
      return `* conversation updated: ${JSON.stringify(event.changes)}`;
    case 'system':
      return `* [${event.event}] ${JSON.stringify(event.data)}`;
    case 'resync':
      return `* history no longer covers the gap (${event.reason}); showing live messages from here`;
    case 'subscribed': {
      if (event.resumed) return null;
      const others = event.members.filter((m) => m.userId !== client.userId).map((m) => m.name ?? m.userId);
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
// Lines typed (or piped) before the subscription has started wait for it, in order.
let pending: Promise<unknown> = conversation.started.then(() => {
  print(`* joined ${room} as ${client.userId ?? '?'} — type to chat; /ack <text>, /who, /quit`);
  if (interactive) rl.prompt();
});

if (interactive) {
  process.stdin.on('keypress', (_chunk: unknown, key: { name?: string } | undefined) => {
    if (key?.name !== 'return' && key?.name !== 'enter') client.setTyping(room, true);
  });
}

rl.on('line', (raw) => {
  const line = raw.trim();
  pending = pending.then(() => handleLine(line)).catch((error: unknown) => print(`! ${error instanceof Error ? error.message : String(error)}`));
});
rl.on('close', () => {
  void pending.then(async () => {
    await client.close();
    process.exit(0);
  });
});

async function handleLine(line: string): Promise<void> {
  client.setTyping(room, false);
  if (line === '') return rl.prompt();
  if (line === '/quit') return rl.close();
  if (line === '/who') {
    const members = await client.presence(room);
    print(members.map((m) => `  ${m.name ?? m.userId} (${m.connections} connection${m.connections === 1 ? '' : 's'})${m.typing ? ' typing' : ''}`).join('\n') || '  nobody');
    return;
  }
  if (line.startsWith('/ack ')) {
    const result = await client.send(room, line.slice(5), { ack: true });
    print(`  sent with ack, waiting for ${result.expected?.length ?? 0} recipient(s)`);
    return;
  }
  await client.send(room, line);
  if (interactive) rl.prompt();
}
