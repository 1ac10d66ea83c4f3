import { describe, expect, it } from 'vitest';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';
import { bodies, dropConnections, epochOf, firstOutOfOrder, joinLogged, recordRaw, waitUntil, type RecordedEvent } from './support/wait.ts';

/** CONTRACT §4 "Resume" and the `eventId` rules under the RoomEvent table. */
describe('resume', () => {
  const ids = (events: readonly RecordedEvent[]) => events.map((e) => e.id);
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => `m${from + i}`);
  /** Server-side sends: published synchronously, so they certainly happen in the current state. */
  const publish = (t: TestApp, room: string, names: string[]) => Promise.all(names.map((body) => t.app.broadcastMessage(room, { body })));

  it('resumes after dropped sockets with every event exactly once, in order, then live events', async () => {
    // A long grace: the drops cause no presence events, so the stream is just the messages.
    await using t = await startTestApp({ presenceGraceMs: 5000 });
    const alice = await t.client('alice');
    await alice.join('room').started;
    // A slower reconnect keeps the socket down long enough to send through the gap on purpose.
    const bob = await t.client('bob', { retryDelayMs: () => 50 });
    const raw = recordRaw(bob, 'room');
    const chat = joinLogged(bob, 'room');
    await Promise.all([raw.started(), chat.conversation.started]);

    let n = 0;
    const aliceSends = async (count: number) => {
      for (let i = 0; i < count; i += 1) await alice.send('room', `m${++n}`);
    };
    await aliceSends(3);
    for (let round = 1; round <= 3; round += 1) {
      await raw.until((e) => e.event.type === 'message' && e.event.message.body === `m${n}`);
      await dropConnections(t, 'bob');
      // The socket is down right now (nothing ran since the server saw it close): these are missed.
      const missed = publish(t, 'room', range(n + 1, n + 4));
      expect(t.app.service.registry.userConnections('bob').size).toBe(0);
      n += 4;
      await missed;
      await aliceSends(2); // during the reconnect, or just after it
      await raw.started(round + 1);
      await aliceSends(2); // live on the new socket
    }
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === `m${n}`);
    await waitUntil(() => bodies(chat.log).length === n, { what: 'the chat client to see every message' });

    expect(n).toBe(27);
    expect(bodies(raw.events)).toEqual(range(1, n));
    expect(raw.events.every((e) => e.event.type === 'message')).toBe(true);
    expect(firstOutOfOrder(ids(raw.events))).toBeNull();
    expect(raw.starts).toBe(4);
    expect(bodies(chat.log)).toEqual(range(1, n));
    expect(ids(chat.log)).toEqual(ids(raw.events));
    expect(chat.conversation.lastEventId).toBe(raw.events.at(-1)?.id);
  });

  it('keeps the resume point when the last event before the drop was an ephemeral one', async () => {
    await using t = await startTestApp({ presenceGraceMs: 5000 });
    const alice = await t.client('alice');
    await alice.join('room').started;
    const bob = await t.client('bob', { retryDelayMs: () => 50 });
    const raw = recordRaw(bob, 'room');
    await raw.started();
    await publish(t, 'room', ['m1']);
    await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    const typing = await raw.until((e) => e.event.type === 'typing');
    expect(raw.events.at(-1)).toBe(typing);

    await dropConnections(t, 'bob');
    const missed = publish(t, 'room', ['m2']);
    await missed;
    await raw.started(2);
    await publish(t, 'room', ['m3']);
    await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'm3');
    expect(raw.events.map((e) => (e.event.type === 'message' ? e.event.message.body : e.event.type))).toEqual(['m1', 'typing', 'm2', 'm3']);
    expect(firstOutOfOrder(ids(raw.events))).toBeNull();
  });

  describe('with historySize: 3', () => {
    const historySize = 3;

    it('replays a gap exactly as long as the history kept', async () => {
      await using t = await startTestApp({ historySize, presenceGraceMs: 5000 });
      const bob = await t.client('bob', { retryDelayMs: () => 50 });
      const raw = recordRaw(bob, 'room');
      await raw.started();
      await publish(t, 'room', ['m1']);
      await raw.until((e) => e.event.type === 'message');

      await dropConnections(t, 'bob');
      await publish(t, 'room', range(2, 1 + historySize));
      await raw.started(2);
      await publish(t, 'room', ['live']);
      await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'live');
      expect(raw.events.map((e) => e.event.type)).not.toContain('resync');
      expect(bodies(raw.events)).toEqual([...range(1, 1 + historySize), 'live']);
    });

    it('sends resync, then live events, when more was missed than the history keeps', async () => {
      await using t = await startTestApp({ historySize, presenceGraceMs: 5000 });
      const bob = await t.client('bob', { retryDelayMs: () => 50 });
      const raw = recordRaw(bob, 'room');
      const chat = joinLogged(bob, 'room');
      await Promise.all([raw.started(), chat.conversation.started]);
      await publish(t, 'room', ['m1']);
      await raw.until((e) => e.event.type === 'message');

      await dropConnections(t, 'bob');
      await publish(t, 'room', range(2, 2 + historySize)); // one more than the history keeps
      await raw.started(2);
      const resync = await raw.until((e) => e.event.type === 'resync');
      expect(resync.event).toMatchObject({ type: 'resync', conversationId: 'room', reason: 'history_truncated' });
      await publish(t, 'room', ['live']);
      await raw.until((e) => e.event.type === 'message' && e.event.message.body === 'live');

      expect(raw.events.map((e) => (e.event.type === 'message' ? e.event.message.body : e.event.type))).toEqual(['m1', 'resync', 'live']);
      expect(firstOutOfOrder(ids(raw.events))).toBeNull();
      await waitUntil(() => bodies(chat.log).includes('live'));
      expect(chat.log.map((e) => e.event.type)).toEqual(['message', 'resync', 'message']);
    });

    it('sends resync for an explicit lastEventId older than the history kept', async () => {
      await using t = await startTestApp({ historySize });
      const alice = await t.client('alice');
      const carol = await t.client('carol');
      await alice.join('room').started;
      const [first] = await publish(t, 'room', range(1, 5));
      const c = joinLogged(carol, 'room', { lastEventId: first!.eventId });
      const resync = await c.conversation.next('resync');
      expect(resync.reason).toBe('history_truncated');
      await publish(t, 'room', ['live']);
      await c.conversation.next('message', (e) => e.message.body === 'live');
      expect(c.log.map((e) => e.event.type)).toEqual(['resync', 'message']);
    });
  });

  it.each([
    ['an unknown epoch', 'zzzzzzzz:000000000001', 'history_unavailable'],
    ['garbage', 'nonsense', 'unknown_event_id'],
  ])('sends resync, then live events, for a lastEventId from %s', async (_what, lastEventId, reason) => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    await alice.join('room').started;
    await publish(t, 'room', ['old']);

    const c = joinLogged(carol, 'room', { lastEventId });
    expect(await c.conversation.next('resync')).toMatchObject({ type: 'resync', conversationId: 'room', reason });
    await publish(t, 'room', ['live']);
    await c.conversation.next('message', (e) => e.message.body === 'live');
    expect(c.log.map((e) => e.event.type)).toEqual(['resync', 'message']);
    expect(firstOutOfOrder(ids(c.log))).toBeNull();
    expect(c.conversation.lastEventId).toBe(c.log[1]?.id);
  });

  it('sends resync for an id of this room from the future', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    await alice.join('room').started;
    const [old] = await publish(t, 'room', ['old']);
    const future = `${epochOf(old!.eventId)}:999999999999`;
    const c = joinLogged(carol, 'room', { lastEventId: future });
    expect((await c.conversation.next('resync')).reason).toBe('unknown_event_id');
  });

  it('does not repeat an event published while the replay is being read', async () => {
    /** The in-memory broker with a gate on history reads, to hold a resume between its two halves. */
    class GatedBroker extends MemoryBroker {
      gate: Promise<void> | null = null;
      waiting = 0;
      override async readSince(roomId: string, lastEventId: string) {
        if (this.gate) {
          this.waiting += 1;
          await this.gate;
          this.waiting -= 1;
        }
        return super.readSince(roomId, lastEventId);
      }
    }
    const broker = new GatedBroker({ historySize: 256, historyTtlMs: 60_000 });
    await using t = await startTestApp({ broker });
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    await alice.join('room').started;
    const [m1] = await publish(t, 'room', ['m1', 'm2']);

    let open!: () => void;
    broker.gate = new Promise((resolve) => (open = resolve));
    const c = recordRaw(carol, 'room', m1!.eventId);
    await waitUntil(() => broker.waiting === 1, { what: 'the resume to read the history' });
    // Carol is subscribed to live events already, and her replay has not been read yet.
    await publish(t, 'room', ['m3']);
    open();
    await c.until((e) => e.event.type === 'message' && e.event.message.body === 'm3');
    await publish(t, 'room', ['live']);
    await c.until((e) => e.event.type === 'message' && e.event.message.body === 'live');
    expect(bodies(c.events)).toEqual(['m2', 'm3', 'live']);
    expect(firstOutOfOrder(ids(c.events))).toBeNull();
  });

  it('replays everything after an explicit lastEventId given to join()', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    const a = recordRaw(alice, 'room');
    await a.started();
    const sent = await publish(t, 'room', range(1, 5));
    await a.until((e) => e.id === sent[4]!.eventId);

    const c = joinLogged(carol, 'room', { lastEventId: sent[1]!.eventId });
    expect(c.conversation.lastEventId).toBe(sent[1]!.eventId);
    await c.conversation.next('message', (e) => e.message.body === 'm5');
    await publish(t, 'room', ['live']);
    await c.conversation.next('message', (e) => e.message.body === 'live');
    expect(bodies(c.log)).toEqual(['m3', 'm4', 'm5', 'live']);
    // The same event has the same id for every subscriber.
    expect(ids(c.log).slice(0, 3)).toEqual(sent.slice(2).map((s) => s.eventId));
    expect(ids(c.log).slice(0, 3)).toEqual(ids(a.events).slice(2, 5));
  });

  it('replays from the history of a room that emptied, until HISTORY_TTL_MS; then resync', async () => {
    const historyTtlMs = 100;
    // Our own in-memory broker (the default implementation), so the test can see its history expire.
    const broker = new MemoryBroker({ historySize: 256, historyTtlMs });
    await using t = await startTestApp({ broker, historyTtlMs });
    const alice = await t.client('alice');
    const a = alice.join('room');
    await a.started;
    const [m1] = await publish(t, 'room', ['m1', 'm2']);
    a.leave();
    await waitUntil(() => t.app.service.registry.snapshot('room') === undefined, { what: 'the room to empty' });
    expect(broker.history.has('room')).toBe(true); // the room is gone, its history is not

    const c1 = joinLogged(alice, 'room', { lastEventId: m1!.eventId });
    await c1.conversation.next('message', (e) => e.message.body === 'm2');
    expect(bodies(c1.log)).toEqual(['m2']);
    c1.conversation.leave();
    await waitUntil(() => t.app.service.registry.snapshot('room') === undefined, { what: 'the room to empty again' });

    await waitUntil(() => !broker.history.has('room'), { what: 'the history to expire' });
    const c2 = joinLogged(alice, 'room', { lastEventId: m1!.eventId });
    expect((await c2.conversation.next('resync')).reason).toBe('history_unavailable');
  });

  it('tracks every event with an id that increases strictly, as a string, within the epoch', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 200, presenceGraceMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol');
    const a = recordRaw(alice, 'room');
    await a.started();
    const b = recordRaw(bob, 'room');
    await b.started();
    const c = carol.join('room');
    await c.started;

    // Many ephemeral events in a row (typing on/off), between stored ones of every kind.
    for (let i = 0; i < 6; i += 1) {
      await carol.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
      await carol.trpc.typing.set.mutate({ conversationId: 'room', isTyping: false });
    }
    await carol.send('room', 'hello');
    await t.app.broadcastSystemEvent('room', 'sys', { x: 1 });
    await t.app.updateConversation('room', { title: 'T' });
    for (let i = 0; i < 6; i += 1) t.app.broadcastTyping('room', 'dave', i % 2 === 0);
    c.leave();
    await a.until((e) => e.event.type === 'user_left');
    const { eventId: last } = await t.app.broadcastSystemEvent('room', 'last');
    await a.until((e) => e.id === last);
    await b.until((e) => e.id === last);

    const types = new Set(a.events.map((e) => e.event.type));
    expect([...types].sort()).toEqual(['conversation_updated', 'message', 'system', 'typing', 'user_joined', 'user_left']);
    expect(a.events.filter((e) => e.event.type === 'typing').length).toBe(18);
    for (const e of a.events) expect(e.id).toMatch(/^\S+$/);
    expect(new Set(a.events.map((e) => epochOf(e.id))).size).toBe(1);
    expect(firstOutOfOrder(ids(a.events))).toBeNull();
    expect(firstOutOfOrder(ids(b.events))).toBeNull();
    // Events both received carry the same id on both connections.
    const bobIds = new Set(ids(b.events));
    const shared = a.events.filter((e) => e.event.type !== 'user_joined');
    expect(shared.every((e) => bobIds.has(e.id))).toBe(true);
  });

  it('answers an id from before a restart with resync history_unavailable (the history died with the process)', async () => {
    let lastId: string;
    {
      await using before = await startTestApp();
      const { eventId } = await before.app.broadcastSystemEvent('room', 'before-restart');
      lastId = eventId;
    }
    await using after = await startTestApp();
    const bob = await after.client('bob');
    const raw = recordRaw(bob, 'room', lastId);
    const first = await raw.until(() => true);
    expect(first.event).toMatchObject({ type: 'resync', reason: 'history_unavailable' });
    expect(epochOf(first.id)).not.toBe(epochOf(lastId));
  });
});
