import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError, type TRPCClient } from '@trpc/client';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { createChatClient, type AppRouter, type ChatClient, type RoomEvent } from '../clients/chat/index.ts';
import { errorOf } from './support/helpers.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { startTestApp, TEST_SECRET, type TestApp } from './support/start-test-app.ts';
import { bodies, dropConnections, firstOutOfOrder, joinLogged, waitUntil, type RecordedEvent } from './support/wait.ts';

/**
 * conversation.events over SSE (issue 13 part 3): the stock tRPC client (httpSubscriptionLink
 * with the `eventsource` package, httpBatchLink, a Bearer header) and the typed chat client on
 * `transport: 'sse'` / `'auto'`, against the real server, beside WebSocket members.
 */

/** A short EventSource `retry`, so resumes take a tenth of a second. */
const SSE = { sseRetryMs: 100, presenceGraceMs: 5000 } as const;

interface StockClient {
  trpc: TRPCClient<AppRouter>;
  /** Every EventSource the link made (one per stream, a new one when the link recreates it). */
  eventSources: EventSource[];
  /** How many times an EventSource connected (the first connect and each reconnect). */
  readonly connects: number;
}

/** The stock client exactly as the README shows it: Bearer header on every stream (re)connect and every HTTP batch. */
function stockClient(baseUrl: string, token: string | null, extra: { connectionParams?: Record<string, string> } = {}): StockClient {
  const auth: Record<string, string> = token === null ? {} : { Authorization: `Bearer ${token}` };
  const eventSources: EventSource[] = [];
  let connects = 0;
  class CountedEventSource extends EventSource {
    constructor(...args: ConstructorParameters<typeof EventSource>) {
      super(...args);
      eventSources.push(this);
    }
  }
  const trpc = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: `${baseUrl}/trpc`,
          transformer: superjson,
          EventSource: CountedEventSource,
          ...(extra.connectionParams && { connectionParams: extra.connectionParams }),
          eventSourceOptions: () => ({
            fetch: (url, init) => {
              connects += 1;
              return fetch(url, { ...init, headers: { ...init.headers, ...auth } });
            },
          }),
        }),
        false: httpBatchLink({ url: `${baseUrl}/trpc`, transformer: superjson, maxItems: 50, headers: auth }),
      }),
    ],
  });
  return {
    trpc,
    eventSources,
    get connects() {
      return connects;
    },
  };
}

interface StockRecorder {
  readonly events: RecordedEvent[];
  readonly positions: RecordedEvent[];
  readonly starts: number;
  readonly errors: unknown[];
  until(predicate: (e: RecordedEvent) => boolean, what?: string): Promise<RecordedEvent>;
  started(n?: number): Promise<void>;
  failed(): Promise<TRPCClientError<AppRouter>>;
  stop(): void;
}

/** Records one stock subscription: every data event as sent (duplicates included), `subscribed` apart. */
function recordStock(client: StockClient, input: { conversationId: string; lastEventId?: string; clientId?: string }): StockRecorder {
  const events: RecordedEvent[] = [];
  const positions: RecordedEvent[] = [];
  const errors: unknown[] = [];
  let starts = 0;
  const subscription = client.trpc.conversation.events.subscribe(input, {
    onStarted: () => (starts += 1),
    onData: ({ id, data }) => (data.type === 'subscribed' ? positions : events).push({ id, event: data }),
    onError: (error) => errors.push(error),
  });
  return {
    events,
    positions,
    errors,
    get starts() {
      return starts;
    },
    async until(predicate, what = 'an event') {
      let found: RecordedEvent | undefined;
      await waitUntil(() => (found = events.find(predicate)) !== undefined || errors.length > 0, { what: `${what} in ${input.conversationId}` });
      if (!found) throw new Error(`the stream of ${input.conversationId} failed: ${String(errors[0])}`);
      return found;
    },
    started: (n = 1) => waitUntil(() => starts >= n, { what: `the stream of ${input.conversationId} started ${n}×` }),
    async failed() {
      await waitUntil(() => errors.length > 0, { what: `the stream of ${input.conversationId} to fail` });
      expect(errors[0]).toBeInstanceOf(TRPCClientError);
      return errors[0] as TRPCClientError<AppRouter>;
    },
    stop: () => subscription.unsubscribe(),
  };
}

