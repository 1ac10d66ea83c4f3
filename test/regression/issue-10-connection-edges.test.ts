import { createTRPCClient, createWSClient, TRPCClientError, wsLink } from '@trpc/client';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { TRPCClientError as ClientError } from '@trpc/client';
import type { AppRouter } from '../../src/transport/router.ts';
import { mintToken } from '../../src/auth/tokens.ts';
import { frameErrorCode, joined, rawClient, record } from '../support/helpers.ts';
import { startTestApp, TEST_SECRET, type TestApp } from '../support/start-test-app.ts';
import { bodies, dropConnections, recordRaw, waitUntil } from '../support/wait.ts';

/**
 * Issue #10: the edges of a connection's life, tried as a new user would — with the stock
 * `@trpc/client` (and the typed client where it has behaviour of its own) against the real
 * server: a quiet subscriber's drop, bad tokens, bursts batched into one frame, ack re-sends.
 */

/** Counts the WebSocket upgrades the server sees, per `?who=` label in the URL. */
function countUpgrades(t: TestApp): Map<string, number> {
  const counts = new Map<string, number>();
  t.app.httpServer.prependListener('upgrade', (req: { url?: string }) => {
    const who = new URL(req.url ?? '/', 'http://x').searchParams.get('who') ?? '';
    counts.set(who, (counts.get(who) ?? 0) + 1);
  });
  return counts;
}

function stockClient(url: string, token: () => string | null, options: { retryDelayMs?: number } = {}) {
  const wsClient = createWSClient({
    url,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: () => {
      const value = token();
      return value === null ? {} : { token: value };
    },
    retryDelayMs: () => options.retryDelayMs ?? 200,
  });
  const trpc = createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] });
  return { wsClient, trpc };
}

describe('issue #10: nothing lost from the first event', () => {
  it('stock client: a quiet subscriber whose socket drops before any other event resumes without loss', async () => {
    await using t = await startTestApp({ presenceGraceMs: 5000 });
    const alice = await t.client('alice');
    await joined(alice, 'quiet');
    // bob reconnects only after 300 ms: everything alice sends meanwhile is in the gap.
    const bob = await t.client('bob', { retryDelayMs: () => 300 });
    const raw = recordRaw(bob, 'quiet');
    await raw.started();
    await waitUntil(() => raw.positions.length === 1, { what: 'the stream to give bob its position' });
    expect(raw.events).toEqual([]); // a quiet room: nothing but the position yet
    await dropConnections(t, 'bob');
    for (const body of ['gap-0', 'gap-1', 'gap-2']) await alice.send('quiet', body);
    await raw.started(2);
    await alice.send('quiet', 'live');
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'live');
    expect(bodies(raw.events)).toEqual(['gap-0', 'gap-1', 'gap-2', 'live']);
    expect(raw.events.some((e) => e.event.type === 'resync')).toBe(false);
    // The resumed stream starts from the first one's position, which was the room's head.
    expect(raw.positions.map((p) => p.id)).toEqual([raw.positions[0]!.id, raw.positions[0]!.id]);
  });

  it('typed client: a quiet subscriber whose socket drops before any other event resumes without loss', async () => {
    await using t = await startTestApp({ presenceGraceMs: 5000 });
    const alice = await t.client('alice');
    await joined(alice, 'quiet');
    const bob = await t.client('bob', { retryDelayMs: () => 300 });
    const b = await joined(bob, 'quiet');
    const seen = record(b);
    await waitUntil(() => b.lastEventId !== undefined, { what: 'the position' });
    await dropConnections(t, 'bob');
    for (const body of ['gap-0', 'gap-1', 'gap-2']) await alice.send('quiet', body);
    await b.next('message', (e) => e.message.body === 'gap-2', 3000);
    expect(bodies(seen)).toEqual(['gap-0', 'gap-1', 'gap-2']);
  });

  it('begins every stream with `subscribed`: the position (the room head), who is present, and the count', async () => {
    await using t = await startTestApp({ presenceGraceMs: 5000 });
    const alice = await t.client('alice', { name: 'Alice' });
    await joined(alice, 'snap');
    const { eventId } = await t.app.broadcastSystemEvent('snap', 'before');
    const bob = await t.client('bob');
    const raw = recordRaw(bob, 'snap');
    await waitUntil(() => raw.positions.length === 1, { what: 'the first event' });
    const first = raw.positions[0]!;
    const event = first.event as Extract<typeof first.event, { type: 'subscribed' }>;
    // Its id is the room's head at that moment: bob's own join, published just after `before`.
    expect(first.id > eventId).toBe(true);
    expect(event).toMatchObject({ type: 'subscribed', conversationId: 'snap', resumed: false, memberCount: 2 });
    expect(event.members.map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
    expect(event.members.find((m) => m.userId === 'alice')?.name).toBe('Alice');
    // A later event has a greater id.
    await t.app.broadcastSystemEvent('snap', 'after');
    const after = await raw.until((e) => e.event.type === 'system');
    expect(after.id > first.id).toBe(true);
  });
});

