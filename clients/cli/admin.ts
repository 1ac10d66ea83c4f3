/**
 * The admin plane from a terminal, on the typed admin client:
 *   npm run admin -- <command> [options]
 * Prints aligned tables (or JSON with --json). Exits 0 on success, 1 with one line on stderr when
 * the call fails, 2 on a usage error.
 */
import { parseArgs } from 'node:util';
import { AdminClientError, createAdminClient, type AdminClient, type RoomOrder } from '../admin/index.ts';
import { ago, bytes, duration, formatPairs, formatTable } from './table.ts';

const USAGE = `usage: npm run admin -- <command> [options]

commands:
  stats                      service totals and latency percentiles
  rooms                      active rooms (--first N, --after CURSOR, --order members|activity|messages|id, --all)
  room <conversationId>      one room: members, typing, pending acks
  user <userId>              the rooms and connections of one user
  pending-acks               acknowledged messages still waiting (--room ID, --first N)
  delivery-report <msgId>    the delivery report of one acknowledged message
  nodes                      server nodes

options:
  --url URL                  server address (default http://localhost:3000, or ADMIN_URL)
  --token JWT                admin token (default: the ADMIN_TOKEN environment variable)
  --json                     print the raw result as JSON
  -h, --help                 show this help

\`AUTH_SECRET=… npm run token -- --user ops --role admin\` mints an admin token; \`npm start\` prints one in development.`;

class UsageError extends Error {}

type Print = (text: string) => void;

async function main(argv: string[], print: Print): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string', default: process.env.ADMIN_URL ?? 'http://localhost:3000' },
      token: { type: 'string' },
      first: { type: 'string' },
      after: { type: 'string' },
      order: { type: 'string' },
      room: { type: 'string' },
      all: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const [command, arg, ...extra] = positionals;
  if (values.help) {
    print(USAGE);
    return;
  }
  if (!command) throw new UsageError('no command given');
  if (extra.length > 0) throw new UsageError(`unexpected argument: ${extra[0]}`);
  const token = values.token ?? process.env.ADMIN_TOKEN;
  if (!token) throw new UsageError('no admin token: pass --token or set ADMIN_TOKEN');
  try {
    new URL(values.url);
  } catch {
    throw new UsageError(`--url: not a URL: ${values.url}`);
  }
  const admin = createAdminClient({ url: values.url, token });
  const first = values.first === undefined ? undefined : positiveInt('--first', values.first);
  const needArg = (what: string): string => {
    if (!arg) throw new UsageError(`${command} needs a ${what}`);
    return arg;
  };
  const noArg = () => {
    if (arg) throw new UsageError(`unexpected argument: ${arg}`);
  };
  const out = (json: unknown, text: () => string) => print(values.json ? JSON.stringify(json, null, 2) : text());

  switch (command) {
    case 'stats': {
      noArg();
      const s = await admin.stats();
      return out(s, () => statsText(s));
    }
    case 'rooms': {
      noArg();
      const orderBy = values.order === undefined ? undefined : roomOrder(values.order);
      return out(...(await roomsText(admin, { first, after: values.after, orderBy, all: values.all })));
    }
    case 'room': {
      const id = needArg('conversation id');
      const room = await admin.room(id);
      if (!room) throw new NotFound(`no active room ${id}`);
      return out(room, () => roomText(room));
    }
    case 'user': {
      const id = needArg('user id');
      const user = await admin.user(id);
      if (!user) throw new NotFound(`user ${id} has no connection`);
      return out(user, () =>
        [
          `${user.userId}: ${user.connections} connection${user.connections === 1 ? '' : 's'}, ${user.rooms.length} room${user.rooms.length === 1 ? '' : 's'}`,
          '',
          formatTable(user.rooms, [
            { header: 'CONVERSATION', value: (r) => r.conversationId },
            { header: 'CONNECTIONS', value: (r) => r.connections },
            { header: 'TYPING', value: (r) => r.typing },
            { header: 'JOINED', value: (r) => ago(r.joinedAt) },
          ]),
        ].join('\n'),
      );
    }
    case 'pending-acks': {
      noArg();
      const acks = await admin.pendingAcks({ ...(values.room !== undefined && { conversationId: values.room }), ...(first !== undefined && { first }) });
      return out(acks, () =>
        acks.length === 0
          ? 'no acknowledged messages pending'
          : formatTable(acks, [
              { header: 'MESSAGE', value: (a) => a.messageId },
              { header: 'CONVERSATION', value: (a) => a.conversationId },
              { header: 'SENDER', value: (a) => a.senderId },
              { header: 'ACKED', value: (a) => `${a.acked.length}/${a.expected.length}`, align: 'right' },
              { header: 'AGE', value: (a) => duration(a.ageMs / 1000), align: 'right' },
              { header: 'ATTEMPTS', value: (a) => a.attempts },
              { header: 'MISSING', value: (a) => list(a.missing) },
            ]),
      );
    }
    case 'delivery-report': {
      const id = needArg('message id');
      const r = await admin.deliveryReport(id);
      if (!r) throw new NotFound(`no delivery report for message ${id}`);
      return out(r, () =>
        formatPairs([
          ['message', r.messageId],
          ['conversation', r.conversationId],
          ['status', r.status],
          ['acked', `${r.acked.length}/${r.expected.length}`],
          ['missing', list(r.missing)],
          ['created', r.createdAt],
          ['completed', r.completedAt],
          ['latency', r.latencyMs === null ? null : `${r.latencyMs} ms`],
        ]),
      );
    }
    case 'nodes': {
      noArg();
      const nodes = await admin.nodes();
      return out(nodes, () =>
        formatTable(nodes, [
          { header: 'NODE', value: (n) => n.nodeId },
          { header: 'ADDRESS', value: (n) => n.address },
          { header: 'CONNECTIONS', value: (n) => n.connections },
          { header: 'WEBSOCKET', value: (n) => n.connectionsByTransport.websocket },
          { header: 'SSE', value: (n) => n.connectionsByTransport.sse },
          { header: 'ROOMS', value: (n) => n.rooms },
          { header: 'USERS', value: (n) => n.users },
          { header: 'UPTIME', value: (n) => duration(n.uptimeSeconds), align: 'right' },
          { header: 'SELF', value: (n) => (n.self ? '*' : '') },
        ]),
      );
    }
    default:
      throw new UsageError(`unknown command: ${command}`);
  }
}

