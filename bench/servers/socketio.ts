/**
 * Target "socketio": a plain Socket.IO 4.8 server doing the same job the way a Socket.IO app
 * would: the websocket transport (and long-polling, which only workload S's HTTP variant uses:
 * every other client asks for websocket alone, so it is never offered an upgrade), rooms with socket.join, `socket.to(room).emit` (the sender
 * excluded, like this service), and for acknowledged broadcasts
 * `socket.to(room).timeout(ms).emitWithAck` followed by a report to the sender. The message
 * object has the same fields as this service's `message` event.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { serveBenchControl } from './common.ts';

// BENCH_SERVER_PROF_DIR (node --cpu-prof): exit on SIGTERM, so the profile is written.
if (process.env.BENCH_SERVER_PROF_DIR) process.once('SIGTERM', () => process.exit(0));

const ACK_TIMEOUT_MS = 120_000;
const httpServer = createServer();
const io = new Server(httpServer, { transports: ['polling', 'websocket'], perMessageDeflate: false, httpCompression: false, serveClient: false, maxHttpBufferSize: 1e6 });

io.on('connection', (socket) => {
  const auth = socket.handshake.auth as { userId?: unknown };
  const userId = typeof auth.userId === 'string' ? auth.userId : 'anonymous';
  socket.on('join', (room: unknown, cb?: (ok: boolean) => void) => {
    if (typeof room !== 'string') return cb?.(false);
    void socket.join(room);
    cb?.(true);
  });
  socket.on('send', (input: { room?: unknown; body?: unknown; ack?: unknown }, cb?: (res: unknown) => void) => {
    if (typeof input?.room !== 'string' || typeof input.body !== 'string') return cb?.({ ok: false, error: 'bad input' });
    const sentAt = new Date();
    const message = {
      type: 'message',
      conversationId: input.room,
      at: sentAt.toISOString(),
      message: { id: randomUUID(), senderId: userId, body: input.body, sentAt: sentAt.toISOString(), ackRequired: input.ack === true },
    };
    if (input.ack !== true) {
      socket.to(input.room).emit('m', message);
      return cb?.({ ok: true, messageId: message.message.id });
    }
    const expected = (io.sockets.adapter.rooms.get(input.room)?.size ?? 1) - (socket.rooms.has(input.room) ? 1 : 0);
    socket
      .to(input.room)
      .timeout(ACK_TIMEOUT_MS)
      .emitWithAck('m', message)
      .then(
        (responses: unknown[]) => cb?.({ ok: true, acked: responses.length, expected }),
        () => cb?.({ ok: true, acked: 0, expected }),
      );
  });
});

await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
serveBenchControl((httpServer.address() as AddressInfo).port, () => io.engine.clientsCount);