describe('issue #10: the presence snapshot is bounded', () => {
  it('lists at most PRESENCE_SNAPSHOT_LIMIT (100) members of a room of 105, and counts them all', async () => {
    await using t = await startTestApp({ maxConnectionsPerUser: 200 });
    const members = await Promise.all(Array.from({ length: 104 }, async (_, i) => joined(await t.client(`u${i}`), 'big')));
    expect(members).toHaveLength(104);
    const last = await t.client('last');
    const raw = recordRaw(last, 'big');
    await waitUntil(() => raw.positions.length === 1, { what: 'the snapshot' });
    const event = raw.positions[0]!.event as Extract<(typeof raw.positions)[number]['event'], { type: 'subscribed' }>;
    expect(event.memberCount).toBe(105);
    expect(event.members).toHaveLength(100);
    expect(new Set(event.members.map((m) => m.userId)).size).toBe(100);
  });
});

describe('issue #10: auth failures that clients understand', () => {
  it('stock client with a missing, forged or expired token: onError UNAUTHORIZED saying why, rejected calls, at most 3 connection attempts in 10 s', async () => {
    await using t = await startTestApp();
    const upgrades = countUpgrades(t);
    const forged = await mintToken('another-secret-that-is-at-least-32-characters', { userId: 'mallory', conversations: ['*'] });
    const expired = await mintToken(TEST_SECRET, { userId: 'mallory', conversations: ['*'], expiresIn: -60 });
    const cases = [
      { who: 'none', token: null, says: 'missing token' },
      { who: 'forged', token: forged, says: 'invalid token' },
      { who: 'expired', token: expired, says: 'expired' },
    ];
    const clients = cases.map((c) => ({ ...c, ...stockClient(`${t.wsUrl}?who=${c.who}`, () => c.token) }));
    try {
      const started = Date.now();
      const outcomes = await Promise.all(
        clients.map(async (c) => {
          const subscriptionError = new Promise<ClientError<AppRouter>>((resolve) => {
            c.trpc.conversation.events.subscribe({ conversationId: 'lobby' }, { onError: (e) => resolve(e as ClientError<AppRouter>), onData: () => resolve(new Error('data') as never) });
          });
          const query = c.trpc.conversation.mine.query().then(
            () => null,
            (e: unknown) => e,
          );
          return { c, subscription: await subscriptionError, query: await query };
        }),
      );
      for (const { c, subscription, query } of outcomes) {
        expect(subscription, c.who).toBeInstanceOf(TRPCClientError);
        expect(subscription.data?.code, c.who).toBe('UNAUTHORIZED');
        expect(subscription.message, c.who).toContain(c.says);
        expect((query as ClientError<AppRouter>).data?.code, c.who).toBe('UNAUTHORIZED');
      }
      // Let 10 s pass from the first attempt, then count.
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, 10_000 - (Date.now() - started))));
      for (const c of cases) {
        const n = upgrades.get(c.who) ?? 0;
        expect(n, `${c.who}: connection attempts in 10 s`).toBeGreaterThanOrEqual(1);
        expect(n, `${c.who}: connection attempts in 10 s`).toBeLessThanOrEqual(3);
      }
      expect(t.app.service.stats.messagesBroadcast).toBe(0);
      expect(t.app.service.internals().connections).toBe(0);
    } finally {
      await Promise.all(clients.map((c) => c.wsClient.close()));
    }
  }, 20_000);

  it('typed client with an expired token: a terminal error, the join fails UNAUTHORIZED, and it does not reconnect', async () => {
    await using t = await startTestApp({ rejectLingerMs: 100 });
    const upgrades = countUpgrades(t);
    let terminal: ClientError<AppRouter> | undefined;
    const chat = await t.client('mallory', { expiresIn: -60, onTerminalError: (e) => (terminal = e), url: `${t.wsUrl}?who=typed` });
    let joinError: unknown;
    chat.join('lobby', { onError: (e) => (joinError = e) });
    await waitUntil(() => terminal !== undefined && joinError !== undefined, { what: 'the terminal error and the join error' });
    expect(terminal?.data?.code).toBe('UNAUTHORIZED');
    expect(terminal?.message).toContain('expired');
    expect((joinError as ClientError<AppRouter>).data?.code).toBe('UNAUTHORIZED');
    // The server would close it after 100 ms; the client closed first and stays closed.
    await waitUntil(() => (t.app.service.stats.rejectedByCode.get('UNAUTHORIZED') ?? 0) > 0, { what: 'the refusal to be counted' });
    const marker = await t.client('alice');
    await joined(marker, 'lobby'); // a later connection, to order the check after any retry
    expect(upgrades.get('typed')).toBe(1);
  });
});