class NotFound extends Error {}

function statsText(s: Awaited<ReturnType<AdminClient['stats']>>): string {
  const counters = formatPairs([
    ['active rooms', s.activeRooms],
    ['connections', s.connections],
    ['connections by transport', `${s.connectionsByTransport.websocket} websocket, ${s.connectionsByTransport.sse} sse`],
    ['users', s.users],
    ['messages broadcast', s.messagesBroadcast],
    ['deliveries', s.deliveries],
    ['pending acks', s.pendingAcks],
    ['acks delivered', s.acksDelivered],
    ['acks partial', s.acksPartial],
    ['acks failed', s.acksFailed],
    ['slow consumer closes', s.slowConsumerCloses],
    ['uptime', duration(s.uptimeSeconds)],
    ['memory (rss / heap)', `${bytes(s.memory.rssBytes)} / ${bytes(s.memory.heapUsedBytes)}`],
  ]);
  const latency = formatTable(
    [
      { name: 'delivery', ...s.deliveryLatencyMs },
      { name: 'ack', ...s.ackLatencyMs },
    ],
    [
      { header: 'LATENCY (ms, last minute)', value: (r) => r.name },
      { header: 'P50', value: (r) => r.p50.toFixed(2), align: 'right' },
      { header: 'P95', value: (r) => r.p95.toFixed(2), align: 'right' },
      { header: 'P99', value: (r) => r.p99.toFixed(2), align: 'right' },
      { header: 'MAX', value: (r) => r.max.toFixed(2), align: 'right' },
      { header: 'SAMPLES', value: (r) => r.count },
    ],
  );
  return `${counters}\n\n${latency}`;
}