const isMessage = (body: string) => (e: RecordedEvent) => e.event.type === 'message' && e.event.message.body === body;

/** A join of `userId` as the server announces it: a single `user_joined` or a batched `presence_diff`. */
function announcesJoinOf(event: RoomEvent, userId: string): boolean {
  if (event.type === 'user_joined') return event.userId === userId;
  return event.type === 'presence_diff' && event.joins.some((j) => j.userId === userId);
}

/** The typed client on SSE (through startTestApp, so it is closed with the app). */
function sseClient(t: TestApp, userId: string, options: Parameters<TestApp['client']>[1] = {}): Promise<ChatClient> {
  return t.client(userId, { transport: 'sse', ...options });
}

describe('SSE with the stock tRPC client', () => {
  it('talks both ways with a WebSocket member: messages, presence, typing, own sends skipped by clientId, echo', async () => {
    await using t = await startTestApp(SSE);
    const alice = stockClient(t.baseUrl, await t.token('alice'));
    const a = recordStock(alice, { conversationId: 'mix', clientId: 'alice-tab-1' });
    await a.started();
    expect(a.positions[0]?.event).toMatchObject({ type: 'subscribed', resumed: false });

    const bob = await t.client('bob');
    const b = joinLogged(bob, 'mix');
    await b.conversation.started;
    await a.until((e) => announcesJoinOf(e.event, 'bob'), "bob's join");

    await bob.send('mix', 'from bob');
    await a.until(isMessage('from bob'));

    // Alice's send names her clientId: it goes to bob, not back to her own stream…
    const sent = await alice.trpc.message.send.mutate({ conversationId: 'mix', body: 'from alice', clientId: 'alice-tab-1' });
    await waitUntil(() => bodies(b.log).includes('from alice'), { what: 'bob to get alice’s message' });
    expect(b.log.find((e) => e.event.type === 'message' && e.event.message.body === 'from alice')?.id).toBe(sent.eventId);
    // …unless she asks for an echo.
    await alice.trpc.message.send.mutate({ conversationId: 'mix', body: 'echoed', clientId: 'alice-tab-1', echo: true });
    await a.until(isMessage('echoed'));
    // A send without her clientId (another client of alice's) reaches this stream too.
    await alice.trpc.message.send.mutate({ conversationId: 'mix', body: 'other tab' });
    await a.until(isMessage('other tab'));

    // Typing both ways.
    await alice.trpc.typing.set.mutate({ conversationId: 'mix', isTyping: true });
    await waitUntil(() => b.log.some((e) => e.event.type === 'typing' && e.event.userId === 'alice' && e.event.isTyping), { what: 'bob to see alice typing' });
    bob.setTyping('mix', true);
    await a.until((e) => e.event.type === 'typing' && e.event.userId === 'bob' && e.event.isTyping, 'bob typing');

    await bob.send('mix', 'marker');
    await a.until(isMessage('marker'));
    expect(bodies(a.events)).toEqual(['from bob', 'echoed', 'other tab', 'marker']);
    expect(firstOutOfOrder(a.events.map((e) => e.id))).toBeNull();
    expect(a.errors).toEqual([]);
    a.stop();
  });

  it('acks over HTTP and the sender over WebSocket gets the delivery report', async () => {
    await using t = await startTestApp({ ...SSE, ackTimeoutMs: 3000 });
    const alice = stockClient(t.baseUrl, await t.token('alice'));
    const a = recordStock(alice, { conversationId: 'acks', clientId: 'a1' });
    await a.started();
    const bob = await t.client('bob');
    const b = await bob.join('acks');
    await b.started;
    await a.until((e) => announcesJoinOf(e.event, 'bob'), "bob's join");

    const report = b.next('message_delivered');
    const sent = await bob.send('acks', 'please ack', { ack: true });
    expect(sent.expected).toEqual(['alice']);
    const got = await a.until(isMessage('please ack'));
    expect(got.event.type === 'message' && got.event.message.ackRequired).toBe(true);
    expect(await alice.trpc.message.ack.mutate({ conversationId: 'acks', messageId: sent.messageId })).toMatchObject({ accepted: true, duplicate: false });

    expect((await report).report).toMatchObject({ messageId: sent.messageId, status: 'delivered', expected: ['alice'], acked: ['alice'], missing: [] });
    expect(await bob.deliveryStatus(sent.messageId)).toMatchObject({ status: 'delivered', acked: ['alice'] });
    // Only the sender reads it.
    expect((await errorOf(alice.trpc.message.deliveryStatus.query({ messageId: sent.messageId }))).code).toBe('FORBIDDEN');
    a.stop();
  });

  it('resumes a dropped stream by Last-Event-ID: every message exactly once, in order', async () => {
    await using t = await startTestApp(SSE);
    const bob = await t.client('bob');
    await bob.join('room').started;
    const carol = stockClient(t.baseUrl, await t.token('carol'));
    const c = recordStock(carol, { conversationId: 'room' });
    await c.started();

    let n = 0;
    for (let round = 1; round <= 3; round += 1) {
      await bob.send('room', `m${++n}`);
      await c.until(isMessage(`m${n}`));
      // Destroys carol's response on the server; nothing ran since: these are certainly missed.
      await dropConnections(t, 'carol');
      const missed = Promise.all([1, 2, 3].map(() => t.app.broadcastMessage('room', { body: `m${++n}` })));
      expect(t.app.service.registry.userConnections('carol').size).toBe(0);
      await missed;
      await c.started(round + 1);
      await bob.send('room', `m${++n}`);
    }
    await c.until(isMessage(`m${n}`));
    expect(bodies(c.events)).toEqual(Array.from({ length: n }, (_, i) => `m${i + 1}`));
    expect(firstOutOfOrder(c.events.map((e) => e.id))).toBeNull();
    // Each resume says it is one, and its position is the last event the stream had.
    expect(c.positions.slice(1).every((p) => p.event.type === 'subscribed' && p.event.resumed)).toBe(true);
    expect(c.errors).toEqual([]);
    c.stop();
  });

  it('sends resync when the resume point is of a history the server does not have', async () => {
    await using t = await startTestApp(SSE);
    const bob = await t.client('bob');
    await bob.join('room').started;
    await bob.send('room', 'before');
    const carol = stockClient(t.baseUrl, await t.token('carol'));
    const c = recordStock(carol, { conversationId: 'room', lastEventId: 'unknownepoch:000000000007' });
    const resync = await c.until((e) => e.event.type === 'resync', 'resync');
    expect(resync.event).toMatchObject({ type: 'resync' });
    await bob.send('room', 'after');
    await c.until(isMessage('after'));
    expect(bodies(c.events)).toEqual(['after']);
    c.stop();
  });

  describe('refuses a stream with UNAUTHORIZED and does not reconnect', () => {
    it.each([
      ['no Authorization header', () => Promise.resolve(null), 'missing token'],
      ['a bad token', () => Promise.resolve('not-a-jwt'), 'invalid token'],
      ['an expired token', (t: TestApp) => t.token('mallory', { expiresIn: -60 }), ''],
    ] as const)('%s', async (_, token, message) => {
      await using t = await startTestApp(SSE);
      const mallory = stockClient(t.baseUrl, await token(t));
      const m = recordStock(mallory, { conversationId: 'room' });
      const error = await m.failed();
      expect(error.data?.code).toBe('UNAUTHORIZED');
      expect(error.message).toContain(message);
      // The link closed its EventSource: nothing will reconnect.
      expect(mallory.eventSources.map((es) => es.readyState)).toEqual([EventSource.CLOSED]);
      expect(mallory.connects).toBe(1);
      expect(m.starts).toBe(0);
      expect(t.app.service.registry.userConnections('mallory').size).toBe(0);
      // Calls over HTTP are refused the same way.
      expect((await errorOf(mallory.trpc.message.send.mutate({ conversationId: 'room', body: 'x' }))).code).toBe('UNAUTHORIZED');
    });

    it('a token in the URL (connectionParams) even when valid', async () => {
      await using t = await startTestApp(SSE);
      const mallory = stockClient(t.baseUrl, null, { connectionParams: { token: await t.token('mallory') } });
      const m = recordStock(mallory, { conversationId: 'room' });
      const error = await m.failed();
      expect(error.data?.code).toBe('UNAUTHORIZED');
      expect(error.message).toMatch(/token in the URL/);
      expect(mallory.eventSources.map((es) => es.readyState)).toEqual([EventSource.CLOSED]);
      expect(mallory.connects).toBe(1);
    });
  });
});

