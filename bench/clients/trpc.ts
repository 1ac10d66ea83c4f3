/**
 * The lean raw-frame client for this service: it speaks the tRPC v11 WebSocket protocol by hand
 * (notes/trpc-v11.md §3), so a load generator can hold thousands of them.
 *
 *   connect  ws://host:port/trpc?connectionParams=1
 *   → {"method":"connectionParams","data":{"token":…}}
 *   → {"id":1,"method":"subscription","params":{"input":{"json":{"conversationId":…}},"path":"conversation.events"}}
 *   ← {"id":1,"result":{"type":"started"}}
 *   ← {"id":1,"result":{"type":"data","data":{"json":{"id":…,"data":{…event…}},"meta"?:…},"id":…}}
 *   → {"id":n,"method":"mutation","params":{"input":{"json":{…}},"path":"message.send"}}
 *   ← PING  → PONG
 *
 * Benchmark messages are recognised by the marker in their body, without parsing the frame;
 * a sample of frames is parsed in full and checked against the protocol's envelope.
 *
 * Acks go the way the typed client sends them (clients/chat/ack-batcher.ts): acks made within
 * `ackBatchMs` (the typed client's default) of the first leave as one `message.ack` call — the
 * single form for one ack, `{ acks: [...] }` for more — and while a call is in flight, acks wait
 * for its answer and leave together.
 */
import superjson from 'superjson';
import { WebSocket } from 'ws';
import { DEFAULT_ACK_BATCH_MS, MAX_ACKS_PER_CALL } from '../../clients/chat/ack-batcher.ts';
import { parseBodyFromBuffer, type BodyFields } from '../lib/body.ts';
import type { ConnSpec } from '../lib/types.ts';
import { type BenchClient, newReceiver, type ReceiverState, type SendOutcome, settleOnce, type Sink } from './common.ts';

const SUBSCRIPTION_ID = 1;
const PING = Buffer.from('PING');
const ERROR_KEY = Buffer.from('"error":');
const STOPPED = Buffer.from('"type":"stopped"');
const ACK_REQUIRED = Buffer.from('"ackRequired":true');

interface Frame {
  id?: number | string | null;
  method?: string;
  result?: { type?: string; data?: { json?: unknown; meta?: unknown }; id?: string };
  error?: { json?: { message?: string; data?: { code?: string } } };
}

interface Report {
  messageId: string;
  status: string;
  expected: string[];
  acked: string[];
}

/** One event of the subscription, as the stock client would hand it to the application. */
export interface RecordedEvent {
  id: string;
  event: unknown;
}

export interface TrpcRawOptions {
  /** Keep every subscription event (deserialized with superjson), for the identity check. */
  record?: boolean;
  /** Ack messages that require it even outside ack mode (the stock client always does). */
  autoAck?: boolean;
  /** Coalescing window for acks, as the typed client's `ackBatchMs` (default: its default). */
  ackBatchMs?: number;
}

export class TrpcRawClient implements BenchClient {
  private ws: WebSocket | null = null;
  private nextId = SUBSCRIPTION_ID;
  private readonly pending = new Map<number, (frame: Frame) => void>();
  private readonly reportWaiters = new Map<string, (report: Report) => void>();
  private readonly earlyReports = new Map<string, Report>();
  private readonly receiver: ReceiverState | null;
  private readonly fields: BodyFields = { sender: 0, seq: 0, sentNs: 0, phase: 0 };
  private started = false;
  private closing = false;
  private ackQueue: Array<{ conversationId: string; messageId: string }> = [];
  private ackTimer: NodeJS.Timeout | null = null;
  private acksInFlight = 0;
  /** Every subscription event, when recording. */
  readonly events: RecordedEvent[] = [];

  private readonly url: string;
  private readonly token: string;

