import { createTRPCClient, createWSClient, httpBatchLink, TRPCClientError, wsLink, type TRPCClient } from '@trpc/client';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig } from '../src/config.ts';
import type { AppRouter } from '../src/transport/router.ts';
import { joined, rawClient, type RawFrameClient } from './support/helpers.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';

/**
 * The read procedures' per-user rate (READ_RATE_PER_SEC, READ_RATE_BURST): history, presence,
 * mine and deliveryStatus share one token bucket per user and node. Over the stock wsLink, the
 * stock httpBatchLink and the typed client, against the real server. The rate is 1 token a
 * second, so what a burst may be served is known: the burst, plus one per second it took.
 */
describe('read rates (READ_RATE_PER_SEC)', () => {
  const RATE = { readRatePerSec: 1, readRateBurst: 4 };

  function stockWs(t: TestApp, token: string): { trpc: TRPCClient<AppRouter>; close: () => Promise<void> } {
    const wsClient = createWSClient({ url: t.wsUrl, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, connectionParams: () => ({ token }) });
    return { trpc: createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient, transformer: superjson })] }), close: () => wsClient.close() };
  }

  function stockHttp(t: TestApp, token: string): TRPCClient<AppRouter> {
    return createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${t.baseUrl}/trpc`, transformer: superjson, headers: { authorization: `Bearer ${token}` } })] });
  }

  /** TOO_MANY_REQUESTS answers the server has counted (`/metrics`). */
  async function tooManyRequests(t: TestApp): Promise<number> {
    const text = await (await fetch(`${t.baseUrl}/metrics`)).text();
    return Number(/^realtime_rejected_requests_total\{code="TOO_MANY_REQUESTS"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  }

  /** The refusal a rejected read carries, or null when the call was served (answered, or refused for another reason). */
  function rateRefusal(result: PromiseSettledResult<unknown>): { message: string; retryAfterMs: number } | null {
    if (result.status === 'fulfilled') return null;
    const error = result.reason as TRPCClientError<AppRouter>;
    expect(error).toBeInstanceOf(TRPCClientError);
    if (error.data?.code !== 'TOO_MANY_REQUESTS') return null;
    return { message: error.message, retryAfterMs: (error.data as { retryAfterMs?: number }).retryAfterMs ?? -1 };
  }

  /**
   * Ten history reads in one tick (one frame, one HTTP batch), one token each: four are served,
   * the rest refused with TOO_MANY_REQUESTS and a positive wait. Then three reads of each
   * procedure in one tick: refused too (the bucket is empty). Then another user is served, and
   * the same user again once the wait it was given is over.
   */
  async function burstThenWait(t: TestApp, mallory: TRPCClient<AppRouter>, bob: TRPCClient<AppRouter>): Promise<void> {
    await t.app.broadcastMessage('room', { body: 'hello' });
    const reads = {
      history: () => mallory.conversation.history.query({ conversationId: 'room', limit: 25 }),
      presence: () => mallory.conversation.presence.query({ conversationId: 'room' }),
      mine: () => mallory.conversation.mine.query(),
      // Refused before it is looked up: an unknown id gets TOO_MANY_REQUESTS, not NOT_FOUND.
      deliveryStatus: () => mallory.message.deliveryStatus.query({ messageId: 'no-such-message' }),
    };
    const started = Date.now();
    const drain = (await Promise.allSettled(Array.from({ length: 10 }, () => reads.history()))).map(rateRefusal);
    const order = [1, 2, 3].flatMap(() => Object.keys(reads) as Array<keyof typeof reads>);
    const burst = (await Promise.allSettled(order.map((name) => reads[name]()))).map(rateRefusal);
    // What a bucket of 4 refilling 1 a second may serve in this time, and no less than its burst.
    const allowance = RATE.readRateBurst + Math.floor(((Date.now() - started) * RATE.readRatePerSec) / 1000);

    const served = (list: typeof drain) => list.filter((r) => r === null).length;
    expect(served(drain)).toBeGreaterThanOrEqual(RATE.readRateBurst);
    expect(served(drain) + served(burst)).toBeLessThanOrEqual(allowance);
    // Every procedure is under the rate: each had as many refusals as the burst could not have served.
    for (const name of Object.keys(reads)) {
      const refused = order.filter((n, i) => n === name && burst[i] !== null).length;
      expect(refused, `${name} refused`).toBeGreaterThanOrEqual(3 - (allowance - RATE.readRateBurst));
    }
    for (const refusal of [...drain, ...burst]) {
      if (refusal === null) continue;
      expect(refusal.message).toMatch(/^too many reads; retry in \d+ ms \(READ_RATE_PER_SEC\)$/);
      expect(refusal.retryAfterMs).toBeGreaterThan(0);
      expect(refusal.retryAfterMs).toBeLessThanOrEqual(1000 / RATE.readRatePerSec);
    }

    // Another user is served meanwhile: the buckets are per user.
    expect((await bob.conversation.history.query({ conversationId: 'room' })).events).toHaveLength(1);

    // The same user, refused now, is served once the wait it was given is over (refusals spent nothing).
    const now = rateRefusal((await Promise.allSettled([reads.history()]))[0]!);
    if (now !== null) await new Promise((resolve) => setTimeout(resolve, now.retryAfterMs + 10));
    expect((await reads.history()).events).toHaveLength(1);
  }

  it('over WebSocket: a burst over the limit is refused with TOO_MANY_REQUESTS and retryAfterMs; others are served; the wait is enough', async () => {
    await using t = await startTestApp(RATE);
    const mallory = stockWs(t, await t.token('mallory'));
    const bob = stockWs(t, await t.token('bob'));
    try {
      await burstThenWait(t, mallory.trpc, bob.trpc);
    } finally {
      await mallory.close();
      await bob.close();
    }
  });

  it('over an HTTP batch: the same, call by call within one batch', async () => {
    await using t = await startTestApp(RATE);
    await burstThenWait(t, stockHttp(t, await t.token('mallory')), stockHttp(t, await t.token('bob')));
  });

  it('the typed client: history rejects with the wait; the presence model and chat.presence() wait it out and end complete', async () => {
    await using t = await startTestApp({ readRatePerSec: 2, readRateBurst: 2 });
    // A room of 101 others: the `subscribed` snapshot lists 100, the rest must be paged in.
    const members = await Promise.all(Array.from({ length: 101 }, (_, i) => t.client(`m${String(i).padStart(3, '0')}`)));
    await Promise.all(members.map((c) => joined(c, 'big')));

    const reader = await t.client('reader');
    // A page of 100 costs 4 tokens: served from a full bucket of 2, it leaves the bucket 2 in
    // debt — 1.5 s before the next token, room enough for what follows to be refused first.
    await reader.history('big', { limit: 100 });
    // One page: the application decides (a "Load earlier" button is pressed again).
    const refused = await reader.history('big', { limit: 25 }).then(() => null, (error: unknown) => error);
    expect(refused).toBeInstanceOf(TRPCClientError);
    expect((refused as TRPCClientError<AppRouter>).data).toMatchObject({ code: 'TOO_MANY_REQUESTS', retryAfterMs: expect.any(Number) as number });
    const refusalsBefore = await tooManyRequests(t);

    // The model's page is refused at first; it waits and asks again until the view is complete.
    const errors: unknown[] = [];
    const room = await joined(reader, 'big', { onError: (error) => errors.push(error) });
    const complete = new Promise<void>((resolve) => {
      room.onPresence((view) => view.complete && resolve());
      if (room.presence.complete) resolve();
    });
    await complete;
    expect(room.presence.members.size).toBe(102);
    expect(room.presence.memberCount).toBe(102);
    expect(await tooManyRequests(t), 'the model was refused before it was served').toBeGreaterThan(refusalsBefore);

    // chat.presence() walks its pages the same way (waiting too, should its page be refused).
    expect((await reader.presence('big')).length).toBe(102);
    expect(errors).toEqual([]);
  });

  it('the typed client: a delivery report read with deliveryStatus waits a refusal out and resolves', async () => {
    await using t = await startTestApp({ readRatePerSec: 1, readRateBurst: 1, ackTimeoutMs: 300 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const b = await joined(bob, 'outside');
    const bobGot = b.next('message');
    // Alice's one token goes on a history page: the report's first deliveryStatus read is refused.
    await alice.history('outside', { limit: 25 });
    const refusalsBefore = await tooManyRequests(t);
    // Alice never joined: her report can only come from deliveryStatus.
    const { messageId, report } = await alice.send('outside', 'from outside', { ack: true });
    await bobGot;
    expect(await report).toMatchObject({ messageId, status: 'failed', expected: ['bob'], missing: ['bob'] });
    expect(await tooManyRequests(t), 'a deliveryStatus read was refused on the way').toBeGreaterThan(refusalsBefore);
  });

  it('a presence read costs by the room it read, whatever its limit: pages of one in a room of 250 run the bucket into debt', async () => {
    // Presence batched as in production: 250 joins are a few diffs, not 31,000 single events.
    await using t = await startTestApp({ readRatePerSec: 1, readRateBurst: 1, presenceBatchMs: 50 });
    // 250 members on bare sockets (cheaper than typed clients): each opens, authenticates, joins.
    const sockets: RawFrameClient[] = [];
    try {
      for (let i = 0; i < 250; i += 50) {
        const batch = await Promise.all(
          Array.from({ length: 50 }, async (_, k) => {
            const socket = rawClient(`${t.wsUrl}?connectionParams=1`);
            await socket.opened;
            socket.send({ method: 'connectionParams', data: { token: await t.token(`m${i + k}`) } });
            socket.send({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: 'big' } } } });
            await socket.waitFor((f) => (f as { result?: { type?: string } }).result?.type === 'started', 10_000);
            return socket;
          }),
        );
        sockets.push(...batch);
      }
      const reader = stockHttp(t, await t.token('reader'));
      const page = () => reader.conversation.presence.query({ conversationId: 'big', limit: 1 });
      // 1 before + 1 after (250 members) = 2 a page, from a bucket of 1: served, and 1 in debt —
      // a page of one member costs what a page of 250 does.
      const first = await page();
      expect([first.memberCount, first.members.length]).toEqual([250, 1]);
      const refusal = rateRefusal((await Promise.allSettled([page()]))[0]!);
      expect(refusal).not.toBeNull();
      // A wait for one token at 1 a second is at most 1,000 ms; this one pays the debt first.
      expect(refusal!.retryAfterMs).toBeGreaterThan(1000);
    } finally {
      for (const socket of sockets) socket.ws.close();
    }
  });

  it('READ_RATE_PER_SEC and READ_RATE_BURST are validated like the other rates, defaults 100 and 1000', () => {
    expect(loadConfig({})).toMatchObject({ readRatePerSec: 100, readRateBurst: 1000 });
    expect(loadConfig({ READ_RATE_PER_SEC: '5', READ_RATE_BURST: '50' })).toMatchObject({ readRatePerSec: 5, readRateBurst: 50 });
    expect(() => loadConfig({ READ_RATE_PER_SEC: '0' })).toThrow(ConfigError);
    expect(() => loadConfig({ READ_RATE_PER_SEC: '0' })).toThrow('Invalid configuration: READ_RATE_PER_SEC="0"');
    expect(() => loadConfig({ READ_RATE_BURST: 'lots' })).toThrow('Invalid configuration: READ_RATE_BURST="lots" must be a whole number');
    expect(() => loadConfig({ READ_RATE_BURST: '1.5' })).toThrow(/READ_RATE_BURST/);
  });
});