async function roomsText(
  admin: AdminClient,
  args: { first: number | undefined; after: string | undefined; orderBy: RoomOrder | undefined; all: boolean },
): Promise<[unknown, () => string]> {
  const columns = [
    { header: 'CONVERSATION', value: (r: Room) => r.conversationId },
    { header: 'MEMBERS', value: (r: Room) => r.memberCount },
    { header: 'CONNECTIONS', value: (r: Room) => r.connectionCount },
    { header: 'MESSAGES', value: (r: Room) => r.messagesBroadcast },
    { header: 'PENDING ACKS', value: (r: Room) => r.pendingAcks },
    { header: 'LAST ACTIVITY', value: (r: Room) => ago(r.lastActivityAt), align: 'right' as const },
    { header: 'TYPING', value: (r: Room) => list(r.typing) },
  ];
  const order = args.orderBy === undefined ? {} : { orderBy: args.orderBy };
  if (args.all) {
    const rooms = await admin.allRooms(order);
    return [rooms, () => (rooms.length === 0 ? 'no active rooms' : formatTable(rooms, columns))];
  }
  const page = await admin.rooms({ first: args.first ?? 50, after: args.after ?? null, ...order });
  const rooms = page.edges.map((e) => e.node);
  return [
    page,
    () => {
      if (page.totalCount === 0) return 'no active rooms';
      const lines = [formatTable(rooms, columns)];
      if (page.pageInfo.hasNextPage) lines.push('', `${rooms.length} of ${page.totalCount} rooms; next page: --after ${page.pageInfo.endCursor}`);
      return lines.join('\n');
    },
  ];
}

type Room = Awaited<ReturnType<AdminClient['rooms']>>['edges'][number]['node'];

function roomText(room: NonNullable<Awaited<ReturnType<AdminClient['room']>>>): string {
  const parts = [
    formatPairs([
      ['conversation', room.conversationId],
      ['members', room.memberCount],
      ['connections', room.connectionCount],
      ['messages broadcast', room.messagesBroadcast],
      ['pending acks', room.pendingAcks],
      ['typing', list(room.typing)],
      ['created', ago(room.createdAt)],
      ['last activity', ago(room.lastActivityAt)],
    ]),
    '',
    formatTable(room.members, [
      { header: 'MEMBER', value: (m) => m.userId },
      { header: 'NAME', value: (m) => m.name },
      { header: 'CONNECTIONS', value: (m) => m.connections },
      { header: 'TYPING', value: (m) => m.typing },
      { header: 'JOINED', value: (m) => ago(m.joinedAt), align: 'right' },
    ]),
  ];
  if (room.pendingAckList.length > 0) {
    parts.push(
      '',
      formatTable(room.pendingAckList, [
        { header: 'PENDING MESSAGE', value: (a) => a.messageId },
        { header: 'SENDER', value: (a) => a.senderId },
        { header: 'AGE', value: (a) => duration(a.ageMs / 1000), align: 'right' },
        { header: 'MISSING', value: (a) => list(a.missing) },
      ]),
    );
  }
  return parts.join('\n');
}

function list(xs: readonly string[]): string {
  return xs.length === 0 ? '-' : xs.join(', ');
}

function positiveInt(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`${name}: not a whole number: ${value}`);
  return Number(value);
}

function roomOrder(value: string): RoomOrder {
  const order = value.toUpperCase();
  if (order === 'MEMBERS' || order === 'ACTIVITY' || order === 'MESSAGES' || order === 'ID') return order;
  throw new UsageError(`--order: one of members, activity, messages, id (got ${value})`);
}

/** One line for any failure; the caller prints it to stderr. */
export function describeFailure(error: unknown): string {
  if (error instanceof AdminClientError) {
    // The server says why (expired, invalid, signed with a secret a dev restart replaced…).
    if (error.status === 401) return `admin token rejected: ${error.message}`;
    if (error.status === 403) return `forbidden: ${error.message}`;
    if (error.code === 'NETWORK_ERROR') return error.message;
    return `${error.code ?? `HTTP ${error.status}`}: ${error.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}

main(process.argv.slice(2), (text) => process.stdout.write(`${text}\n`)).then(
  () => process.exit(0),
  (error: unknown) => {
    const usage = error instanceof UsageError || (error instanceof TypeError && (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS'));
    const line = describeFailure(error).split('\n')[0];
    process.stderr.write(`error: ${line}${usage ? ' (see --help)' : ''}\n`);
    process.exit(usage ? 2 : 1);
  },
);
