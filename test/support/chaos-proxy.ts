import { connect, createServer, type Socket } from 'node:net';

/**
 * A TCP proxy for the chaos tests (test/chaos.test.ts): it cuts a user's connections the way a
 * network failure does, and reads the WebSocket frames going through to learn what the server
 * answered to each ack.
 */

/** What the server answered to one ack. */
export type AckAnswer = 'counted' | 'duplicate' | 'late' | 'late_duplicate' | 'refused' | 'unanswered';

/** One answered (or, when its connection went first, unanswered) ack. */
export interface ObservedAck {
  userId: string;
  messageId: string;
  answer: AckAnswer;
  /** Date.now() when the answer passed (or the connection closed without one). */
  at: number;
  /** The error of a refused ack (code: message). */
  error?: string;
}

/** Acks by message and user, as `checkReports` reads them. */
export type AckAnswers = Map<string, Map<string, ObservedAck[]>>;

export function recordAck(answers: AckAnswers, ack: ObservedAck): void {
  const byUser = answers.get(ack.messageId) ?? new Map<string, ObservedAck[]>();
  answers.set(ack.messageId, byUser);
  byUser.set(ack.userId, [...(byUser.get(ack.userId) ?? []), ack]);
}

export interface ChaosProxyOptions {
  host: string;
  port: number;
  /** Called for every `message.ack` call seen on the wire, once answered or abandoned. */
  onAck?: (ack: ObservedAck) => void;
}

export interface ChaosProxy extends AsyncDisposable {
  /** The WebSocket URL through the proxy, tagged with `userId` (the server ignores the query). */
  url(userId: string): string;
  /** Destroys every proxied connection of `userId` at once, both ways, with no close frame. */
  sever(userId: string): number;
  /** Connections currently proxied. */
  readonly size: number;
  close(): Promise<void>;
}

/**
 * A TCP proxy in front of one server. Each client names itself in the upgrade URL
 * (`/trpc?chaos=<userId>`), so the test can cut exactly that user's connections the way a network
 * failure does: both sockets destroyed, no close frame, the server notices only by the TCP close.
 * With `onAck` it also reads the WebSocket frames both ways and reports what the server answered
 * to each `message.ack` — the chat client acks by itself and keeps the answer to itself.
 */