describe('issue #10: a socket that never authenticates', () => {
  it('is refused (UNAUTHORIZED, then 4501) when it sends no connectionParams within AUTH_TIMEOUT_MS', async () => {
    await using t = await startTestApp({ authTimeoutMs: 200, rejectLingerMs: 50 });
    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    const closed = await raw.closed;
    expect(closed.code).toBe(4501);
    expect(closed.reason).toContain('no connectionParams');
    expect(raw.frames.map(frameErrorCode)).toEqual(['UNAUTHORIZED']);
  });
});

describe('issue #10: bursts batched into one frame are served call by call', () => {
  it('bounds what one connection can make the server hold: 256 calls run, 10,000 wait, the rest are refused at once; then every waiting call runs, in order', async () => {
    // Calls that cannot finish until released: authorizeJoin waits on a gate.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let held = 0;
    await using t = await startTestApp({
      maxFrameBytes: 4 * 1024 * 1024,
      // One frame of more than 10,256 calls: past MAX_WS_BATCH's default, which is not under test here.
      maxWsBatch: 20_000,
      typingRatePerSec: 100_000,
      authorizeJoin: async () => {
        held += 1;
        await gate;
        return true;
      },
    });
    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    raw.send({ method: 'connectionParams', data: { token: await t.token('alice') } });
    // Authenticated first (requests that arrive while the token is checked wait the same way).
    raw.send({ id: 0, method: 'query', params: { path: 'conversation.mine' } });
    await raw.waitFor((f) => (f as { id?: unknown }).id === 0);
    raw.frames.length = 0;
    const n = 10_400;
    raw.send(Array.from({ length: n }, (_, i) => ({ id: i + 1, method: 'mutation', params: { path: 'typing.set', input: superjson.serialize({ conversationId: 'bounded', isTyping: false }) } })));
    // Beyond 256 running + 10,000 waiting, each call is answered at once with its own error.
    await waitUntil(() => raw.frames.length >= n - 256 - 10_000, { what: 'the refusals' });
    expect(held).toBe(256);
    const refused = raw.frames.map((f) => f as { id: number; error?: unknown });
    expect(refused.map((f) => frameErrorCode(f))).toEqual(Array.from({ length: n - 10_256 }, () => 'TOO_MANY_REQUESTS'));
    expect(refused.map((f) => f.id)).toEqual(Array.from({ length: n - 10_256 }, (_, i) => 10_257 + i));
    open();
    await waitUntil(() => raw.frames.length >= n, { what: 'every answer', timeoutMs: 10_000 });
    expect(held).toBe(10_256);
    const results = raw.frames.filter((f) => !frameErrorCode(f)).map((f) => (f as { id: number }).id);
    expect(results).toEqual(Array.from({ length: 10_256 }, (_, i) => i + 1)); // in order
  });

  it('stock client: 20 sends of 8 KB in one tick all succeed, in order, on the defaults', async () => {
    await using t = await startTestApp();
    const bob = await t.client('bob');
    const b = await joined(bob, 'burst');
    const seen = record(b);
    const aliceToken = await t.token('alice');
    const sender = stockClient(t.wsUrl, () => aliceToken);
    try {
      const body = (i: number) => `${i}:`.padEnd(8 * 1024, 'x');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => sender.trpc.message.send.mutate({ conversationId: 'burst', body: body(i) })));
      expect(results).toHaveLength(20);
      await waitUntil(() => bodies(seen).length === 20, { what: 'bob to get all 20' });
      expect(bodies(seen)).toEqual(Array.from({ length: 20 }, (_, i) => body(i)));
    } finally {
      await sender.wsClient.close();
    }
  });

  it('stock client: 2,000 sends in one tick — each its own result or TOO_MANY_REQUESTS naming the limit; the socket stays up', async () => {
    await using t = await startTestApp();
    const token = await t.token('alice');
    const sender = stockClient(t.wsUrl, () => token);
    try {
      await sender.trpc.conversation.mine.query(); // connected
      const connectionsBefore = [...t.app.service.registry.userConnections('alice')];
      const outcomes = await Promise.allSettled(Array.from({ length: 2000 }, (_, i) => sender.trpc.message.send.mutate({ conversationId: 'flood', body: `m${i}` })));
      const ok = outcomes.filter((o) => o.status === 'fulfilled').length;
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      expect(ok).toBeGreaterThanOrEqual(100); // MESSAGE_RATE_BURST
      expect(ok + refused.length).toBe(2000);
      for (const r of refused) {
        expect((r.reason as ClientError<AppRouter>).data?.code).toBe('TOO_MANY_REQUESTS');
        expect((r.reason as Error).message).toContain('too many messages');
      }
      // The same connection served them all: no drop, no reconnect.
      expect([...t.app.service.registry.userConnections('alice')]).toEqual(connectionsBefore);
    } finally {
      await sender.wsClient.close();
    }
  });

  it('typed client: an offline backlog of 160 sends of 8 KB (1.3 MB, over MAX_FRAME_BYTES) leaves in frames the server accepts; every send succeeds', async () => {
    await using t = await startTestApp({ messageRateBurst: 1000, messageRatePerSec: 1000, presenceGraceMs: 5000 });
    const bob = await t.client('bob');
    const b = await joined(bob, 'backlog');
    const seen = record(b);
    const alice = await t.client('alice', { retryDelayMs: () => 300 });
    await joined(alice, 'backlog');
    await dropConnections(t, 'alice');
    const body = (i: number) => `${i}:`.padEnd(8 * 1024, 'y');
    const sends = Array.from({ length: 160 }, (_, i) => alice.send('backlog', body(i)));
    const results = await Promise.all(sends);
    expect(new Set(results.map((r) => r.messageId)).size).toBe(160);
    await waitUntil(() => bodies(seen).length === 160, { what: "bob to get all 160", timeoutMs: 10_000 });
    expect(bodies(seen)).toEqual(Array.from({ length: 160 }, (_, i) => body(i)));
  });
});
