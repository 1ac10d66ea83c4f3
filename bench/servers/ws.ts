/**
 * Target "ws": the practical limit of a Node broadcast server on `ws`. Each message's frame is
 * built once (JSON once, the WebSocket header once) and written to every recipient's TCP socket
 * as is; writes to a socket are coalesced per event-loop turn with cork/uncork. Rooms are sets of
 * sockets; acks are counted per message and reported to the sender when all are in.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { serveBenchControl } from './common.ts';

// BENCH_SERVER_PROF_DIR (node --cpu-prof): exit on SIGTERM, so the profile is written.
if (process.env.BENCH_SERVER_PROF_DIR) process.once('SIGTERM', () => process.exit(0));

interface Peer {
  ws: WebSocket;
  tcp: Socket;
  userId: string;
  rooms: Set<string>;
}

const rooms = new Map<string, Set<Peer>>();
const pendingAcks = new Map<string, { sender: Peer; rid: number; expected: number; acked: number; timer: NodeJS.Timeout }>();
const ACK_TIMEOUT_MS = 120_000;

/** An unmasked, final text frame (RFC 6455 §5.2) around `payload`. */
function textFrame(payload: Buffer): Buffer {
  const n = payload.length;
  const headerLength = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + n);
  frame[0] = 0x81;
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    frame.writeUInt16BE(n, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(n), 2);
  }
  payload.copy(frame, headerLength);
  return frame;
}

const corked = new Set<Socket>();
let uncorkScheduled = false;
function uncorkAll(): void {
  uncorkScheduled = false;
  for (const tcp of corked) tcp.uncork();
  corked.clear();
}

function write(peer: Peer, frame: Buffer): void {
  const tcp = peer.tcp;
  if (tcp.destroyed) return;
  if (!corked.has(tcp)) {
    tcp.cork();
    corked.add(tcp);
    if (!uncorkScheduled) {
      uncorkScheduled = true;
      setImmediate(uncorkAll);
    }
  }
  tcp.write(frame);
}

function reply(peer: Peer, value: unknown): void {
  write(peer, textFrame(Buffer.from(JSON.stringify(value))));
}

const httpServer = createServer();
const wss = new WebSocketServer({ server: httpServer, perMessageDeflate: false, clientTracking: true, maxPayload: 1024 * 1024 });

wss.on('connection', (ws, req) => {
  const userId = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? 'anonymous';
  const peer: Peer = { ws, tcp: (ws as unknown as { _socket: Socket })._socket, userId, rooms: new Set() };
  ws.on('message', (data: Buffer) => {
    let m: { t?: string; room?: string; body?: string; rid?: number; ack?: boolean; mid?: string };
    try {
      m = JSON.parse(String(data)) as typeof m;
    } catch {
      return reply(peer, { t: 'error', error: 'bad json' });
    }
    if (m.t === 'join' && typeof m.room === 'string') {
      let set = rooms.get(m.room);
      if (!set) rooms.set(m.room, (set = new Set()));
      set.add(peer);
      peer.rooms.add(m.room);
      return reply(peer, { t: 'joined' });
    }
    if (m.t === 'send' && typeof m.room === 'string' && typeof m.body === 'string') {
      const sentAt = new Date().toISOString();
      const id = randomUUID();
      const ack = m.ack === true;
      const event = { type: 'message', conversationId: m.room, at: sentAt, message: { id, senderId: userId, body: m.body, sentAt, ackRequired: ack } };
      const frame = textFrame(Buffer.from(JSON.stringify(event)));
      let recipients = 0;
      for (const other of rooms.get(m.room) ?? []) {
        if (other === peer) continue;
        write(other, frame);
        recipients += 1;
      }
      if (!ack) return reply(peer, { t: 'ok', rid: m.rid });
      if (recipients === 0) return reply(peer, { t: 'report', rid: m.rid, acked: 0, expected: 0 });
      const rid = m.rid ?? 0;
      const timer = setTimeout(() => {
        pendingAcks.delete(id);
        reply(peer, { t: 'report', rid, acked: entry.acked, expected: entry.expected });
      }, ACK_TIMEOUT_MS);
      const entry = { sender: peer, rid, expected: recipients, acked: 0, timer };
      pendingAcks.set(id, entry);
      return;
    }
    if (m.t === 'ack' && typeof m.mid === 'string') {
      const entry = pendingAcks.get(m.mid);
      if (!entry) return;
      entry.acked += 1;
      if (entry.acked === entry.expected) {
        clearTimeout(entry.timer);
        pendingAcks.delete(m.mid);
        reply(entry.sender, { t: 'report', rid: entry.rid, acked: entry.acked, expected: entry.expected });
      }
      return;
    }
    reply(peer, { t: 'error', error: 'unknown message' });
  });
  ws.on('close', () => {
    for (const room of peer.rooms) {
      const set = rooms.get(room);
      set?.delete(peer);
      if (set?.size === 0) rooms.delete(room);
    }
  });
});

await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
serveBenchControl((httpServer.address() as AddressInfo).port, () => wss.clients.size);
