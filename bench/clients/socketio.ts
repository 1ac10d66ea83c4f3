/**
 * The Socket.IO 4.8 client for the same workloads: socket.io-client with the websocket transport
 * only (workload S's HTTP variant: long-polling only, Socket.IO's fallback where WebSockets do
 * not pass), one Manager per connection (forceNew), no reconnection. Rooms are joined with a `join`
 * event; messages arrive as `m` events carrying the same message object shape as the others.
 */
import { io, type Socket } from 'socket.io-client';
import { parseBodyFromString, type BodyFields } from '../lib/body.ts';
import type { ConnSpec } from '../lib/types.ts';
import { newReceiver, type BenchClient, type ReceiverState, type SendOutcome, type Sink } from './common.ts';

interface WireMessage {
  type: string;
  conversationId: string;
  message: { id: string; senderId: string; body: string; sentAt: string; ackRequired: boolean };
}

export class SocketIoClient implements BenchClient {
  private socket: Socket | null = null;
  private readonly receiver: ReceiverState | null;
  private readonly fields: BodyFields = { sender: 0, seq: 0, sentNs: 0, phase: 0 };
  private closing = false;

  constructor(
    private readonly url: string,
    readonly spec: ConnSpec,
    private readonly sink: Sink,
    private readonly transport: 'websocket' | 'polling' = 'websocket',
  ) {
    this.receiver = spec.room === null ? null : newReceiver(spec.room);
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = io(this.url, {
        transports: [this.transport],
        forceNew: true,
        reconnection: false,
        timeout: 60_000,
        auth: { userId: this.spec.user },
      });
      this.socket = socket;
      socket.on('connect', () => {
        if (this.spec.room === null) return resolve();
        socket.emit('join', this.spec.room, (ok: boolean) => (ok ? resolve() : reject(new Error('join refused'))));
      });
      socket.on('connect_error', (error) => reject(error));
      socket.on('disconnect', (reason) => {
        if (!this.closing) this.sink.unexpectedClose(`Socket.IO disconnect: ${reason}`);
      });
      socket.on('m', (msg: WireMessage, ack?: () => void) => {
        this.sink.frame();
        if (this.sink.sampleStructure()) {
          this.sink.structure(msg?.type === 'message' && typeof msg.message?.id === 'string' && typeof msg.message.body === 'string');
        }
        if (this.receiver && parseBodyFromString(msg.message.body, this.fields)) this.sink.deliver(this.receiver, this.fields);
        if (typeof ack === 'function') ack();
      });
    });
  }

  send(room: string, body: string, ack: boolean): Promise<SendOutcome> {
    const socket = this.socket;
    if (!socket?.connected) return Promise.resolve({ ok: false, error: 'socket not connected' });
    return new Promise((resolve) => {
      socket.emit('send', { room, body, ack }, (res: { ok: boolean; error?: string; acked?: number; expected?: number }) => {
        if (!res.ok) return resolve({ ok: false, error: res.error ?? 'refused' });
        resolve(ack ? { ok: true, acked: res.acked ?? 0, expected: res.expected ?? 0, status: res.acked === res.expected ? 'delivered' : 'partial' } : { ok: true });
      });
    });
  }

  close(): void {
    this.closing = true;
    // Drop the transport at once, like the other clients' terminate().
    const engine = this.socket?.io.engine as unknown as { transport?: { ws?: { terminate?: () => void } } } | undefined;
    engine?.transport?.ws?.terminate?.();
    this.socket?.disconnect();
  }
}