export async function startChaosProxy(options: ChaosProxyOptions): Promise<ChaosProxy> {
  const { host, port: targetPort, onAck } = options;
  const byUser = new Map<string, Set<Socket>>();
  const all = new Set<Socket>();
  const server = createServer((downstream) => {
    all.add(downstream);
    downstream.on('error', () => undefined);
    downstream.once('close', () => all.delete(downstream));
    downstream.once('data', (head) => {
      const userId = /[?&]chaos=([^&\s]+)/.exec(head.toString('latin1', 0, Math.min(head.length, 512)))?.[1];
      const upstream = connect(targetPort, host);
      upstream.on('error', () => downstream.destroy());
      downstream.on('error', () => upstream.destroy());
      upstream.once('close', () => downstream.destroy());
      downstream.once('close', () => upstream.destroy());
      if (userId !== undefined) {
        const set = byUser.get(userId) ?? new Set();
        byUser.set(userId, set);
        set.add(downstream);
        downstream.once('close', () => set.delete(downstream));
        if (onAck) tapAcks({ userId, downstream, upstream, head, onAck });
      }
      upstream.write(head);
      downstream.pipe(upstream);
      upstream.pipe(downstream);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const close = async () => {
    for (const socket of all) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    url: (userId) => `ws://127.0.0.1:${port}/trpc?chaos=${encodeURIComponent(userId)}`,
    sever(userId) {
      const sockets = [...(byUser.get(userId) ?? [])];
      for (const socket of sockets) socket.destroy();
      return sockets.length;
    },
    get size() {
      return all.size;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Matches `message.ack` requests (client to server) with their answers (server to client). */
function tapAcks(options: { userId: string; downstream: Socket; upstream: Socket; head: Buffer; onAck: (ack: ObservedAck) => void }): void {
  const { userId, downstream, upstream, head, onAck } = options;
  // request id → the message ids it acks (one for the single form; a list's, in order)
  const pending = new Map<string, { messageIds: string[]; list: boolean }>();
  const requests = new FrameReader((payload) => {
    const text = payload.toString('utf8');
    if (!text.includes('"message.ack"')) return;
    const parsed = JSON.parse(text) as unknown;
    for (const message of Array.isArray(parsed) ? parsed : [parsed]) {
      const { id, method, params } = message as { id?: string | number; method?: string; params?: { path?: string; input?: { json?: { messageId?: string; acks?: Array<{ messageId?: string }> } } } };
      const input = params?.input?.json;
      if (method !== 'mutation' || params?.path !== 'message.ack' || id === undefined || !input) continue;
      if (Array.isArray(input.acks)) pending.set(String(id), { messageIds: input.acks.map((a) => String(a.messageId)), list: true });
      else if (input.messageId !== undefined) pending.set(String(id), { messageIds: [input.messageId], list: false });
    }
  });
  const answers = new FrameReader((payload) => {
    if (pending.size === 0) return;
    // Only the start is read for the id: most frames are events of the subscription.
    const id = /^\{"id":(?:"([^"]*)"|(\d+))/.exec(payload.toString('latin1', 0, 48));
    const key = id?.[1] ?? id?.[2];
    const request = key === undefined ? undefined : pending.get(key);
    if (key === undefined || request === undefined) return;
    pending.delete(key);
    type Answered = { accepted?: boolean; duplicate?: boolean; late?: boolean; error?: { code?: string; message?: string } };
    const reply = JSON.parse(payload.toString('utf8')) as {
      result?: { data?: { json?: Answered & { results?: Answered[] } } };
      error?: { json?: { message?: string; data?: { code?: string } } };
    };
    const json = reply.result?.data?.json;
    const callError = reply.error?.json;
    // A list is answered item by item; a refused call (or the single form) answers every item alike.
    request.messageIds.forEach((messageId, i) => {
      const result = request.list ? json?.results?.[i] : json;
      const itemError = result?.error ? { code: result.error.code, message: result.error.message } : callError && { code: callError.data?.code, message: callError.message };
      const answer: AckAnswer = !result || result.error ? 'refused' : result.accepted && !result.duplicate ? 'counted' : result.late ? (result.duplicate ? 'late_duplicate' : 'late') : 'duplicate';
      onAck({ userId, messageId, answer, at: Date.now(), ...(itemError && { error: `${itemError.code}: ${itemError.message}` }) });
    });
  });
  requests.push(head);
  downstream.on('data', (chunk: Buffer) => requests.push(chunk));
  upstream.on('data', (chunk: Buffer) => answers.push(chunk));
  downstream.once('close', () => {
    for (const { messageIds } of pending.values()) for (const messageId of messageIds) onAck({ userId, messageId, answer: 'unanswered', at: Date.now() });
    pending.clear();
  });
}

/** Text messages (as bytes) of one direction of a WebSocket connection, after the HTTP upgrade head. */
class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);
  private inHead = true;
  private fragments: Buffer[] = [];

  constructor(private readonly onText: (payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    if (this.inHead) {
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      this.buffer = this.buffer.subarray(end + 4);
      this.inHead = false;
    }
    for (;;) {
      if (this.buffer.length < 2) return;
      const first = this.buffer[0]!;
      const second = this.buffer[1]!;
      let length = second & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      const masked = (second & 0x80) !== 0;
      const maskAt = offset;
      if (masked) offset += 4;
      if (this.buffer.length < offset + length) return;
      let payload = this.buffer.subarray(offset, offset + length);
      if (masked) {
        payload = Buffer.from(payload);
        for (let i = 0; i < payload.length; i += 1) payload[i] = payload[i]! ^ this.buffer[maskAt + (i & 3)]!;
      }
      this.buffer = this.buffer.subarray(offset + length);
      const opcode = first & 0x0f;
      if (opcode !== 0 && opcode !== 1) continue; // binary and control frames
      this.fragments.push(payload);
      if ((first & 0x80) !== 0) {
        const message = this.fragments.length === 1 ? this.fragments[0]! : Buffer.concat(this.fragments);
        this.fragments = [];
        this.onText(message);
      }
    }
  }
}