describe('the typed chat client on SSE', () => {
  it("behaves as over WebSocket: messages both ways, presence, typing, acks and the report, echo, other clients of the same user", async () => {
    await using t = await startTestApp({ ...SSE, ackTimeoutMs: 3000 });
    const alice = await sseClient(t, 'alice');
    expect(alice.transport).toBe('sse');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    const bob = await t.client('bob');
    expect(bob.transport).toBe('websocket');
    const b = joinLogged(bob, 'room');
    await b.conversation.started;
    await waitUntil(() => a.log.some((e) => announcesJoinOf(e.event, 'bob')), { what: "alice to see bob's join" });
    expect(b.log.some((e) => announcesJoinOf(e.event, 'alice'))).toBe(false); // alice was there first
    await waitUntil(() => a.conversation.presence.members.has('bob') && b.conversation.presence.members.has('alice'), { what: 'both presence models to list both' });
    expect((await bob.presence('room')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
    expect((await alice.presence('room')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);

    // Her stream is a connection of her client, named by its clientId.
    const streams = [...t.app.service.registry.userConnections('alice')].map((id) => t.app.service.connection(id));
    expect(streams.map((c) => c?.transport)).toEqual(['sse']);
    expect(streams[0]?.clientKey).toBeDefined();

    // Acked both ways: bob acks alice's message over WebSocket, alice bob's over HTTP (auto-ack).
    const reportToAlice = a.conversation.next('message_delivered');
    const sentByAlice = await alice.send('room', 'a1', { ack: true });
    expect(sentByAlice.expected).toEqual(['bob']);
    expect((await reportToAlice).report).toMatchObject({ messageId: sentByAlice.messageId, status: 'delivered', acked: ['bob'] });
    const reportToBob = b.conversation.next('message_delivered');
    const sentByBob = await bob.send('room', 'b1', { ack: true });
    expect((await reportToBob).report).toMatchObject({ messageId: sentByBob.messageId, status: 'delivered', acked: ['alice'] });
    expect(await bob.deliveryStatus(sentByBob.messageId)).toMatchObject({ status: 'delivered', acked: ['alice'] });
    expect(await alice.deliveryStatus(sentByAlice.messageId)).toMatchObject({ status: 'delivered', acked: ['bob'] });

    // Typing both ways.
    alice.setTyping('room', true);
    await b.conversation.next('typing', (e) => e.userId === 'alice' && e.isTyping);
    bob.setTyping('room', true);
    await a.conversation.next('typing', (e) => e.userId === 'bob' && e.isTyping);

    // Echo, and alice's other client (a second tab on SSE) gets her sends: the clientId is per client.
    const alice2 = await sseClient(t, 'alice');
    const a2 = joinLogged(alice2, 'room');
    await a2.conversation.started;
    await alice.send('room', 'a2 echoed', { echo: true });
    await alice.send('room', 'a3');
    await bob.send('room', 'marker');
    await waitUntil(() => bodies(a.log).includes('marker') && bodies(a2.log).includes('marker'), { what: 'the marker at both of alice’s clients' });
    expect(bodies(a.log)).toEqual(['b1', 'a2 echoed', 'marker']);
    expect(bodies(a2.log)).toEqual(['a2 echoed', 'a3', 'marker']);
    expect(bodies(b.log)).toEqual(['a1', 'a2 echoed', 'a3']); // the marker is bob's own

    // close() ends the client's streams (its joins complete), as over WebSocket; the other client stays.
    const ended = (async () => {
      for await (const _ of a.conversation) void _;
    })();
    await alice.close();
    await ended;
    await waitUntil(() => t.app.service.registry.userConnections('alice').size === 1, { what: "alice's first client's stream to end" });
  });

  it('takes an http(s) URL, or a ws URL with a query, and a URL function', async () => {
    await using t = await startTestApp(SSE);
    const bob = await t.client('bob');
    const b = joinLogged(bob, 'urls');
    await b.conversation.started;
    const urls = [`${t.baseUrl}/trpc`, `${t.wsUrl}?tenant=acme`, () => Promise.resolve(`${t.wsUrl}/`)];
    for (const [i, url] of urls.entries()) {
      const alice = createChatClient({ url, transport: 'sse', token: await t.token(`alice${i}`) });
      try {
        await alice.join('urls').started;
        await alice.send('urls', `via url ${i}`);
        expect((await alice.presence('urls')).map((m) => m.userId)).toContain(`alice${i}`);
      } finally {
        await alice.close();
      }
    }
    await waitUntil(() => bodies(b.log).length === 3, { what: 'the three messages' });
    expect(bodies(b.log)).toEqual(['via url 0', 'via url 1', 'via url 2']);
  });

  it('resumes after dropped streams: every message exactly once, none of its own', async () => {
    await using t = await startTestApp(SSE);
    const alice = await t.client('alice');
    await alice.join('room').started;
    const bob = await sseClient(t, 'bob');
    const chat = joinLogged(bob, 'room');
    await chat.conversation.started;
    let starts = 1;
    chat.conversation.on('subscribed', () => (starts += 1));

    let n = 0;
    const expected: string[] = [];
    const aliceSends = async (count: number) => {
      for (let i = 0; i < count; i += 1) {
        const body = `m${++n}`;
        expected.push(body);
        await alice.send('room', body);
      }
    };
    await aliceSends(2);
    for (let round = 1; round <= 3; round += 1) {
      await waitUntil(() => bodies(chat.log).at(-1) === `m${n}`, { what: `m${n}` });
      await dropConnections(t, 'bob');
      // While bob's stream is down: server-side sends, and one of bob's own (over HTTP).
      const missed = Promise.all([1, 2, 3].map(() => t.app.broadcastMessage('room', { body: `m${++n}` })));
      expected.push(`m${n - 2}`, `m${n - 1}`, `m${n}`);
      expect(t.app.service.registry.userConnections('bob').size).toBe(0);
      await missed;
      await bob.send('room', `own${round}`);
      await waitUntil(() => starts === round + 1, { what: `bob's stream to resume (${round})` });
      await aliceSends(2);
    }
    await waitUntil(() => bodies(chat.log).at(-1) === `m${n}`, { what: 'the last message' });
    expect(bodies(chat.log)).toEqual(expected);
    expect(firstOutOfOrder(chat.log.map((e) => e.id))).toBeNull();
  });

  it('reconnects with a fresh token from the token function when the server ends a stream at its expiry', async () => {
    await using t = await startTestApp(SSE);
    const tokens: string[] = [];
    const bob = await sseClient(t, 'bob', {
      token: async () => {
        // The first token lives one second; every later one an hour.
        const token = await t.token('bob', { expiresIn: tokens.length === 0 ? 1 : 3600 });
        tokens.push(token);
        return token;
      },
    });
    const chat = joinLogged(bob, 'room');
    let starts = 0;
    chat.conversation.on('subscribed', () => (starts += 1));
    await chat.conversation.started;
    // The sweep ends the stream at the first token's expiry; the EventSource comes back with a new one.
    await waitUntil(() => starts === 2, { timeoutMs: 5000, what: 'the stream to come back after the token expired' });
    expect(tokens.length).toBeGreaterThanOrEqual(2);
    const alice = await t.client('alice');
    await alice.send('room', 'still here');
    await waitUntil(() => bodies(chat.log).includes('still here'), { what: 'a message on the renewed stream' });
  });

  it('hands resync to the application when resuming from an unknown history', async () => {
    await using t = await startTestApp(SSE);
    const bob = await sseClient(t, 'bob');
    const chat = joinLogged(bob, 'room', { lastEventId: 'unknownepoch:000000000009' });
    await chat.conversation.next('resync');
    const alice = await t.client('alice');
    await alice.send('room', 'after');
    await waitUntil(() => bodies(chat.log).includes('after'), { what: 'the message after the resync' });
    expect(chat.log.map((e) => e.event.type)).toEqual(['resync', 'message']);
  });

  it.each([
    ['a bad token', () => Promise.resolve('not-a-jwt')],
    ['an expired token', (t: TestApp) => t.token('mallory', { expiresIn: -60 })],
  ] as const)('stops for good on %s: onTerminalError once, the join fails, calls fail, no reconnect', async (_, token) => {
    await using t = await startTestApp(SSE);
    const terminal: TRPCClientError<AppRouter>[] = [];
    const joinErrors: unknown[] = [];
    const mallory = createChatClient({ url: t.wsUrl, transport: 'sse', token: await token(t), onTerminalError: (e) => terminal.push(e) });
    mallory.join('room', { onError: (e) => joinErrors.push(e) });
    await waitUntil(() => terminal.length === 1 && joinErrors.length === 1, { what: 'the refusal' });
    expect(terminal[0]?.data?.code).toBe('UNAUTHORIZED');
    expect((joinErrors[0] as TRPCClientError<AppRouter>).data?.code).toBe('UNAUTHORIZED');
    // The client is closed: a call fails with the refusal without going out.
    await expect(mallory.send('room', 'x')).rejects.toBe(terminal[0]);
    expect(t.app.service.registry.userConnections('mallory').size).toBe(0);
    expect(terminal).toHaveLength(1);
  });

  it('sends a burst of 120 in one tick (batches of at most 50), and splits large ones by bytes', async () => {
    // A small MAX_FRAME_BYTES: 40 sends of 2 KB would be one body of ~100 KB, refused whole.
    await using t = await startTestApp({ ...SSE, maxFrameBytes: 32 * 1024, messageRateBurst: 1000 });
    const alice = await sseClient(t, 'alice');
    const alice2 = await sseClient(t, 'alice', { maxFrameBytes: 16 * 1024 });
    const bob = await t.client('bob');
    const b = joinLogged(bob, 'burst');
    await b.conversation.started;

    // 120 small ones fit one body: the batch link's maxItems splits them (the server refuses a batch over 50 whole).
    const small = await Promise.all(Array.from({ length: 120 }, (_, i) => alice.send('burst', `s${i}`)));
    expect(new Set(small.map((r) => r.eventId)).size).toBe(120);
    const large = await Promise.all(Array.from({ length: 40 }, (_, i) => alice2.send('burst', `l${i}:${'x'.repeat(2000)}`)));
    expect(large).toHaveLength(40);
    await waitUntil(() => bodies(b.log).length === 160, { what: 'bob to get all 160' });
    // Concurrent HTTP requests (and the calls of one batch) are not ordered among themselves.
    const byNumber = (xs: string[]) => [...xs].sort((x, y) => Number(x.slice(1)) - Number(y.slice(1)));
    expect(byNumber(bodies(b.log).filter((body) => body.startsWith('s')))).toEqual(Array.from({ length: 120 }, (_, i) => `s${i}`));
    expect(byNumber(bodies(b.log).filter((body) => body.startsWith('l')).map((body) => body.slice(0, body.indexOf(':'))))).toEqual(Array.from({ length: 40 }, (_, i) => `l${i}`));
  });
});

/** A front that forwards HTTP (SSE streams included) to the app and refuses or ignores WebSocket upgrades. */
async function startFront(target: string, upgrades: 'refuse' | 'ignore'): Promise<{ wsUrl: string; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const held = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const upstream = request({ host: hostname, port, method: req.method, path: req.url, headers: req.headers }, (answer: IncomingMessage) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (_req, socket: Socket) => {
    if (upgrades === 'refuse') socket.end('HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    else held.add(socket); // a proxy that swallows the upgrade: the socket never opens
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as AddressInfo;
  return {
    wsUrl: `ws://127.0.0.1:${address.port}/trpc`,
    close: async () => {
      for (const socket of held) socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe("the typed chat client on 'auto'", () => {
  it.each([
    ['refuses WebSocket upgrades', 'refuse'],
    ['never answers WebSocket upgrades', 'ignore'],
  ] as const)('falls back to SSE behind a front that %s, and still delivers both ways', async (_, upgrades) => {
    await using t = await startTestApp(SSE);
    const front = await startFront(t.baseUrl, upgrades);
    const alice = createChatClient({ url: front.wsUrl, transport: 'auto', autoFallbackMs: 500, token: await t.token('alice') });
    try {
      expect(alice.transport).toBeUndefined();
      // Usable at once: calls wait for the choice.
      const early = alice.trpc.conversation.presence.query({ conversationId: 'room' });
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      expect(alice.transport).toBe('sse');
      expect((await early).members.every((m) => m.userId === 'alice')).toBe(true); // before or after her join

      const bob = await t.client('bob');
      const b = joinLogged(bob, 'room');
      await b.conversation.started;
      await waitUntil(() => a.log.some((e) => announcesJoinOf(e.event, 'bob')), { what: "alice to see bob's join" });
      await alice.send('room', 'from alice');
      await bob.send('room', 'from bob');
      await waitUntil(() => bodies(a.log).includes('from bob') && bodies(b.log).includes('from alice'), { what: 'both messages' });
      expect(bodies(a.log)).toEqual(['from bob']);
      expect(bodies(b.log)).toEqual(['from alice']);
    } finally {
      await alice.close();
      await front.close();
    }
  });

  it('keeps to the WebSocket while the server is unreachable (a restart), and uses it once the server is up', async () => {
    // A port that was just free: nothing listens there until the server starts on it.
    const reserved = createServer();
    await new Promise<void>((resolve) => reserved.listen(0, '127.0.0.1', resolve));
    const { port } = reserved.address() as AddressInfo;
    await new Promise((resolve) => reserved.close(resolve));
    const alice = createChatClient({
      url: `ws://127.0.0.1:${port}/trpc`,
      transport: 'auto',
      autoFallbackMs: 50,
      retryDelayMs: () => 50,
      token: await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'] }),
    });
    try {
      const refusals: string[] = [];
      alice.onState((s) => void (s.error && refusals.push(s.error.message)));
      // Three refused sockets take at least two retry delays: past autoFallbackMs as well.
      await waitUntil(() => refusals.length >= 3 || alice.transport !== undefined, { what: 'three refused WebSockets' });
      expect(alice.transport).toBeUndefined(); // still undecided: not SSE for an unreachable server
      expect(refusals.every((message) => /ECONNREFUSED/.test(message))).toBe(true);
      expect(alice.state).toMatchObject({ status: 'connecting', transport: undefined });

      await using t = await startTestApp(SSE, { port });
      await waitUntil(() => alice.state.status === 'connected', { what: 'alice to connect' });
      expect(alice.state).toEqual({ status: 'connected', transport: 'websocket', error: null });
      expect(alice.transport).toBe('websocket');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const bob = await t.client('bob');
      const b = joinLogged(bob, 'room');
      await b.conversation.started;
      await alice.send('room', 'from alice');
      await bob.send('room', 'from bob');
      await waitUntil(() => bodies(a.log).includes('from bob') && bodies(b.log).includes('from alice'), { what: 'both messages' });
      const streams = [...t.app.service.registry.userConnections('alice')].map((id) => t.app.service.connection(id)?.transport);
      expect(streams).toEqual(['websocket']);
      await alice.close(); // before the server goes
    } finally {
      await alice.close();
    }
  });

  it('uses the WebSocket when it opens', async () => {
    await using t = await startTestApp(SSE);
    const alice = await t.client('alice', { transport: 'auto' });
    const room = alice.join('room');
    await room.started;
    expect(alice.transport).toBe('websocket');
    const streams = [...t.app.service.registry.userConnections('alice')].map((id) => t.app.service.connection(id)?.transport);
    expect(streams).toEqual(['websocket']);
  });

  it("answers auto's HTTP probe (HEAD /trpc) 204, and 503 while the server itself refuses upgrades — draining, or at MAX_UNAUTHENTICATED_SOCKETS — so a client does not settle on SSE for that", async () => {
    const probe = async (t: TestApp) => (await fetch(`${t.baseUrl}/trpc`, { method: 'HEAD' })).status;

    await using capped = await startTestApp({ ...SSE, maxUnauthenticatedSockets: 1 });
    expect(await probe(capped)).toBe(204);
    // One socket that never sends its connectionParams fills the cap.
    const { WebSocket } = await import('ws');
    const silent = new WebSocket(`${capped.wsUrl}?connectionParams=1`);
    await new Promise((resolve, reject) => silent.once('open', resolve).once('error', reject));
    try {
      expect(await probe(capped)).toBe(503);
    } finally {
      silent.close();
    }
    await expect.poll(() => probe(capped)).toBe(204);

    // Draining (a connected member keeps the drain going, as in shutdown.test.ts).
    const draining = await startTestApp({ ...SSE, shutdownDrainMs: 1000 });
    const member = await draining.client('alice', { retryDelayMs: () => 60_000 });
    await member.join('room').started;
    expect(await probe(draining)).toBe(204);
    const closed = draining.app.close();
    expect(await probe(draining)).toBe(503);
    await closed;
    await draining.close();
  });
});
