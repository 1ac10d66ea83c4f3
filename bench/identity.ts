/**
 * The identity check: stock `@trpc/client` clients (clients/chat `createChatClient`) and the
 * bench's raw-frame clients, subscribed to the same room, must see exactly the same events —
 * same tracked ids, same event objects (bodies, senders, dates, ack flags) in the same order —
 * for one run of mixed traffic: messages with awkward bodies, benchmark bodies, an acknowledged
 * message, typing on and off, a late joiner, a system event. It is what makes the raw client's
 * numbers stand for what real clients get.
 */
import superjson from 'superjson';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import type { ReceiverState, Sink } from './clients/common.ts';
import { TrpcRawClient, type RecordedEvent } from './clients/trpc.ts';
import { makeBody } from './lib/body.ts';

export interface IdentityResult {
  ok: boolean;
  clients: number;
  events: number;
  mismatches: string[];
}

export interface IdentityOptions {
  /** ws://host:port/trpc */
  url: string;
  secret: string;
  raw: number;
  stock: number;
  messages: number;
  room?: string;
  timeoutMs?: number;
}

const SYNC = 'identity-check: start';
const END = 'identity-check: end';

class QuietSink implements Sink {
  readonly ackMode = false;
  readonly problems: string[] = [];
  deliver(_receiver: ReceiverState, _fields: unknown): void {}
  frame(): void {}
  errorFrame(detail: string): void {
    this.problems.push(detail);
  }
  unexpectedClose(detail: string): void {
    this.problems.push(detail);
  }
  sampleStructure(): boolean {
    return false;
  }
  structure(): void {}
}

export async function checkStockIdentity(options: IdentityOptions): Promise<IdentityResult> {
  const room = options.room ?? `identity-${Date.now()}`;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const sink = new QuietSink();
  const token = (userId: string) => mintToken(options.secret, { userId, name: userId.toUpperCase(), conversations: ['*'], expiresIn: '12h' });
  const raws: TrpcRawClient[] = [];
  const stocks: Array<{ client: ChatClient; log: RecordedEvent[] }> = [];
  let sender: TrpcRawClient | null = null;
  let late: ChatClient | null = null;
  try {
    for (let i = 0; i < options.raw; i += 1) {
      const c = new TrpcRawClient({ url: options.url, token: await token(`raw${i}`) }, { i, user: `raw${i}`, room }, sink, { record: true, autoAck: true });
      await c.open();
      raws.push(c);
    }
    for (let i = 0; i < options.stock; i += 1) {
      const client = createChatClient({ url: options.url, token: await token(`stock${i}`) });
      const log: RecordedEvent[] = [];
      const conversation = client.join(room, { onEvent: (event, id) => log.push({ id, event }) });
      stocks.push({ client, log });
      await conversation.started;
    }
    sender = new TrpcRawClient({ url: options.url, token: await token('sender') }, { i: 9999, user: 'sender', room, sender: { index: 0, rooms: [room] } }, sink, { record: true });
    await sender.open();

    const logs = (): RecordedEvent[][] => [...raws.map((r) => r.events), ...stocks.map((s) => s.log)];
    const isBody = (e: RecordedEvent, body: string) => (e.event as { type?: string; message?: { body?: string } }).type === 'message' && (e.event as { message: { body: string } }).message.body === body;
    const waitAll = async (body: string) => {
      const deadline = Date.now() + timeoutMs;
      while (!logs().every((l) => l.some((e) => isBody(e, body)))) {
        if (Date.now() > deadline) throw new Error(`not every client received "${body}" within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    const send = async (body: string, ack = false) => {
      const outcome = await sender!.call('mutation', 'message.send', { conversationId: room, body, ...(ack && { ack: true }) });
      if (outcome.error) throw new Error(`send failed: ${JSON.stringify(outcome.error)}`);
    };

    await send(SYNC);
    await waitAll(SYNC);
    const awkward = ['plain', 'héllo ✓ 𝄞 日本語', '"quoted" \\ back\\slash\nnew line\ttab', '</script><b>not html</b>', ' leading and trailing ', '{"looks":"like json"}'];
    for (let i = 0; i < options.messages; i += 1) {
      const body = i % 3 === 0 ? makeBody({ sender: 0, seq: i + 1, sentNs: i * 1000, phase: 0 }) : `${awkward[i % awkward.length]} #${i}`;
      await send(body, i === Math.floor(options.messages / 2));
      if (i === 5) {
        await sender.call('mutation', 'typing.set', { conversationId: room, isTyping: true });
        await sender.call('mutation', 'typing.set', { conversationId: room, isTyping: false });
      }
      if (i === 10) {
        late = createChatClient({ url: options.url, token: await token('latecomer') });
        await late.join(room).started;
      }
    }
    await send(END);
    await waitAll(END);

    const cut = (log: RecordedEvent[]) => {
      const from = log.findIndex((e) => isBody(e, SYNC));
      const to = log.findIndex((e) => isBody(e, END));
      return log.slice(from, to + 1).map((e) => superjson.stringify({ id: e.id, event: e.event }));
    };
    const all = logs().map(cut);
    const reference = all[0]!;
    const mismatches: string[] = [];
    all.forEach((log, k) => {
      const who = k < raws.length ? `raw client ${k}` : `stock client ${k - raws.length}`;
      if (log.length !== reference.length) mismatches.push(`${who}: ${log.length} events, raw client 0: ${reference.length}`);
      const n = Math.min(log.length, reference.length);
      for (let j = 0; j < n; j += 1) {
        if (log[j] !== reference[j]) {
          mismatches.push(`${who}, event ${j}: ${log[j]!.slice(0, 160)} ≠ ${reference[j]!.slice(0, 160)}`);
          break;
        }
      }
    });
    const types = new Set(reference.map((e) => (JSON.parse(e) as { json: { event: { type: string } } }).json.event.type));
    for (const required of ['message', 'typing']) {
      if (!types.has(required)) mismatches.push(`the compared stream has no ${required} event`);
    }
    // The latecomer's join: a single user_joined, or part of a presence_diff when it falls in a
    // batching window opened by an earlier presence change (PRESENCE_BATCH_MS).
    if (!types.has('user_joined') && !types.has('presence_diff')) mismatches.push('the compared stream has no presence event (user_joined or presence_diff)');
    mismatches.push(...sink.problems.map((p) => `raw client: ${p}`));
    return { ok: mismatches.length === 0, clients: all.length, events: reference.length, mismatches };
  } finally {
    for (const r of raws) r.close();
    sender?.close();
    await Promise.allSettled([...stocks.map((s) => s.client.close()), late?.close()]);
  }
}
