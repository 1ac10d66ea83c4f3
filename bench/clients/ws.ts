/**
 * The plain `ws` client for the practical-limit target: a minimal JSON protocol.
 *
 *   → {"t":"join","room":…}                       ← {"t":"joined"}
 *   → {"t":"send","rid":n,"room":…,"body":…,"ack":bool}
 *                                                  ← {"t":"ok","rid":n}  (ack: {"t":"report","rid":n,"acked":k,"expected":m})
 *   ← {"type":"message","conversationId":…,"message":{"id":…,"senderId":…,"body":…,"sentAt":…,"ackRequired":bool}}
 *   → {"t":"ack","room":…,"mid":…}
 */
import { WebSocket } from 'ws';
import { parseBodyFromBuffer, type BodyFields } from '../lib/body.ts';
import type { ConnSpec } from '../lib/types.ts';
import { type BenchClient, newReceiver, type ReceiverState, type SendOutcome, settleOnce, type Sink } from './common.ts';

const ACK_REQUIRED = Buffer.from('"ackRequired":true');

interface Control {
  t?: string;
  rid?: number;
  acked?: number;
  expected?: number;
  error?: string;
  message?: { id: string };
}

export class PlainWsClient implements BenchClient {
  private ws: WebSocket | null = null;
  private nextRid = 0;
  private readonly pending = new Map<number, (c: Control) => void>();
  private readonly receiver: ReceiverState | null;
  private readonly fields: BodyFields = { sender: 0, seq: 0, sentNs: 0, phase: 0 };
  private closing = false;

  constructor(
    private readonly url: string,
    readonly spec: ConnSpec,
    private readonly sink: Sink,
  ) {
    this.receiver = spec.room === null ? null : newReceiver(spec.room);
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = settleOnce(resolve, reject);
      const ws = new WebSocket(`${this.url}/?user=${encodeURIComponent(this.spec.user)}`, { perMessageDeflate: false, skipUTF8Validation: true });
      this.ws = ws;
      ws.on('open', () => {
        if (this.spec.room === null) return done();
        this.pending.set(0, (c) => (c.t === 'joined' ? done() : done(new Error(`join refused: ${JSON.stringify(c)}`))));
        ws.send(JSON.stringify({ t: 'join', room: this.spec.room }));
      });
      ws.on('message', (data: Buffer) => {
        this.sink.frame();
        if (this.receiver && parseBodyFromBuffer(data, this.fields)) {
          if (this.sink.ackMode && data.includes(ACK_REQUIRED)) {
            const m = JSON.parse(String(data)) as Control;
            ws.send(JSON.stringify({ t: 'ack', room: this.receiver.room, mid: m.message?.id }));
          } else if (this.sink.sampleStructure()) {
            const m = JSON.parse(String(data)) as { type?: string; message?: { id?: unknown; body?: unknown } };
            this.sink.structure(m.type === 'message' && typeof m.message?.id === 'string' && typeof m.message.body === 'string');
          }
          this.sink.deliver(this.receiver, this.fields);
          return;
        }
        const c = JSON.parse(String(data)) as Control;
        if (c.t === 'error') this.sink.errorFrame(c.error ?? 'error');
        const key = c.t === 'joined' ? 0 : c.rid;
        if (key === undefined) return;
        const settle = this.pending.get(key);
        if (settle) {
          this.pending.delete(key);
          settle(c);
        }
      });
      ws.on('error', (error) => done(error));
      ws.on('close', (code) => {
        done(new Error(`closed with ${code}`));
        if (!this.closing) this.sink.unexpectedClose(`ws closed by the server (${code})`);
      });
    });
  }

  send(room: string, body: string, ack: boolean): Promise<SendOutcome> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve({ ok: false, error: 'socket not open' });
    const rid = ++this.nextRid;
    return new Promise((resolve) => {
      this.pending.set(rid, (c) => {
        if (c.t === 'error') return resolve({ ok: false, error: c.error ?? 'error' });
        resolve(ack ? { ok: true, acked: c.acked ?? 0, expected: c.expected ?? 0, status: c.acked === c.expected ? 'delivered' : 'partial' } : { ok: true });
      });
      ws.send(JSON.stringify({ t: 'send', rid, room, body, ack }));
    });
  }

  close(): void {
    this.closing = true;
    this.ws?.terminate();
  }
}
