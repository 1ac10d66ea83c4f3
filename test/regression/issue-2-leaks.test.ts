import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../../src/broker/memory-broker.ts';
import { startTestApp, type TestApp } from '../support/start-test-app.ts';
import { connectionsOf, waitUntil } from '../support/wait.ts';

/**
 * Issue #2, seed edge case EC-3: joins and leaves must leave nothing behind. Every internal
 * structure of the service (registry, subscribers, broker subscriptions, typing, grace timers,
 * listeners) goes back to empty, and a room's history stays bounded.
 */
describe('issue #2: no leaks from joins, leaves and disconnects', () => {
  /** Everything that must be zero once nobody is connected (registry listeners are fixed wiring). */
  function leftovers(t: TestApp, baseline: Record<string, number>): Record<string, number> {
    const internals = t.app.service.internals();
    return Object.fromEntries(Object.entries(internals).filter(([key, value]) => value !== (key === 'registryListeners' ? baseline[key] : 0)));
  }

  async function eventuallyEmpty(t: TestApp, baseline: Record<string, number>): Promise<void> {
    await waitUntil(() => Object.keys(leftovers(t, baseline)).length === 0, { what: 'the service internals to empty' }).catch(() => undefined);
    expect(leftovers(t, baseline)).toEqual({});
  }

  const rooms = Array.from({ length: 50 }, (_, i) => `room-${i}`);

  it('empties the registry when a user in 50 rooms closes its client', async () => {
    const broker = new MemoryBroker({ historySize: 16, historyTtlMs: 60_000 });
    await using t = await startTestApp({ broker });
    const baseline = t.app.service.internals();
    const alice = await t.client('alice');
    const conversations = rooms.map((room) => alice.join(room));
    await Promise.all(conversations.map((c) => c.started));
    for (const room of rooms.slice(0, 10)) await alice.trpc.typing.set.mutate({ conversationId: room, isTyping: true });

    expect(t.app.service.internals()).toMatchObject({
      'registry.rooms': 50,
      'registry.connections': 1,
      'registry.users': 1,
      subscribedRooms: 50,
      brokerSubscriptions: 50,
      typing: 10,
    });
    expect(broker.subscribedRooms()).toBe(50);
    expect((await alice.trpc.conversation.mine.query()).length).toBe(50);

    await alice.close();
    await eventuallyEmpty(t, baseline);
    expect(broker.subscribedRooms()).toBe(0);
    expect(t.app.getBroadcastStats()).toMatchObject({ activeRooms: 0, connections: 0, users: 0 });
  });

  it('empties the registry when the socket of a user in 50 rooms drops, after the presence grace', async () => {
    const broker = new MemoryBroker({ historySize: 16, historyTtlMs: 60_000 });
    await using t = await startTestApp({ broker, presenceGraceMs: 100 });
    const baseline = t.app.service.internals();
    const alice = await t.client('alice');
    const conversations = rooms.map((room) => alice.join(room));
    await Promise.all(conversations.map((c) => c.started));
    for (const room of rooms.slice(0, 10)) await alice.trpc.typing.set.mutate({ conversationId: room, isTyping: true });

    expect(t.app.service.disconnectUser('alice')).toBe(1); // terminal close: the client does not come back
    await connectionsOf(t, 'alice', 0);
    // Dropped without leaving: every room waits out the grace for alice, and typing is off at once.
    expect(t.app.service.internals()).toMatchObject({ 'registry.rooms': 0, graceTimers: 50, typing: 0 });
    await eventuallyEmpty(t, baseline);
    expect(broker.subscribedRooms()).toBe(0);
  });

  it('leaves no rooms, timers or listeners behind after 10,000 join/leave cycles over real sockets', async () => {
    const broker = new MemoryBroker({ historySize: 16, historyTtlMs: 60_000 });
    // 2,000 subscription starts a user: far past SUBSCRIBE_RATE_PER_SEC, which is not under test here.
    await using t = await startTestApp({ broker, subscribeRatePerSec: 1_000_000, subscribeRateBurst: 1_000_000 });
    const baseline = t.app.service.internals();
    const clientCount = 10;
    const cyclesPerClient = 1000;
    const clients = await Promise.all(Array.from({ length: clientCount }, (_, i) => t.client(`user-${i % 5}`)));
    // A resident member keeps one room alive through all the churn, with a real stream to fan out to.
    const resident = await t.client('resident');
    const home = resident.join('room-0');
    await home.started;
    let joinsSeen = 0;
    home.on('user_joined', () => (joinsSeen += 1));

    const started = Date.now();
    await Promise.all(
      clients.map(async (client, c) => {
        for (let i = 0; i < cyclesPerClient; i += 1) {
          const room = rooms[(c + i) % 10]!;
          const conversation = client.join(room);
          // One cycle in ten leaves before the server has even started the subscription.
          if (i % 10 !== 5) await conversation.started;
          if (i % 100 === 0) await client.trpc.typing.set.mutate({ conversationId: room, isTyping: true });
          conversation.leave();
        }
      }),
    );
    const elapsed = Date.now() - started;

    // The last leaves are still on their way to the server when the loops end.
    await waitUntil(() => t.app.service.registry.counts().rooms === 1 && t.app.service.registry.snapshot('room-0')?.connectionCount === 1, {
      what: 'every churned subscription to end',
    }).catch(() => undefined);
    expect(joinsSeen).toBeGreaterThan(0);
    expect(t.app.service.internals()).toMatchObject({
      'registry.rooms': 1,
      'registry.connections': clientCount + 1,
      subscribedRooms: 1,
      brokerSubscriptions: 1,
      typing: 0,
      graceTimers: 0,
      registryListeners: baseline.registryListeners,
    });
    expect((await t.app.getRoomUsers('room-0')).map((m) => m.userId)).toEqual(['resident']);
    expect(broker.subscribedRooms()).toBe(1);
    // Histories stay bounded: one per room used, each at most historySize events.
    expect(broker.history.counts().rooms).toBe(10);
    expect(broker.history.counts().events).toBeLessThanOrEqual(10 * 16);
    // How long the cycles took is a benchmark's business, not an assertion (a loaded CI machine varies 3×).
    process.stderr.write(`issue-2 leaks: 10,000 join/leave cycles in ${elapsed} ms\n`);

    await Promise.all([...clients, resident].map((c) => c.close()));
    await eventuallyEmpty(t, baseline);
    expect(broker.subscribedRooms()).toBe(0);
  });
});
