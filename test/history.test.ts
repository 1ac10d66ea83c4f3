import { createTRPCClient, createWSClient, httpBatchLink, wsLink, type TRPCClient } from '@trpc/client';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { HistoryPage } from '../clients/chat/index.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import { formatEventId } from '../src/history/event-id.ts';
import type { RealtimeServerOptions } from '../src/server.ts';
import type { AppRouter } from '../src/transport/router.ts';
import { errorOf, joined, trpcHttp } from './support/helpers.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';
import { bodies, recordRaw, syncMarker, waitUntil, type RecordedEvent } from './support/wait.ts';

/**
 * Scrollback, `conversation.history` (issue 13): the room's stored events newest first, paged by
 * event id, from the very history resume uses — over the stock wsLink, the stock httpBatchLink
 * and the typed client, against the real server.
 */
describe('conversation.history (scrollback)', () => {
  /** The app with a broker of our own, so the test can look at its history (a seam, not a mock). */
  async function start(options: RealtimeServerOptions = {}): Promise<TestApp & { broker: MemoryBroker }> {
    const broker = new MemoryBroker({ historySize: options.historySize ?? 256, historyTtlMs: options.historyTtlMs ?? 300_000 });
    const t = await startTestApp({ broker, messageRateBurst: 1000, ...options });
    return Object.assign(t, { broker });
  }

  /** Server-side sends, one after the other (so their order is the room's). */
  async function publish(t: TestApp, room: string, names: string[]): Promise<void> {
    for (const body of names) await t.app.broadcastMessage(room, { body });
  }
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);
  const asRecorded = (page: HistoryPage): RecordedEvent[] => page.events.map(({ id, event }) => ({ id, event }));

  /** Every page from the newest to the oldest, through `read`. */
  async function pageAll(read: (before: string | undefined) => Promise<HistoryPage>): Promise<HistoryPage[]> {
    const pages: HistoryPage[] = [];
    let before: string | undefined;
    for (;;) {
      const page = await read(before);
      pages.push(page);
      if (page.nextBefore === null) return pages;
      expect(page.nextBefore).toBe(page.events.at(-1)?.id);
      before = page.nextBefore;
      if (pages.length > 100) throw new Error('paging did not end');
    }
  }

  function stockWs(t: TestApp, token: string): { trpc: TRPCClient<AppRouter>; close: () => Promise<void> } {
    const wsClient = createWSClient({ url: t.wsUrl, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, connectionParams: () => ({ token }) });
    return { trpc: createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] }), close: () => wsClient.close() };
  }

  function stockHttp(t: TestApp, token: string): TRPCClient<AppRouter> {
    return createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${t.baseUrl}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } })] });
  }

  it('pages newest first to exhaustion, with the very ids and events subscribers received (typed client)', async () => {
    await using t = await start();
    const watcher = await t.client('watcher');
    const live = recordRaw(watcher, 'room');
    await live.started();
    const alice = await t.client('alice');
    const aliceRoom = await joined(alice, 'room');
    for (const body of range(1, 6)) await alice.send('room', body);
    await publish(t, 'room', range(7, 12));
    await t.app.broadcastSystemEvent('room', 'deploy', { version: 2 });
    await live.until((e) => e.event.type === 'system');

    // bob never joins: reading needs access, not presence.
    const bob = await t.client('bob');
    const pages = await pageAll((before) => bob.history('room', { limit: 5, ...(before !== undefined && { before }) }));
    const newestFirst = pages.flatMap(asRecorded);
    const oldestFirst = [...newestFirst].reverse();
    for (let i = 1; i < oldestFirst.length; i += 1) expect(oldestFirst[i - 1]!.id < oldestFirst[i]!.id).toBe(true);
    expect(pages.slice(0, -1).every((p) => p.events.length === 5)).toBe(true);
    expect(pages.at(-1)!.events.length).toBeGreaterThan(0);

    // From alice's first message on, the history is exactly what the watcher's stream carried.
    const fromFirstMessage = (list: RecordedEvent[]) => list.slice(list.findIndex((e) => e.event.type === 'message'));
    expect(fromFirstMessage(oldestFirst)).toEqual(fromFirstMessage(live.events));
    expect(bodies(oldestFirst)).toEqual(range(1, 12));
    expect(oldestFirst.at(-1)!.event).toMatchObject({ type: 'system', event: 'deploy', data: { version: 2 } });
    // Dates come back as Dates (superjson), as on the live stream.
    const first = oldestFirst.find((e) => e.event.type === 'message')!.event;
    expect(first.type === 'message' && first.message.sentAt).toBeInstanceOf(Date);

    // Conversation.history is the same call, and needs no join either.
    const viaRoom = await aliceRoom.history({ limit: 3 });
    expect(viaRoom.events).toEqual(newestFirst.slice(0, 3));
  });

  it('bounds limit (1–100, default 50) and refuses bad input with BAD_REQUEST naming the field, changing nothing', async () => {
    await using t = await start();
    await publish(t, 'room', range(1, 120));
    const bob = await t.client('bob');
    expect((await bob.history('room')).events).toHaveLength(50);
    expect(bodies(asRecorded(await bob.history('room'))).slice(0, 2)).toEqual(['m120', 'm119']);
    const hundred = await bob.history('room', { limit: 100 });
    expect(hundred.events).toHaveLength(100);
    expect(hundred.nextBefore).toBe(hundred.events[99]!.id);
    expect((await bob.history('room', { limit: 1 })).events).toHaveLength(1);

    const trpc = bob.trpc.conversation.history;
    const refused = async (input: unknown, field: string) => {
      const error = await errorOf(trpc.query(input as Parameters<typeof trpc.query>[0]));
      expect(error.code, JSON.stringify(input)).toBe('BAD_REQUEST');
      expect(error.message, JSON.stringify(input)).toContain(field);
    };
    await refused({ conversationId: 'room', limit: 0 }, 'limit');
    await refused({ conversationId: 'room', limit: 101 }, 'limit');
    await refused({ conversationId: 'room', limit: 2.5 }, 'limit');
    await refused({ conversationId: 'room', limit: '5' }, 'limit');
    await refused({ conversationId: 'room', before: 'not an id' }, 'before');
    await refused({ conversationId: 'room', before: '' }, 'before');
    await refused({ conversationId: 'room', before: `${'a'.repeat(20)}:${'1'.repeat(120)}` }, 'before');
    await refused({ conversationId: 'room', before: null }, 'before');
    await refused({ conversationId: 'room', types: [] }, 'types');
    await refused({ conversationId: 'room', types: ['messages'] }, 'types.0');
    await refused({ conversationId: 'room', types: 'message' }, 'types');
    await refused({ conversationId: 'no spaces' }, 'conversationId');
    await refused({}, 'conversationId');
    // The typed client maps the error the same way.
    expect((await errorOf(bob.history('room', { limit: 500 }))).code).toBe('BAD_REQUEST');
    expect(t.broker.history.has('no spaces')).toBe(false);
  });

  it('filters by type, paging through the filtered events only; ephemeral events never appear', async () => {
    await using t = await start();
    const alice = await t.client('alice');
    const room = await joined(alice, 'room');
    for (let i = 1; i <= 7; i += 1) {
      await t.app.broadcastMessage('room', { body: `m${i}` });
      await t.app.broadcastSystemEvent('room', `s${i}`);
      await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: i % 2 === 1 });
    }
    await syncMarker(t, 'room', room);

    const bob = await t.client('bob');
    const pages = await pageAll((before) => bob.history('room', { types: ['message'], limit: 3, ...(before !== undefined && { before }) }));
    expect(pages.map((p) => p.events.length)).toEqual([3, 3, 1]);
    expect(bodies(pages.flatMap(asRecorded))).toEqual(range(1, 7).reverse());
    expect(pages.flatMap((p) => p.events).every((e) => e.event.type === 'message')).toBe(true);

    const both = await bob.history('room', { types: ['system', 'message'], limit: 100 });
    expect(both.events).toHaveLength(15); // and the marker, newest
    expect(both.events.map((e) => (e.event.type === 'message' ? e.event.message.body : e.event.type === 'system' ? e.event.event : e.event.type)).slice(1, 15)).toEqual(
      range(1, 7).flatMap((m, i) => [m, `s${i + 1}`]).reverse(),
    );
    expect(both.nextBefore).toBeNull();

    const all = await bob.history('room', { limit: 100 });
    expect(all.events.some((e) => ['typing', 'subscribed', 'resync'].includes(e.event.type))).toBe(false);
    // Presence is stored (as single events or batched diffs, whichever the room had).
    expect(all.events.some((e) => ['user_joined', 'presence_diff'].includes(e.event.type))).toBe(true);
    expect(await bob.history('room', { types: ['typing', 'subscribed', 'resync'] })).toEqual({ events: [], nextBefore: null });
  });

  it('keeps a window of HISTORY_SIZE events, the same the resume replays from', async () => {
    await using t = await start({ historySize: 10 });
    await publish(t, 'room', range(1, 25));
    const bob = await t.client('bob');
    const pages = await pageAll((before) => bob.history('room', { limit: 4, ...(before !== undefined && { before }) }));
    expect(pages.map((p) => p.events.length)).toEqual([4, 4, 2]);
    expect(bodies(pages.flatMap(asRecorded))).toEqual(range(16, 25).reverse());
    // A resume from just before the oldest kept event replays exactly that window.
    const oldest = pages.at(-1)!.events.at(-1)!;
    const newest = pages[0]!.events[0]!;
    const replay = await t.broker.readSince('room', formatEventId(newest.id.split(':')[0]!, Number(oldest.id.split(':')[1]) - 1));
    expect(replay.kind === 'replay' && replay.events.map((e) => e.id)).toEqual(pages.flatMap((p) => p.events.map((e) => e.id)).reverse());
  });

  it('answers an empty page for a `before` from a previous server life (another epoch)', async () => {
    let oldId: string;
    {
      await using first = await start();
      await publish(first, 'room', range(1, 3));
      const page = await (await first.client('bob')).history('room');
      expect(page.events).toHaveLength(3);
      oldId = page.events[0]!.id;
    }
    await using t = await start();
    await publish(t, 'room', range(1, 5));
    const bob = await t.client('bob');
    expect(await bob.history('room', { before: oldId })).toEqual({ events: [], nextBefore: null });
    // The new life's own history is there, under its own epoch.
    const current = await bob.history('room');
    expect(bodies(asRecorded(current))).toEqual(range(1, 5).reverse());
    expect(current.events[0]!.id.split(':')[0]).not.toBe(oldId.split(':')[0]);
  });

  it('refuses a conversation outside the token\'s claim with FORBIDDEN, and needs no presence inside it', async () => {
    await using t = await start();
    await publish(t, 'allowed', ['a1']);
    await publish(t, 'secret', ['s1']);
    const bob = await t.client('bob', { conversations: ['allowed'] });
    const refusal = await errorOf(bob.history('secret'));
    expect(refusal.code).toBe('FORBIDDEN');
    expect(refusal.message).toContain('secret');
    expect(bodies(asRecorded(await bob.history('allowed')))).toEqual(['a1']);
    // The same over HTTP.
    const http = stockHttp(t, await t.token('bob', { conversations: ['allowed'] }));
    expect((await errorOf(http.conversation.history.query({ conversationId: 'secret' }))).code).toBe('FORBIDDEN');
    // Without a token: UNAUTHORIZED, nothing about the room.
    const anonymous = await trpcHttp(t.baseUrl, 'conversation.history', { conversationId: 'allowed' }, { kind: 'query' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.result).toBeUndefined();
  });

  it('applies the audience per caller: a delivery report only to its sender; your own messages always', async () => {
    await using t = await start({ ackTimeoutMs: 2000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const a = await joined(alice, 'room');
    await joined(bob, 'room');
    const reported = a.next('message_delivered');
    const { messageId } = await alice.send('room', 'please ack', { ack: true }); // over ws: not echoed to alice's socket
    expect((await reported).report).toMatchObject({ messageId, status: 'delivered', acked: ['bob'] });
    const carol = await t.client('carol');

    const types = async (who: typeof alice) => (await who.history('room', { types: ['message', 'message_delivered'] })).events.map((e) => e.event.type);
    expect(await types(alice)).toEqual(['message_delivered', 'message']);
    expect(await types(bob)).toEqual(['message']);
    expect(await types(carol)).toEqual(['message']);
    const own = (await alice.history('room', { types: ['message'] })).events[0]!.event;
    expect(own.type === 'message' && own.message).toMatchObject({ id: messageId, senderId: 'alice', body: 'please ack' });
  });

  it('reading allocates no room log: not for an unknown room, not for a `before` of any epoch', async () => {
    await using t = await start();
    await publish(t, 'real', ['r1']);
    const before = t.broker.history.counts();
    const mallory = await t.client('mallory'); // conversations: ['*']
    for (let i = 0; i < 50; i += 1) {
      const page = await mallory.history(`random-${i}`, i % 2 === 0 ? {} : { before: formatEventId('someepoch', i) });
      expect(page).toEqual({ events: [], nextBefore: null });
    }
    expect(t.broker.history.has('random-0')).toBe(false);
    expect(t.broker.history.counts()).toEqual(before);
    expect(t.app.service.internals()['registry.rooms']).toBe(0);
  });

  it('works alike over the stock wsLink and the stock httpBatchLink (batched)', async () => {
    await using t = await start();
    const alice = await t.client('alice');
    await joined(alice, 'room');
    for (const body of range(1, 8)) await alice.send('room', body);
    const token = await t.token('bob');
    const ws = stockWs(t, token);
    try {
      const http = stockHttp(t, token);
      const viaWs = await pageAll((before) => ws.trpc.conversation.history.query({ conversationId: 'room', limit: 3, ...(before !== undefined && { before }) }));
      const viaHttp = await pageAll((before) => http.conversation.history.query({ conversationId: 'room', limit: 3, ...(before !== undefined && { before }) }));
      expect(viaHttp).toEqual(viaWs);
      expect(bodies(viaWs.flatMap(asRecorded))).toEqual(range(1, 8).reverse());
      // Two calls of one tick go as one HTTP batch; each gets its own answer.
      const [messages, refused] = await Promise.allSettled([
        http.conversation.history.query({ conversationId: 'room', types: ['message'], limit: 2 }),
        http.conversation.history.query({ conversationId: 'room', limit: 0 }),
      ]);
      expect(messages.status === 'fulfilled' && bodies(asRecorded(messages.value))).toEqual(['m8', 'm7']);
      expect(refused.status === 'rejected' && (refused.reason as { data?: { code?: string } }).data?.code).toBe('BAD_REQUEST');
      // And a plain GET, as a browser or curl would send it.
      const res = await fetch(`${t.baseUrl}/trpc/conversation.history?input=${encodeURIComponent(JSON.stringify(superjson.serialize({ conversationId: 'room', limit: 1 })))}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { result: { data: Parameters<typeof superjson.deserialize>[0] } };
      expect(bodies(asRecorded(superjson.deserialize<HistoryPage>(body.result.data)))).toEqual(['m8']);
    } finally {
      await ws.close();
    }
  });

  it('a client that opens a room shows the last messages, then live ones, without gap or duplicate', async () => {
    await using t = await start();
    await publish(t, 'room', range(1, 5));
    const bob = await t.client('bob');
    const room = await joined(bob, 'room');
    const live: string[] = [];
    room.on('message', (e) => live.push(e.message.body));
    const page = await room.history({ types: ['message'] });
    await publish(t, 'room', ['m6']);
    await waitUntil(() => live.length === 1, { what: 'the live message' });
    expect([...bodies(asRecorded(page)).reverse(), ...live]).toEqual(range(1, 6));
  });
});
