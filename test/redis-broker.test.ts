import { Redis } from 'ioredis';
import superjson from 'superjson';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { RedisBroker, type RedisBrokerOptions } from '../src/cluster/redis-broker.ts';
import { ClusterKeys } from '../src/cluster/keys.ts';
import { RedisConnections, type RedisConnectionsEvents } from '../src/cluster/redis-connection.ts';
import { DomainError } from '../src/domain/errors.ts';
import type { RoomEnvelope, RoomEvent, RoomId } from '../src/domain/types.ts';
import { formatEventId, parseEventId, type ParsedEventId } from '../src/history/event-id.ts';
import { RoomHistory, type ResumeResult } from '../src/history/room-history.ts';
import { createLogger } from '../src/logger.ts';
import { deleteKeys, describeWithRedis, REDIS_URL, startRedisServer, uniquePrefix, type TestRedisServer } from './support/cluster.ts';
import { waitUntil } from './support/wait.ts';

/**
 * RedisBroker against a real Redis, with no mock of our code: each "node" is a RedisBroker over
 * its own RedisConnections (two ioredis connections), as in a cluster process. Outage tests use a
 * throwaway redis-server of their own. Every test has its own key prefix, deleted afterwards.
 */
describeWithRedis('RedisBroker', () => {
  const log = createLogger('silent');
  /** Run after each test, last registered first: nodes close before their keys and servers go. */
  const cleanups: Array<() => Promise<unknown>> = [];
  /** A plain client on the shared Redis for inspection (XLEN, PTTL, PUBSUB) and CLIENT KILL. */
  let admin: Redis;

  beforeAll(() => {
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  afterEach(async () => {
    const errors: unknown[] = [];
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch((error: unknown) => errors.push(error));
    if (errors.length > 0) throw errors[0];
  });
  afterAll(async () => {
    await admin.quit();
  });

  interface TestNode {
    broker: RedisBroker;
    connections: RedisConnections;
    keys: ClusterKeys;
  }

  /** A fresh key prefix whose keys are deleted after the test (while `url` still answers). */
  function usePrefix(label: string, url = REDIS_URL): string {
    const prefix = uniquePrefix(label);
    cleanups.push(() => deleteKeys(url, prefix));
    return prefix;
  }

  /** A throwaway redis-server, stopped after the test (after the nodes using it are closed). */
  async function useRedisServer(): Promise<TestRedisServer> {
    const server = await startRedisServer();
    cleanups.push(() => server.stop());
    return server;
  }

  /** One node: its own connections and broker, both closed after the test. Resolves once Redis is up. */
  async function openNode(name: string, prefix: string, options: Partial<RedisBrokerOptions> & { url?: string } = {}): Promise<TestNode> {
    const { url = REDIS_URL, ...brokerOptions } = options;
    const connections = new RedisConnections(url, log, name);
    const keys = new ClusterKeys(prefix);
    const broker = new RedisBroker({ redis: connections, keys, historySize: 1000, historyTtlMs: 60_000, log, ...brokerOptions });
    cleanups.push(async () => {
      await broker.close();
      await connections.close();
    });
    await connections.whenAvailable(5000);
    return { broker, connections, keys };
  }

  interface Recorder {
    /** Every envelope the listener got, in arrival order (re-sends included). */
    readonly envelopes: RoomEnvelope[];
    ids(): string[];
    resyncs(): RoomEnvelope[];
    /** The `n` of every `system` test event, in arrival order. */
    numbers(): number[];
    stop(): void;
  }

  function record(broker: RedisBroker, roomId: RoomId): Recorder {
    const envelopes: RoomEnvelope[] = [];
    const stop = broker.subscribe(roomId, (envelope) => envelopes.push(envelope));
    return {
      envelopes,
      ids: () => envelopes.map((e) => e.id),
      resyncs: () => envelopes.filter((e) => e.event.type === 'resync'),
      numbers: () => envelopes.flatMap((e) => (e.event.type === 'system' ? [numberOf(e.event)] : [])),
      stop,
    };
  }

  function systemEvent(roomId: RoomId, n: number): RoomEvent {
    return { type: 'system', conversationId: roomId, at: new Date(), event: 'test', data: { n } };
  }

  function typingEvent(roomId: RoomId, isTyping: boolean): RoomEvent {
    return { type: 'typing', conversationId: roomId, at: new Date(), userId: 'alice', isTyping };
  }

  function numberOf(event: RoomEvent): number {
    if (event.type !== 'system') throw new Error(`expected a system event, got ${event.type}`);
    return (event.data as { n: number }).n;
  }

  function parsed(id: string): ParsedEventId {
    const result = parseEventId(id);
    if (!result) throw new Error(`not an event id: ${JSON.stringify(id)}`);
    return result;
  }

  /** The first pair of ids that is not strictly increasing (same epoch, seq then sub), or null. */
  function firstNotIncreasing(ids: readonly string[]): [string, string] | null {
    for (let i = 1; i < ids.length; i += 1) {
      const a = parsed(ids[i - 1]!);
      const b = parsed(ids[i]!);
      if (a.epoch !== b.epoch || a.seq > b.seq || (a.seq === b.seq && a.sub >= b.sub)) return [ids[i - 1]!, ids[i]!];
    }
    return null;
  }

  /** Resolves with the next `name` event of the connections; fails after `timeoutMs`. */
  function nextConnectionEvent<TName extends keyof RedisConnectionsEvents>(
    connections: RedisConnections,
    name: TName,
    timeoutMs = 5000,
  ): Promise<RedisConnectionsEvents[TName]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`no '${String(name)}' event within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = connections.events.on(name, (payload) => {
        clearTimeout(timer);
        off();
        resolve(payload);
      });
    });
  }

  /** `kind`, `reason` and the replayed seqs of a resume answer: what must match between histories. */
  function shapeOf(result: ResumeResult): { kind: string; reason?: string; seqs?: number[] } {
    return result.kind === 'replay' ? { kind: 'replay', seqs: result.events.map((e) => parsed(e.id).seq) } : { kind: 'resync', reason: result.reason };
  }

  it('gives every node the same ids, strictly increasing, in stream order', async () => {
    const prefix = usePrefix('broker-order');
    const a = await openNode('order-a', prefix);
    const b = await openNode('order-b', prefix);
    const room = 'order';
    const onA = record(a.broker, room);
    const onB = record(b.broker, room);
    await Promise.all([a.broker.subscribed(room), b.broker.subscribed(room)]);

    // Both nodes publish at once, interleaved.
    const count = 200;
    const published = await Promise.all(Array.from({ length: count }, (_, n) => (n % 2 === 0 ? a : b).broker.publish(room, systemEvent(room, n), { store: true })));
    await waitUntil(() => onA.envelopes.length >= count && onB.envelopes.length >= count, { what: `both nodes to receive ${count} events` });
    // A marker published after everything: once it is in, any duplicate would have arrived too.
    const marker = await a.broker.publish(room, systemEvent(room, count), { store: true });
    await waitUntil(() => onA.ids().includes(marker.id) && onB.ids().includes(marker.id), { what: 'the marker on both nodes' });

    const ids = onA.ids();
    expect(ids).toHaveLength(count + 1);
    expect(onB.ids()).toEqual(ids);
    expect(onB.numbers()).toEqual(onA.numbers());
    expect(firstNotIncreasing(ids)).toBeNull();
    // A fresh room: seqs 1..count+1 of one epoch, without holes.
    expect(ids.map((id) => parsed(id).seq)).toEqual(Array.from({ length: count + 1 }, (_, i) => i + 1));
    // Every publish was answered with the id its event was delivered with.
    const delivered = new Map(onA.envelopes.map((e) => [e.id, numberOf(e.event)]));
    expect(published.map((e) => delivered.get(e.id))).toEqual(Array.from({ length: count }, (_, n) => n));
    expect(new Set(onA.numbers()).size).toBe(count + 1);
    // The stream holds the same events in the same order: stream order is delivery order.
    const entries = await admin.xrange(a.keys.roomStream(room), '-', '+');
    const streamed = entries.map(([streamId, fields]) => ({ seq: Number(streamId.split('-')[0]), n: numberOf(superjson.parse<{ event: RoomEvent }>(fields[1]!).event) }));
    expect(streamed).toEqual(onA.envelopes.map((e) => ({ seq: parsed(e.id).seq, n: numberOf(e.event) })));
    expect(onA.resyncs()).toEqual([]);
  });

  it('keeps HISTORY_SIZE stored events and answers resume like the in-memory history', async () => {
    const prefix = usePrefix('broker-history');
    const ttlMs = 10_000;
    const a = await openNode('history-a', prefix, { historySize: 5, historyTtlMs: ttlMs });
    const b = await openNode('history-b', prefix, { historySize: 5, historyTtlMs: ttlMs });
    const room = 'history';
    const onB = record(b.broker, room);
    await b.broker.subscribed(room);

    const published: RoomEnvelope[] = [];
    for (let n = 1; n <= 12; n += 1) published.push(await a.broker.publish(room, systemEvent(room, n), { store: true }));
    const idOf = (n: number) => published[n - 1]!.id;
    const { epoch } = parsed(idOf(1));
    expect(await admin.xlen(a.keys.roomStream(room))).toBe(5);

    // On the other node: events 9..12 after event 8; 8 (the oldest kept) is enough for event 7.
    const after8 = await b.broker.readSince(room, idOf(8));
    expect(after8.kind).toBe('replay');
    expect(after8.head).toBe(idOf(12));
    if (after8.kind === 'replay') {
      expect(after8.events.map((e) => e.id)).toEqual([idOf(9), idOf(10), idOf(11), idOf(12)]);
      expect(after8.events.map((e) => e.event)).toEqual(published.slice(8).map((e) => e.event));
    }
    expect(shapeOf(await b.broker.readSince(room, idOf(7)))).toEqual({ kind: 'replay', seqs: [8, 9, 10, 11, 12] });
    expect(shapeOf(await b.broker.readSince(room, idOf(12)))).toEqual({ kind: 'replay', seqs: [] });
    expect(await b.broker.readSince(room, idOf(3))).toEqual({ kind: 'resync', reason: 'history_truncated', head: idOf(12) });
    expect(shapeOf(await b.broker.readSince(room, idOf(6)))).toEqual({ kind: 'resync', reason: 'history_truncated' });
    const otherEpoch = epoch === 'otherepoch' ? 'anotherepoch' : 'otherepoch';
    expect(await b.broker.readSince(room, formatEventId(otherEpoch, 8))).toEqual({ kind: 'resync', reason: 'history_unavailable', head: idOf(12) });
    expect(await b.broker.readSince(room, formatEventId(epoch, 13))).toEqual({ kind: 'resync', reason: 'unknown_event_id', head: idOf(12) });
    expect(await b.broker.readSince(room, formatEventId(epoch, 12, 1))).toEqual({ kind: 'resync', reason: 'unknown_event_id', head: idOf(12) });
    expect(await b.broker.readSince(room, 'not an id')).toEqual({ kind: 'resync', reason: 'unknown_event_id', head: idOf(12) });
    expect(await b.broker.head(room)).toBe(idOf(12));

    // Same answers as the in-memory history after the same 12 events, for every seq 0..13.
    const memory = new RoomHistory({ size: 5, ttlMs });
    for (let n = 1; n <= 12; n += 1) memory.append(room, systemEvent(room, n), {}, true);
    const memoryEpoch = parsed(memory.head(room)).epoch;
    for (let seq = 0; seq <= 13; seq += 1) {
      expect(shapeOf(await b.broker.readSince(room, formatEventId(epoch, seq))), `readSince seq ${seq}`).toEqual(shapeOf(memory.readSince(room, formatEventId(memoryEpoch, seq))));
    }

    for (const key of [a.keys.roomMeta(room), a.keys.roomStream(room)]) {
      const pttl = await admin.pttl(key);
      expect(pttl, key).toBeGreaterThan(0);
      expect(pttl, key).toBeLessThanOrEqual(ttlMs);
    }

    // Ephemeral events: `<epoch>:<seq>.<sub>` after the last stored one, delivered, not stored.
    const typing1 = await a.broker.publish(room, typingEvent(room, true), { store: false });
    const typing2 = await a.broker.publish(room, typingEvent(room, false), { store: false });
    expect([typing1.id, typing2.id]).toEqual([formatEventId(epoch, 12, 1), formatEventId(epoch, 12, 2)]);
    expect(typing1.id).toMatch(/^[A-Za-z0-9]+:\d{12}\.\d{12}$/);
    expect(await admin.xlen(a.keys.roomStream(room))).toBe(5);
    expect(await b.broker.head(room)).toBe(typing2.id);
    expect(await b.broker.readSince(room, typing1.id)).toEqual({ kind: 'replay', events: [], head: typing2.id });
    const thirteen = await a.broker.publish(room, systemEvent(room, 13), { store: true });
    expect(thirteen.id).toBe(formatEventId(epoch, 13));
    expect(shapeOf(await b.broker.readSince(room, typing2.id))).toEqual({ kind: 'replay', seqs: [13] });
    const typing3 = await a.broker.publish(room, typingEvent(room, true), { store: false });
    expect(typing3.id).toBe(formatEventId(epoch, 13, 1));

    // Node B received all of it live, in order, ephemeral events included.
    await waitUntil(() => onB.ids().includes(typing3.id), { what: 'the last typing event on node B' });
    expect(onB.ids()).toEqual([...published.map((e) => e.id), typing1.id, typing2.id, thirteen.id, typing3.id]);
    expect(onB.envelopes.filter((e) => e.event.type === 'typing').map((e) => e.event)).toEqual([typing1.event, typing2.event, typing3.event]);
  });

  it('forgets an idle room HISTORY_TTL_MS after its last event', async () => {
    const prefix = usePrefix('broker-ttl');
    const ttlMs = 300;
    const a = await openNode('ttl-a', prefix, { historyTtlMs: ttlMs });
    const b = await openNode('ttl-b', prefix, { historyTtlMs: ttlMs });
    const room = 'expiring';
    const first = await a.broker.publish(room, systemEvent(room, 1), { store: true });
    await a.broker.publish(room, systemEvent(room, 2), { store: true });
    const keys = [a.keys.roomMeta(room), a.keys.roomStream(room)];
    expect(await admin.exists(...keys)).toBe(2);

    await expect.poll(() => admin.exists(...keys), { timeout: 3000, interval: 20 }).toBe(0);
    const result = await b.broker.readSince(room, first.id);
    expect(result).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
    expect(parsed(result.head).epoch).not.toBe(parsed(first.id).epoch);
  });

  // An ephemeral publish keeps the whole history alive, stream included, as RoomHistory does.
  it('keeps the stored events of an idle room while ephemeral events keep it alive, like RoomHistory', async () => {
    const prefix = usePrefix('broker-ephemeral-ttl');
    const ttlMs = 300;
    const a = await openNode('ephemeral-ttl-a', prefix, { historyTtlMs: ttlMs });
    const b = await openNode('ephemeral-ttl-b', prefix, { historyTtlMs: ttlMs });
    const room = 'typing-only';
    let now = 0;
    const memory = new RoomHistory({ size: 1000, ttlMs, now: () => now });
    const first = await a.broker.publish(room, systemEvent(room, 1), { store: true });
    await a.broker.publish(room, systemEvent(room, 2), { store: true });
    const memoryFirst = memory.append(room, systemEvent(room, 1), {}, true);
    memory.append(room, systemEvent(room, 2), {}, true);
    // Only ephemeral events for three TTLs, one every TTL/3.
    for (let i = 0; i < 9; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, ttlMs / 3));
      await a.broker.publish(room, typingEvent(room, i % 2 === 0), { store: false });
      now += ttlMs / 3;
      memory.append(room, typingEvent(room, i % 2 === 0), {}, false);
      memory.sweep();
    }
    expect(shapeOf(memory.readSince(room, memoryFirst.id))).toEqual({ kind: 'replay', seqs: [2] });
    expect(shapeOf(await b.broker.readSince(room, first.id)), 'resume after event 1').toEqual({ kind: 'replay', seqs: [2] });
    expect(await admin.exists(a.keys.roomMeta(room), a.keys.roomStream(room)), 'meta and stream keys').toBe(2);
  });

  it('keeps an active room past HISTORY_TTL_MS, and lets it expire once idle', async () => {
    const prefix = usePrefix('broker-active');
    const ttlMs = 300;
    const a = await openNode('active-a', prefix, { historyTtlMs: ttlMs });
    const b = await openNode('active-b', prefix, { historyTtlMs: ttlMs });
    const room = 'active';
    a.broker.roomActive(room);
    const first = await a.broker.publish(room, systemEvent(room, 1), { store: true });
    const second = await a.broker.publish(room, systemEvent(room, 2), { store: true });
    const keys = [a.keys.roomMeta(room), a.keys.roomStream(room)];

    // Three TTLs without an event: the refresh timer must keep both keys the whole time.
    const until = Date.now() + 3 * ttlMs;
    while (Date.now() < until) {
      expect(await admin.exists(...keys)).toBe(2);
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    const result = await b.broker.readSince(room, first.id);
    expect(shapeOf(result)).toEqual({ kind: 'replay', seqs: [2] });
    expect(result.head).toBe(second.id);

    a.broker.roomIdle(room);
    await expect.poll(() => admin.exists(...keys), { timeout: 3000, interval: 20 }).toBe(0);
    expect(await b.broker.readSince(room, second.id)).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
  });

  it('fills the gap from the stream after its subscriber connection was lost', async () => {
    const prefix = usePrefix('broker-gap');
    const a = await openNode('gap-a', prefix);
    const b = await openNode('gap-b', prefix);
    const room = 'gap';
    // CLIENT ID is not allowed once the connection subscribes: ask first.
    const subId = await b.connections.sub.client('ID');
    const onB = record(b.broker, room);
    await b.broker.subscribed(room);

    const before: RoomEnvelope[] = [];
    for (let n = 0; n < 5; n += 1) before.push(await a.broker.publish(room, systemEvent(room, n), { store: true }));
    await waitUntil(() => onB.envelopes.length >= 5, { what: 'node B to receive the first events' });

    const down = nextConnectionEvent(b.connections, 'down');
    const up = nextConnectionEvent(b.connections, 'up');
    expect(await admin.call('CLIENT', 'KILL', 'ID', String(subId))).toBe(1);
    await down;
    expect(b.broker.available).toBe(false);
    // ioredis waits at least 50 ms before reconnecting: these all go out while B hears nothing.
    const missed = await Promise.all(Array.from({ length: 50 }, (_, i) => a.broker.publish(room, systemEvent(room, 5 + i), { store: true })));
    await up;

    // Nothing else is published: the reconnect alone must bring B what it missed.
    const all = [...before, ...missed];
    await waitUntil(() => onB.envelopes.length >= all.length, { what: `node B to receive all ${all.length} events`, timeoutMs: 5000 });
    // After reconnecting B receives live again; anything duplicated would precede this marker.
    const marker = await a.broker.publish(room, systemEvent(room, 55), { store: true });
    await waitUntil(() => onB.ids().includes(marker.id), { what: 'the marker on node B' });

    expect(onB.ids()).toEqual([...all, marker].map((e) => e.id));
    expect(onB.numbers()).toEqual(Array.from({ length: 56 }, (_, n) => n));
    expect(onB.resyncs()).toEqual([]);
    expect(b.broker.counters).toMatchObject({ resyncs: 0 });
    expect(b.broker.counters.gapsFilled).toBeGreaterThanOrEqual(1);
  });

  it('fills a gap in what pub/sub delivered from the stream, before later events and without duplicates', async () => {
    const prefix = usePrefix('broker-lost');
    const a = await openNode('lost-a', prefix);
    const b = await openNode('lost-b', prefix);
    const room = 'lost';
    const onB = record(b.broker, room);
    await b.broker.subscribed(room);
    const first = await a.broker.publish(room, systemEvent(room, 1), { store: true });
    await waitUntil(() => onB.ids().includes(first.id), { what: 'event 1 on node B' });

    // Pub/sub is at-most-once: B's connection stops listening (behind the broker's back) while
    // event 2 is published, so only the stream has it.
    const channel = b.keys.roomChannel(room);
    await b.connections.sub.sunsubscribe(channel);
    const lost = await a.broker.publish(room, systemEvent(room, 2), { store: true });
    await b.connections.sub.ssubscribe(channel);
    // Event 3 reveals the gap; the fill reads 2..4 while 3 (and maybe 4) also arrive live.
    const later = await Promise.all([3, 4].map((n) => a.broker.publish(room, systemEvent(room, n), { store: true })));
    const marker = await a.broker.publish(room, systemEvent(room, 5), { store: true });
    await waitUntil(() => onB.ids().includes(marker.id), { what: 'the marker on node B' });

    expect(onB.ids()).toEqual([first, lost, ...later, marker].map((e) => e.id));
    expect(onB.numbers()).toEqual([1, 2, 3, 4, 5]);
    expect(b.broker.counters).toMatchObject({ gapsFilled: 1, resyncs: 0 });
  });

  it('tells subscribers resync exactly once when Redis restarts empty', async () => {
    const redis = await useRedisServer();
    const prefix = usePrefix('broker-restart', redis.url);
    const a = await openNode('restart-a', prefix, { url: redis.url });
    const b = await openNode('restart-b', prefix, { url: redis.url });
    const room = 'restart';
    const onA = record(a.broker, room);
    const onB = record(b.broker, room);
    await Promise.all([a.broker.subscribed(room), b.broker.subscribed(room)]);
    const before: RoomEnvelope[] = [];
    for (let n = 0; n < 3; n += 1) before.push(await a.broker.publish(room, systemEvent(room, n), { store: true }));
    await waitUntil(() => onA.envelopes.length === 3 && onB.envelopes.length === 3, { what: 'the first events on both nodes' });
    const oldEpoch = parsed(before[0]!.id).epoch;

    await redis.stop();
    await waitUntil(() => !a.broker.available && !b.broker.available, { what: 'both nodes to notice the outage' });
    await redis.start();
    await waitUntil(() => onA.resyncs().length > 0 && onB.resyncs().length > 0, { what: 'a resync on both nodes', timeoutMs: 10_000 });
    await a.connections.whenAvailable(10_000);

    const after: RoomEnvelope[] = [];
    for (let n = 3; n < 6; n += 1) after.push(await a.broker.publish(room, systemEvent(room, n), { store: true }));
    const last = after.at(-1)!.id;
    await waitUntil(() => onA.ids().includes(last) && onB.ids().includes(last), { what: 'the events after the restart on both nodes' });

    for (const [name, got, broker] of [['A', onA, a.broker], ['B', onB, b.broker]] as const) {
      const resyncs = got.resyncs();
      expect(resyncs, `resyncs on node ${name}`).toHaveLength(1);
      const resync = resyncs[0]!;
      expect(resync.event).toMatchObject({ type: 'resync', reason: 'history_unavailable', conversationId: room });
      const newEpoch = parsed(resync.id).epoch;
      expect(newEpoch).not.toBe(oldEpoch);
      // Old events, then the resync, then the new ones in the new epoch, after the resync's head.
      expect(got.ids()).toEqual([...before.map((e) => e.id), resync.id, ...after.map((e) => e.id)]);
      expect(after.every((e) => parsed(e.id).epoch === newEpoch)).toBe(true);
      expect(firstNotIncreasing([resync.id, ...after.map((e) => e.id)])).toBeNull();
      expect(broker.counters.resyncs).toBe(1);
    }
  });

  it('refuses to publish while Redis is down, and publishes queued internal events in order when it is back', async () => {
    const redis = await useRedisServer();
    const prefix = usePrefix('broker-outbox', redis.url);
    const a = await openNode('outbox-a', prefix, { url: redis.url });
    const room = 'outbox';
    const onA = record(a.broker, room);
    await a.broker.subscribed(room);
    const first = await a.broker.publish(room, systemEvent(room, 0), { store: true });
    await waitUntil(() => onA.ids().includes(first.id), { what: 'the first event' });

    await redis.stop();
    await waitUntil(() => !a.broker.available, { what: 'the node to notice the outage' });
    const refused = await a.broker.publish(room, systemEvent(room, -1), { store: true }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(DomainError);
    expect(refused).toMatchObject({ code: 'UNAVAILABLE' });
    await expect(a.broker.head(room)).rejects.toMatchObject({ code: 'UNAVAILABLE' });

    const queued = [1, 2, 3, 4, 5];
    for (const n of queued) {
      await expect(a.broker.publish(room, systemEvent(room, n), { store: true, queueWhileUnavailable: true })).resolves.toMatchObject({ event: { data: { n } } });
    }
    expect(a.broker.outboxSize).toBe(queued.length);

    await redis.start();
    await waitUntil(() => onA.numbers().length >= 1 + queued.length, { what: 'the queued events to be delivered', timeoutMs: 10_000 });
    expect(a.broker.outboxSize).toBe(0);
    expect(onA.numbers()).toEqual([0, ...queued]);
    // Redis came back empty: the subscriber is told so before the queued events of the new epoch.
    const resync = onA.resyncs();
    expect(resync).toHaveLength(1);
    const sinceResync = onA.ids().slice(onA.ids().indexOf(resync[0]!.id));
    expect(sinceResync).toHaveLength(1 + queued.length);
    expect(firstNotIncreasing(sinceResync)).toBeNull();
    // Published in order, and stored.
    const entries = await a.connections.cmd.xrange(a.keys.roomStream(room), '-', '+');
    expect(entries.map(([, fields]) => numberOf(superjson.parse<{ event: RoomEvent }>(fields[1]!).event))).toEqual(queued);
  });

  // QUIT waits behind ioredis' offline queue: close() must not wait for a Redis that is gone.
  it('closes its connections while Redis is down, also after a room was left during the outage', async () => {
    const redis = await useRedisServer();
    const prefix = usePrefix('broker-close', redis.url);
    const a = await openNode('close-a', prefix, { url: redis.url });
    const room = 'close';
    const leave = a.broker.subscribe(room, () => undefined);
    await a.broker.subscribed(room);

    await redis.stop();
    await waitUntil(() => !a.broker.available, { what: 'the node to notice the outage' });
    leave();
    await a.broker.close();
    const closing = a.connections.close();
    const outcome = await Promise.race([closing.then(() => 'closed'), new Promise((resolve) => setTimeout(() => resolve('still closing after 1 s'), 1000))]);
    // Let a hanging close finish first, so that the cleanup does not hang on it too.
    await redis.start();
    await closing;
    expect(outcome).toBe('closed');
  });

  it('subscribes to a room only while it has local listeners', async () => {
    const prefix = usePrefix('broker-subs');
    const a = await openNode('subs-a', prefix);
    const b = await openNode('subs-b', prefix);
    const room = 'subs';
    const other = 'subs-other';
    const channel = a.keys.roomChannel(room);
    const subscribers = async (ch: string) => ((await admin.call('PUBSUB', 'SHARDNUMSUB', ch)) as [string, number])[1];

    const first = record(a.broker, room);
    const second = record(a.broker, room);
    const onOther = record(a.broker, other);
    const onB = record(b.broker, room);
    await Promise.all([a.broker.subscribed(room), a.broker.subscribed(other), b.broker.subscribed(room)]);
    expect(await subscribers(channel)).toBe(2); // one per node, however many local listeners
    expect(a.broker.subscribedRooms()).toBe(2);

    // One of two listeners leaves: the node stays subscribed and the other still receives.
    first.stop();
    expect(a.broker.subscribedRooms()).toBe(2);
    const kept = await b.broker.publish(room, systemEvent(room, 1), { store: true });
    await waitUntil(() => second.ids().includes(kept.id) && onB.ids().includes(kept.id), { what: 'the event on the remaining listeners' });
    expect(await subscribers(channel)).toBe(2);
    expect(first.ids()).toEqual([]);

    // The last local listener leaves: node A unsubscribes the room, node B keeps it.
    second.stop();
    expect(a.broker.subscribedRooms()).toBe(1);
    await expect.poll(() => subscribers(channel), { timeout: 3000, interval: 10 }).toBe(1);
    expect(await subscribers(a.keys.roomChannel(other))).toBe(1);
    onOther.stop();
    onB.stop();
    expect(a.broker.subscribedRooms()).toBe(0);
    expect(b.broker.subscribedRooms()).toBe(0);
    await expect.poll(() => subscribers(channel), { timeout: 3000, interval: 10 }).toBe(0);
    await expect.poll(() => subscribers(a.keys.roomChannel(other)), { timeout: 3000, interval: 10 }).toBe(0);

    // Subscribing again works, also right after an unsubscribe.
    const again = record(a.broker, room);
    await a.broker.subscribed(room);
    expect(await subscribers(channel)).toBe(1);
    const later = await b.broker.publish(room, systemEvent(room, 2), { store: true });
    await waitUntil(() => again.ids().includes(later.id), { what: 'the event after subscribing again' });
    expect(again.ids()).toEqual([later.id]);
    again.stop();
    await expect.poll(() => subscribers(channel), { timeout: 3000, interval: 10 }).toBe(0);
  });
});
