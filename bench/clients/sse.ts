/**
 * The lean SSE receiver for this service (workload S): one `GET /trpc/conversation.events` with
 * `Authorization: Bearer`, read from the raw `http` response as Buffers — tRPC's SSE format as
 * src/transport/sse/events.ts writes it:
 *
 *   retry: 1000\nevent: connected\ndata: {"reconnectAfterInactivityMs":…}\n\n   (tRPC's `started`)
 *   data: {"json":{…event…},"meta"?:…}\nid: <event id>\n\n                      (one tracked value)
 *   event: ping\ndata: \n\n                                                       (keep-alive)
 *   event: serialized-error\ndata: {…}\n\n / event: return\ndata: \n\n           (the end)
 *
 * Like the raw WebSocket client, it finds the benchmark body by its marker without parsing the
 * event; 1 event in 101 is parsed in full and checked (data shape and a non-empty `id`). Events
 * are cut on the blank line between them; a chunk's events are read in place (no copy, no
 * decoding), only a partial event at a chunk's end is kept for the next one. It receives only:
 * sends go over the sender's WebSocket (clients/trpc.ts), so both variants of S share a sender.
 * No `eventsource` package (one per subscriber would be the load generator's bottleneck), and
 * an agent without a socket limit (`agent: false`: one socket per stream, as a browser per tab).
 */
import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import superjson from 'superjson';
import { parseBodyFromBuffer, type BodyFields } from '../lib/body.ts';
import type { ConnSpec } from '../lib/types.ts';
import { type BenchClient, newReceiver, type ReceiverState, type SendOutcome, settleOnce, type Sink } from './common.ts';

const EVENT_END = Buffer.from('\n\n');
const DATA_PREFIX = Buffer.from('data: ');
const CONNECTED = Buffer.from('event: connected');
const PING = Buffer.from('event: ping');
const ERROR = Buffer.from('event: serialized-error');
const RETURN = Buffer.from('event: return');

export class TrpcSseClient implements BenchClient {
  private req: ClientRequest | null = null;
  private rest: Buffer | null = null;
  private readonly receiver: ReceiverState;
  private readonly fields: BodyFields = { sender: 0, seq: 0, sentNs: 0, phase: 0 };
  private started = false;
  private closing = false;
  private readonly url: string;
  private readonly token: string;

  /** `server.url` is the WebSocket URL (ws://host:port/trpc); the stream is served on the same port. */
  constructor(
    server: { url: string; token: string },
    readonly spec: ConnSpec,
    private readonly sink: Sink,
  ) {
    if (spec.room === null) throw new Error('an SSE client receives: it needs a room');
    const input = encodeURIComponent(JSON.stringify(superjson.serialize({ conversationId: spec.room })));
    this.url = `${server.url.replace(/^ws/, 'http')}/conversation.events?input=${input}`;
    this.token = server.token;
    this.receiver = newReceiver(spec.room);
  }

  open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = settleOnce(resolve, reject);
      const req = request(this.url, { agent: false, headers: { accept: 'text/event-stream', authorization: `Bearer ${this.token}` } }, (res: IncomingMessage) => {
        if (res.statusCode !== 200) {
          done(new Error(`HTTP ${res.statusCode ?? '?'}`));
          res.resume();
          return;
        }
        res.on('data', (chunk: Buffer) => this.onChunk(chunk, done));
        res.on('end', () => this.gone('the server ended the stream', done));
        res.on('aborted', () => this.gone('the stream was reset', done));
        res.on('error', () => this.gone('the stream was reset', done));
      });
      this.req = req;
      req.on('error', (error) => {
        done(error);
        if (this.started) this.gone(`stream error: ${error.message}`, done);
      });
      req.end();
    });
  }

  private gone(detail: string, failOpen: (error?: Error) => void): void {
    failOpen(new Error(`${detail} before it went live`));
    if (this.closing) return;
    this.closing = true; // report once
    this.sink.unexpectedClose(`SSE: ${detail}`);
  }

  private onChunk(chunk: Buffer, failOpen: (error?: Error) => void): void {
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let start = 0;
    for (;;) {
      const end = buf.indexOf(EVENT_END, start);
      if (end === -1) break;
      if (end > start) this.onEvent(buf.subarray(start, end), failOpen);
      start = end + 2;
    }
    // A partial event waits for the rest (copied: the chunk's memory is not ours to keep).
    if (start < buf.length) this.rest = Buffer.from(buf.subarray(start));
  }

  private onEvent(event: Buffer, failOpen: (error?: Error) => void): void {
    this.sink.frame();
    // A tracked value is the only event that starts with its data (the others name themselves).
    if (this.started && startsWith(event, DATA_PREFIX)) {
      if (!parseBodyFromBuffer(event, this.fields)) return; // presence and the like: not a benchmark message
      if (this.sink.sampleStructure()) this.checkStructure(event);
      this.sink.deliver(this.receiver, this.fields);
      return;
    }
    if (event.includes(CONNECTED)) {
      this.started = true;
      failOpen();
    } else if (event.includes(PING)) {
      // keep-alive
    } else if (event.includes(ERROR)) {
      const detail = `SSE serialized-error: ${String(event).slice(0, 200)}`;
      this.sink.errorFrame(detail);
      failOpen(new Error(detail));
    } else if (event.includes(RETURN)) {
      if (!this.closing) this.sink.unexpectedClose('SSE stream completed (return) by the server');
    } else if (!startsWith(event, DATA_PREFIX)) {
      this.sink.errorFrame(`unexpected SSE event: ${String(event).slice(0, 80)}`);
    }
  }

  /** `data: {"json":{type:"message",message:{body}}}` then `id: <non-empty>`, nothing else. */
  private checkStructure(event: Buffer): void {
    const text = String(event);
    const lines = text.split('\n');
    let ok = false;
    try {
      const data = JSON.parse(lines[0]!.slice(DATA_PREFIX.length)) as { json?: { type?: unknown; message?: { body?: unknown } } };
      ok = lines.length === 2 && /^id: \S+$/.test(lines[1]!) && data.json?.type === 'message' && typeof data.json.message?.body === 'string';
    } catch {
      ok = false;
    }
    this.sink.structure(ok, ok ? undefined : text.slice(0, 200));
  }

  send(): Promise<SendOutcome> {
    return Promise.resolve({ ok: false, error: 'the SSE client only receives' });
  }

  close(): void {
    this.closing = true;
    this.req?.destroy();
  }
}

function startsWith(buf: Buffer, prefix: Buffer): boolean {
  return buf.length >= prefix.length && buf.compare(prefix, 0, prefix.length, 0, prefix.length) === 0;
}
