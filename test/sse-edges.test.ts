import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../src/domain/types.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';
import { eventsUrl, openRawSse, sseErrorOf, stockSseClient, type RawSse } from './support/raw-sse.ts';
import { waitUntil } from './support/wait.ts';

/**
 * The SSE transport's own rules, on the wire and with the stock httpSubscriptionLink: the
 * protocol tRPC's link reads, authentication by header only, keep-alive, the longest life of a
 * stream, token expiry, slow consumers, per-user limits, the drain, and that a stream leaves
 * nothing behind. (Messages, presence, acks and resume on both transports: sse.test.ts.)
 */

const bearer = async (t: TestApp, userId: string, options: Parameters<TestApp['token']>[1] = {}) => ({ authorization: `Bearer ${await t.token(userId, options)}` });
const sseCount = (t: TestApp) => t.app.service.figures.connectionsByTransport().sse;
const dataOf = (e: { data: string }) => superjson.deserialize<RoomEvent>(JSON.parse(e.data) as never);

describe('SSE transport', () => {
  it("speaks tRPC's SSE protocol: retry and connected first, tracked events with their ids, pings when quiet", async () => {
    await using t = await startTestApp({ ssePingMs: 1000, sseRetryMs: 750 });
    const sse = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'proto' }), await bearer(t, 'alice'));
    expect(sse.status).toBe(200);
    expect(sse.headers['content-type']).toBe('text/event-stream');
    expect(sse.headers['cache-control']).toContain('no-cache');
    const connected = await sse.next((e) => e.event === 'connected');
    expect(connected.retry).toBe(750);
    expect(JSON.parse(connected.data)).toEqual({ reconnectAfterInactivityMs: 3000 });
    const subscribed = await sse.next((e) => e.event === 'message');
    expect(sse.events.indexOf(connected)).toBeLessThan(sse.events.indexOf(subscribed));
    expect(dataOf(subscribed)).toMatchObject({ type: 'subscribed', resumed: false, memberCount: 1 });
    expect(subscribed.id).toMatch(/^[0-9a-z]+:\d+$/);

    const bob = await t.client('bob');
    await bob.join('proto').started;
    const { eventId } = await bob.send('proto', 'hello over SSE');
    const message = await sse.next((e) => e.id === eventId);
    expect(dataOf(message)).toMatchObject({ type: 'message', message: { body: 'hello over SSE', senderId: 'bob' } });

    await sse.next((e) => e.event === 'ping', 4000);
    sse.close();
  });

  it('refuses a token in the URL, a missing or bad token, bad input and a forbidden room with one serialized-error, opening nothing', async () => {
    await using t = await startTestApp();
    const token = await t.token('alice', { conversations: ['mine'] });
    const cases: Array<{ url: string; headers?: Record<string, string>; code: string; says: RegExp }> = [
      { url: eventsUrl(t.baseUrl, { conversationId: 'mine' }, `&connectionParams=${encodeURIComponent(JSON.stringify({ token }))}`), code: 'UNAUTHORIZED', says: /Authorization: Bearer/ },
      { url: eventsUrl(t.baseUrl, { conversationId: 'mine' }), code: 'UNAUTHORIZED', says: /missing token/ },
      { url: eventsUrl(t.baseUrl, { conversationId: 'mine' }), headers: { authorization: 'Bearer nonsense' }, code: 'UNAUTHORIZED', says: /invalid token/ },
      { url: eventsUrl(t.baseUrl, { conversationId: 'no spaces allowed' }), headers: { authorization: `Bearer ${token}` }, code: 'BAD_REQUEST', says: /conversationId/ },
      { url: eventsUrl(t.baseUrl, { conversationId: 'theirs' }), headers: { authorization: `Bearer ${token}` }, code: 'FORBIDDEN', says: /not allowed in conversation theirs/ },
      { url: `${t.baseUrl}/trpc/conversation.events?input=%7Bnot-json`, headers: { authorization: `Bearer ${token}` }, code: 'PARSE_ERROR', says: /not JSON/ },
    ];
    for (const c of cases) {
      const sse = await openRawSse(c.url, c.headers);
      expect(await sse.ended).toBe('end');
      expect(sse.events.map((e) => e.event)).toEqual(['serialized-error']);
      const error = sseErrorOf(sse.events[0]!);
      expect(error.code, c.url).toBe(c.code);
      expect(error.message).toMatch(c.says);
      // A plain EventSource would reconnect at once: it is asked to wait.
      expect(sse.events[0]!.retry).toBeGreaterThanOrEqual(1000);
    }
    expect(t.app.service.figures.counts().connections).toBe(0);
    expect(t.app.service.figures.counts().rooms).toBe(0);
  });

  it('the stock client gets the refusal as its error and does not reconnect', async () => {
    await using t = await startTestApp();
    const client = await stockSseClient(t.baseUrl, 'not-a-token');
    let attempts = 0;
    t.app.httpServer.on('request', (req) => {
      if (req.url?.startsWith('/trpc/conversation.events')) attempts += 1;
    });
    const error = await new Promise<{ code: string | undefined; message: string }>((resolve) => {
      client.conversation.events.subscribe({ conversationId: 'room' }, { onError: (e) => resolve({ code: e.data?.code, message: e.message }) });
    });
    expect(error).toEqual({ code: 'UNAUTHORIZED', message: 'invalid token' });
    // Longer than SSE's default reconnect delay (3 s is the EventSource default, ours 1 s).
    await new Promise((r) => setTimeout(r, 1500));
    expect(attempts).toBe(1);
  });

  it('ends a stream at SSE_MAX_DURATION_MS; the stock client resumes without a gap, a duplicate or a presence flicker', async () => {
    await using t = await startTestApp({ sseMaxDurationMs: 400, sseRetryMs: 100, presenceGraceMs: 5000 });
    const alice = await stockSseClient(t.baseUrl, await t.token('alice'));
    const received: string[] = [];
    let starts = 0;
    t.app.httpServer.on('request', (req) => {
      if (req.url?.startsWith('/trpc/conversation.events')) starts += 1;
    });
    const sub = alice.conversation.events.subscribe(
      { conversationId: 'long' },
      {
        onData: ({ data }) => {
          if (data.type === 'message') received.push(data.message.body);
          if (data.type === 'resync') received.push('RESYNC');
        },
      },
    );
    const bob = await t.client('bob');
    const room = bob.join('long');
    const seenByBob: string[] = [];
    room.on('user_left', (e) => seenByBob.push(`left ${e.userId}`));
    room.on('user_disconnected', (e) => seenByBob.push(`disconnected ${e.userId}`));
    await room.started;
    await waitUntil(() => starts >= 1, { what: 'the SSE stream to start' });
    const sent: string[] = [];
    // Sends across at least three stream lifetimes.
    for (let i = 0; i < 30; i += 1) {
      sent.push(`m${i}`);
      await bob.send('long', `m${i}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await waitUntil(() => received.length >= sent.length, { timeoutMs: 10_000, what: 'every message over the rotating stream' });
    expect(received).toEqual(sent);
    expect(starts).toBeGreaterThanOrEqual(3);
    expect(seenByBob).toEqual([]);
    sub.unsubscribe();
  });

  it('ends a stream when its token expires; a reconnect with the same token is refused, a fresh token goes on', async () => {
    await using t = await startTestApp({ sseRetryMs: 100 });
    // JWT expiry counts whole seconds: `expiresIn: 1` can leave a token a few milliseconds to live, so 2 (1–2 s).
    const short = await t.token('alice', { expiresIn: 2 });
    const raw = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'exp' }), { authorization: `Bearer ${short}` });
    await raw.next((e) => e.event === 'connected');
    // Ended without `return`: a client reconnects (and must authenticate again).
    expect(await raw.ended).toBe('end');
    expect(raw.events.some((e) => e.event === 'return')).toBe(false);
    const again = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'exp' }), { authorization: `Bearer ${short}` });
    await again.ended;
    expect(sseErrorOf(again.events[0]!)).toEqual({ code: 'UNAUTHORIZED', message: 'token expired' });

    // The stock client with a token source: the first reconnect after expiry gets a fresh one.
    let current = await t.token('bob', { expiresIn: 2 });
    const fresh = await t.token('bob', { expiresIn: 3600 });
    const client = await stockSseClient(t.baseUrl, () => current);
    let starts = 0;
    const errors: string[] = [];
    const sub = client.conversation.events.subscribe({ conversationId: 'exp' }, { onStarted: () => (starts += 1), onError: (e) => errors.push(e.data?.code ?? e.message) });
    await waitUntil(() => starts === 1, { what: 'the first start' });
    current = fresh;
    await waitUntil(() => starts === 2, { timeoutMs: 5000, what: 'a start with the fresh token after expiry' });
    expect(errors).toEqual([]);
    sub.unsubscribe();
  });

  it('resets a slow SSE consumer; it resumes from Last-Event-ID with everything it missed', async () => {
    await using t = await startTestApp({ maxBufferedBytes: 8 * 1024, sseRetryMs: 100, messageRatePerSec: 100_000, messageRateBurst: 100_000, maxMessageBytes: 128 * 1024 });
    const headers = await bearer(t, 'slow');
    const sse = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'slow' }), headers);
    await sse.next((e) => e.event === 'message');
    sse.response.socket.pause();
    const bob = await t.client('bob');
    await bob.join('slow').started;
    const body = 'x'.repeat(64 * 1024);
    const ids: string[] = [];
    // Enough to fill the kernel's buffers (megabytes on loopback) and then MAX_BUFFERED_BYTES.
    for (let i = 0; i < 240 && t.app.service.stats.slowConsumerCloses === 0; i += 1) ids.push((await bob.send('slow', `${i} ${body}`)).eventId);
    expect(t.app.service.stats.slowConsumerCloses).toBe(1);
    await waitUntil(() => sseCount(t) === 0, { what: 'the slow stream to be gone' });
    sse.close();

    const lastSeen = sse.events.filter((e) => e.event === 'message').at(-1)!.id!;
    const resumed = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'slow' }), { ...headers, 'last-event-id': lastSeen });
    const lastId = ids.at(-1)!;
    await resumed.next((e) => e.id === lastId);
    const replayed = resumed.events.filter((e) => e.event === 'message').map(dataOf);
    expect(replayed[0]).toMatchObject({ type: 'subscribed', resumed: true });
    const bodies = replayed.filter((e) => e.type === 'message').map((e) => (e.type === 'message' ? Number(e.message.body.split(' ')[0]) : -1));
    const firstMissing = bodies[0]!;
    expect(bodies).toEqual(Array.from({ length: ids.length - firstMissing }, (_, i) => firstMissing + i));
    resumed.close();
  });

  it("outlives the HTTP server's request, headers and keep-alive timeouts (they are for requests, not responses)", async () => {
    await using t = await startTestApp({ httpHeadersTimeoutMs: 1000, httpRequestTimeoutMs: 1000, httpKeepAliveTimeoutMs: 100, ssePingMs: 1000 });
    const sse = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'long-lived' }), await bearer(t, 'alice'));
    await sse.next((e) => e.event === 'connected');
    let ended = false;
    void sse.ended.then(() => (ended = true));
    // Past every timeout twice over, kept alive by pings only.
    await sse.next((e) => e.event === 'ping', 4000);
    await new Promise((r) => setTimeout(r, 1200));
    expect(ended).toBe(false);
    const bob = await t.client('bob');
    await bob.join('long-lived').started;
    const { eventId } = await bob.send('long-lived', 'still here');
    await sse.next((e) => e.id === eventId);
    sse.close();
  });

  it('counts each stream as a connection for the per-user limit', async () => {
    await using t = await startTestApp({ maxConnectionsPerUser: 2 });
    const headers = await bearer(t, 'many');
    const open: RawSse[] = [];
    for (const room of ['a', 'b']) {
      const sse = await openRawSse(eventsUrl(t.baseUrl, { conversationId: room }), headers);
      await sse.next((e) => e.event === 'connected');
      open.push(sse);
    }
    const third = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'c' }), headers);
    await third.ended;
    expect(sseErrorOf(third.events[0]!)).toMatchObject({ code: 'TOO_MANY_REQUESTS', message: expect.stringMatching(/too many connections/) });
    for (const sse of open) sse.close();
  });

  it('the drain ends every stream with a retryable error, so clients move and resume', async () => {
    const t = await startTestApp({ shutdownDrainMs: 400 });
    const sse = await openRawSse(eventsUrl(t.baseUrl, { conversationId: 'drain' }), await bearer(t, 'alice'));
    await sse.next((e) => e.event === 'connected');
    const closing = t.close();
    expect(await sse.ended).toBe('end');
    const last = sse.events.at(-1)!;
    expect(last.event).toBe('serialized-error');
    // SERVICE_UNAVAILABLE: tRPC's link keeps the subscription and reconnects.
    expect(sseErrorOf(last)).toMatchObject({ code: 'SERVICE_UNAVAILABLE', message: expect.stringMatching(/shutting down/) });
    await closing;
  });

  it('leaves nothing behind when streams come and go', async () => {
    await using t = await startTestApp();
    const before = t.app.service.internals();
    const headers = await bearer(t, 'churn');
    for (let round = 0; round < 5; round += 1) {
      const streams = await Promise.all(Array.from({ length: 4 }, (_, i) => openRawSse(eventsUrl(t.baseUrl, { conversationId: `churn-${i}` }), headers)));
      await Promise.all(streams.map((s) => s.next((e) => e.event === 'message')));
      expect(sseCount(t)).toBe(4);
      for (const s of streams) s.close();
      await waitUntil(() => sseCount(t) === 0, { what: 'every stream to be gone' });
    }
    await waitUntil(() => t.app.service.internals().registryListeners === before.registryListeners && t.app.service.figures.counts().connections === 0, { what: 'the service back to its start' });
    expect(t.app.service.internals()).toMatchObject({ connections: 0, 'registry.connections': 0, 'registry.rooms': 0, subscribedRooms: 0, subscriptionCounts: 0 });
  });
});