  /** `server.url` is ws://host:port/trpc; `server.token` the JWT sent as connectionParams. */
  constructor(
    server: { url: string; token: string },
    readonly spec: ConnSpec,
    private readonly sink: Sink,
    private readonly options: TrpcRawOptions = {},
  ) {
    this.url = server.url;
    this.token = server.token;
    this.receiver = spec.room === null ? null : newReceiver(spec.room);
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = settleOnce(resolve, reject);
      const ws = new WebSocket(`${this.url}?connectionParams=1`, { perMessageDeflate: false, skipUTF8Validation: true });
      this.ws = ws;
      ws.on('open', () => {
        ws.send(JSON.stringify({ method: 'connectionParams', data: { token: this.token } }));
        if (this.spec.room !== null) {
          const input = superjson.serialize({ conversationId: this.spec.room });
          this.pending.set(SUBSCRIPTION_ID, (frame) => {
            if (frame.result?.type === 'started') {
              this.started = true;
              done();
            } else done(new Error(`subscription refused: ${describe(frame)}`));
          });
          ws.send(JSON.stringify({ id: SUBSCRIPTION_ID, method: 'subscription', params: { input, path: 'conversation.events' } }));
        } else {
          // No room: prove the connection is authenticated with a cheap query.
          this.call('query', 'conversation.mine', undefined).then(
            (frame) => (frame.error ? done(new Error(`connection refused: ${describe(frame)}`)) : done()),
            (error: Error) => done(error),
          );
        }
      });
      ws.on('message', (data: Buffer) => this.onFrame(data, done));
      ws.on('error', (error) => done(error));
      ws.on('close', (code) => {
        done(new Error(`closed with ${code} before the subscription started`));
        for (const settle of this.pending.values()) settle({ error: { json: { message: `socket closed (${code})` } } });
        this.pending.clear();
        if (!this.closing) this.sink.unexpectedClose(`tRPC socket closed by the server (${code})`);
      });
    });
  }

  private onFrame(data: Buffer, failOpen: (error?: Error) => void): void {
    this.sink.frame();
    if (data.length === 4 && data.equals(PING)) {
      this.ws?.send('PONG');
      return;
    }
    const receiver = this.receiver;
    if (receiver !== null && this.started && parseBodyFromBuffer(data, this.fields)) {
      if (this.options.record || (this.sink.ackMode || this.options.autoAck) && data.includes(ACK_REQUIRED)) {
        this.handleParsed(JSON.parse(String(data)) as Frame);
      } else if (this.sink.sampleStructure()) {
        this.checkStructure(JSON.parse(String(data)) as Frame);
      }
      this.sink.deliver(receiver, this.fields);
      return;
    }
    // Control frames: parse them when someone waits for one, or when they report an error.
    if (this.pending.size > 0 || this.reportWaiters.size > 0 || !this.started || this.spec.sender || this.options.record || data.includes(ERROR_KEY) || data.includes(STOPPED)) {
      let frame: Frame;
      try {
        frame = JSON.parse(String(data)) as Frame;
      } catch {
        this.sink.errorFrame(`unparsable frame: ${String(data).slice(0, 80)}`);
        return;
      }
      if (frame.id === null && frame.error) {
        this.sink.errorFrame(`connection error: ${describe(frame)}`);
        failOpen(new Error(`connection refused: ${describe(frame)}`));
        return;
      }
      this.handleParsed(frame);
    }
  }

  private handleParsed(frame: Frame): void {
    if (frame.error) this.sink.errorFrame(`${describe(frame)} (request ${String(frame.id)})`);
    // A list ack's items are answered one by one: a refused item is an error too.
    const results = (frame.result?.data?.json as { results?: Array<{ error?: { code: string; message: string } }> } | undefined)?.results;
    const refused = Array.isArray(results) ? results.find((r) => r.error) : undefined;
    if (refused?.error) this.sink.errorFrame(`ack refused: ${refused.error.code}: ${refused.error.message} (request ${String(frame.id)})`);
    if (typeof frame.id === 'number' && frame.id !== SUBSCRIPTION_ID) {
      const settle = this.pending.get(frame.id);
      if (settle) {
        this.pending.delete(frame.id);
        settle(frame);
      }
      return;
    }
    if (frame.id !== SUBSCRIPTION_ID) return;
    if (frame.result?.type === 'stopped') {
      if (!this.closing) this.sink.unexpectedClose('subscription stopped by the server');
      return;
    }
    if (frame.result?.type === 'started' || frame.error) {
      const settle = this.pending.get(SUBSCRIPTION_ID);
      this.pending.delete(SUBSCRIPTION_ID);
      settle?.(frame);
      return;
    }
    if (frame.result?.type !== 'data') return;
    const tracked = superjson.deserialize(frame.result.data as Parameters<typeof superjson.deserialize>[0]) as { id: string; data: EventLike };
    if (this.options.record) this.events.push({ id: frame.result.id ?? tracked.id, event: tracked.data });
    const event = tracked.data;
    if (event.type === 'message' && event.message?.ackRequired && (this.sink.ackMode || this.options.autoAck) && this.spec.room !== null) {
      this.queueAck(this.spec.room, event.message.id);
    }
    if (event.type === 'message_delivered' && event.report) {
      const waiter = this.reportWaiters.get(event.report.messageId);
      if (waiter) {
        this.reportWaiters.delete(event.report.messageId);
        waiter(event.report);
      } else this.earlyReports.set(event.report.messageId, event.report);
    }
  }

  private checkStructure(frame: Frame): void {
    const r = frame.result;
    const json = r?.data?.json as { id?: unknown; data?: { type?: unknown; message?: { body?: unknown } } } | undefined;
    const ok =
      frame.id === SUBSCRIPTION_ID &&
      r?.type === 'data' &&
      typeof r.id === 'string' &&
      json?.id === r.id &&
      json.data?.type === 'message' &&
      typeof json.data.message?.body === 'string';
    this.sink.structure(ok, ok ? undefined : String(JSON.stringify(frame)).slice(0, 200));
  }

  /** Sends a query or mutation; resolves with the response frame. */
  call(method: 'query' | 'mutation', path: string, input: unknown): Promise<Frame> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.resolve({ error: { json: { message: 'socket not open' } } });
    const id = ++this.nextId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      ws.send(JSON.stringify({ id, method, params: { input: superjson.serialize(input), path } }));
    });
  }

  private queueAck(conversationId: string, messageId: string): void {
    this.ackQueue.push({ conversationId, messageId });
    const batchMs = this.options.ackBatchMs ?? DEFAULT_ACK_BATCH_MS;
    if (batchMs <= 0 || this.ackQueue.length >= MAX_ACKS_PER_CALL) this.flushAcks();
    else if (this.acksInFlight === 0) this.ackTimer ??= setTimeout(() => this.flushAcks(), batchMs);
    // else: they leave when the call in flight is answered
  }

  private flushAcks(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
    const acks = this.ackQueue;
    if (acks.length === 0) return;
    this.ackQueue = [];
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const id = ++this.nextId;
    this.acksInFlight += 1;
    this.pending.set(id, () => {
      this.acksInFlight -= 1;
      if (this.acksInFlight === 0 && this.ackQueue.length > 0) this.flushAcks();
    });
    ws.send(JSON.stringify({ id, method: 'mutation', params: { input: { json: acks.length === 1 ? acks[0] : { acks } }, path: 'message.ack' } }));
  }

  async send(room: string, body: string, ack: boolean): Promise<SendOutcome> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return { ok: false, error: 'socket not open' };
    const id = ++this.nextId;
    const input = ack ? { conversationId: room, body, ack: true } : { conversationId: room, body };
    const frame = await new Promise<Frame>((resolve) => {
      this.pending.set(id, resolve);
      ws.send(`{"id":${id},"method":"mutation","params":{"input":{"json":${JSON.stringify(input)}},"path":"message.send"}}`);
    });
    if (frame.error || frame.result?.type !== 'data') return { ok: false, error: describe(frame) };
    if (!ack) return { ok: true };
    const messageId = (frame.result.data?.json as { messageId?: string } | undefined)?.messageId;
    if (!messageId) return { ok: false, error: 'no messageId in the send result' };
    const report =
      this.earlyReports.get(messageId) ??
      (await new Promise<Report>((resolve) => {
        this.reportWaiters.set(messageId, resolve);
      }));
    this.earlyReports.delete(messageId);
    return { ok: true, acked: report.acked.length, expected: report.expected.length, status: report.status };
  }

  close(): void {
    this.closing = true;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ws?.terminate();
  }
}

interface EventLike {
  type?: string;
  message?: { id: string; ackRequired?: boolean };
  report?: Report;
}

function describe(frame: Frame): string {
  const e = frame.error?.json;
  if (e) return `${e.data?.code ?? 'ERROR'}: ${e.message ?? ''}`;
  return JSON.stringify(frame).slice(0, 200);
}
