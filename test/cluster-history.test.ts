import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createChatClient, type ChatClient, type HistoryPage } from '../clients/chat/index.ts';
import { ClusterKeys } from '../src/cluster/keys.ts';
import { RedisBroker } from '../src/cluster/redis-broker.ts';
import { RedisConnections } from '../src/cluster/redis-connection.ts';
import type { Audience, RoomEnvelope, RoomEvent } from '../src/domain/types.ts';
import { formatEventId } from '../src/history/event-id.ts';
import { RoomHistory, type AcceptEnvelope, type StoredPage } from '../src/history/room-history.ts';
import { createLogger } from '../src/logger.ts';
import { deleteKeys, describeWithRedis, REDIS_BACKENDS, REDIS_URL, startCluster, startNode, startRedisServer, uniquePrefix, useRedisBackend, type ClusterNode, type TestCluster } from './support/cluster.ts';
import { bodies, recordRaw, waitUntil, type RecordedEvent } from './support/wait.ts';

/**
 * Scrollback in a cluster (issue 13): `conversation.history` reads the room's Redis stream — the
 * history resume uses — so a page read through any node has the ids and order every subscriber
 * saw, and the HISTORY_SIZE window behaves exactly like the in-memory one. On one Redis and on
 * a three-master Redis Cluster.
 */
describeWithRedis.each(REDIS_BACKENDS)('scrollback across nodes on $backend', ({ redisCluster }) => {
  const backend = useRedisBackend(redisCluster);
  const HISTORY_SIZE = 10;
  let cluster: TestCluster;
  let single: ClusterNode;
  let n1: ClusterNode;
  let n2: ClusterNode;
  const clients: ChatClient[] = [];

  beforeAll(async () => {
    const env = { HISTORY_SIZE: String(HISTORY_SIZE) };
    // Generous start timeouts: the machine may be busy (process starts compete for two cores).
    const redis = backend();
    [cluster, single] = await Promise.all([
      startCluster({ nodes: 2, label: 'history', env, startTimeoutMs: 60_000, ...(redis && { redisCluster: redis }) }),
      startNode({ env, startTimeoutMs: 60_000 }),
    ]);
    [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  }, 90_000);
  afterAll(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
    await Promise.allSettled([cluster?.close(), single?.stop()]);
  });

  async function client(node: ClusterNode, userId: string): Promise<ChatClient> {
    const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 20 });
    clients.push(c);
    return c;
  }

  async function pageAll(read: (before: string | undefined) => Promise<HistoryPage>): Promise<HistoryPage[]> {
    const pages: HistoryPage[] = [];
    let before: string | undefined;
    do {
      const page = await read(before);
      pages.push(page);
      before = page.nextBefore ?? undefined;
    } while (before !== undefined && pages.length < 50);
    return pages;
  }

  /** alice sends m1..m15 through `sender`; bob subscribes through `watcher`; carol pages through `reader`. */
  async function scenario(sender: ClusterNode, watcher: ClusterNode, reader: ClusterNode, room: string) {
    const alice = await client(sender, 'alice');
    const bob = await client(watcher, 'bob');
    const live = recordRaw(bob, room);
    await live.started();
    await alice.join(room).started;
    for (let i = 1; i <= 15; i += 1) await alice.send(room, `m${i}`);
    await live.until((e) => e.event.type === 'message' && e.event.message.body === 'm15');
    const carol = await client(reader, 'carol'); // never joins
    const pages = await pageAll((before) => carol.history(room, { limit: 4, ...(before !== undefined && { before }) }));
    return { live: live.events, pages, newestFirst: pages.flatMap((p) => p.events.map(({ id, event }): RecordedEvent => ({ id, event }))) };
  }

  it('pages messages sent through node A back through node B, in the same order with the ids subscribers saw; the HISTORY_SIZE window as in memory', async () => {
    const { live, pages, newestFirst } = await scenario(n1, n2, n2, 'scroll');
    const expected = Array.from({ length: 10 }, (_, i) => `m${15 - i}`);
    expect(pages.map((p) => p.events.length)).toEqual([4, 4, 2]);
    expect(pages.map((p) => p.nextBefore)).toEqual([pages[0]!.events[3]!.id, pages[1]!.events[3]!.id, null]);
    expect(bodies(newestFirst)).toEqual(expected);
    // The very events bob's stream on node B carried, ids included.
    const liveById = new Map(live.map((e) => [e.id, e]));
    for (const entry of newestFirst) expect(liveById.get(entry.id)).toEqual(entry);
    // Read through node A, the page is the same.
    const carolOnA = await client(n1, 'carol');
    expect((await carolOnA.history('scroll', { limit: 4 })).events).toEqual(pages[0]!.events);

    // One node without Redis, the same scenario: the same window, the same pages.
    const memory = await (async () => {
      const token = (user: string) => cluster.token(user);
      const alice = createChatClient({ url: single.wsUrl, token: await token('alice'), retryDelayMs: () => 20 });
      const carol = createChatClient({ url: single.wsUrl, token: await token('carol'), retryDelayMs: () => 20 });
      clients.push(alice, carol);
      await alice.join('scroll').started;
      for (let i = 1; i <= 15; i += 1) await alice.send('scroll', `m${i}`);
      return pageAll((before) => carol.history('scroll', { limit: 4, ...(before !== undefined && { before }) }));
    })();
    expect(memory.map((p) => p.events.length)).toEqual([4, 4, 2]);
    expect(bodies(memory.flatMap((p) => p.events))).toEqual(expected);
    expect(memory.map((p) => p.nextBefore === null)).toEqual([false, false, true]);
  });

  it('reading an unknown room through a node creates no Redis keys; a `before` of another epoch is an empty page', async () => {
    const carol = await client(n2, 'carol');
    const keys = new ClusterKeys(cluster.prefix);
    const onCluster = backend();
    const redis = onCluster ? onCluster.client() : new Redis(cluster.redisUrl, { maxRetriesPerRequest: 1 });
    try {
      expect(await carol.history('nobody-ever')).toEqual({ events: [], nextBefore: null });
      expect(await carol.history('nobody-ever', { before: formatEventId('abc', 7) })).toEqual({ events: [], nextBefore: null });
      expect(await redis.exists(keys.roomMeta('nobody-ever'), keys.roomStream('nobody-ever'))).toBe(0);

      const alice = await client(n1, 'alice');
      await alice.join('epochs').started;
      await alice.send('epochs', 'hello');
      const page = await carol.history('epochs', { types: ['message'] });
      expect(bodies(page.events)).toEqual(['hello']);
      const epoch = page.events[0]!.id.split(':')[0]!;
      expect(await carol.history('epochs', { before: formatEventId(`${epoch}x`, 99) })).toEqual({ events: [], nextBefore: null });
      expect(await carol.history('epochs', { before: formatEventId(epoch, 999) }).then((p) => bodies(p.events))).toEqual(['hello']);
    } finally {
      if (!onCluster) redis.disconnect(); // the Redis Cluster's client is closed with it
    }
  });
});

/**
 * The Redis read against the in-memory one, event for event: both histories fed the same events
 * (with audiences, ephemeral ones between), then asked the same pages — through chunked
 * XREVRANGE reads, filters and an epoch change. Real Redis, no mock of our code.
 */
describeWithRedis('RedisBroker.readBefore against RoomHistory.readBefore', () => {
  const log = createLogger('silent');
  const prefix = uniquePrefix('history-unit');
  let connections: RedisConnections;
  let broker: RedisBroker;
  let admin: Redis;

  beforeAll(async () => {
    connections = new RedisConnections(REDIS_URL, log, 'history-unit');
    broker = new RedisBroker({ redis: connections, keys: new ClusterKeys(prefix), historySize: 100, historyTtlMs: 60_000, log });
    admin = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    await connections.whenAvailable(5000);
  });
  afterAll(async () => {
    await broker?.close();
    await connections?.close();
    admin?.disconnect();
    await deleteKeys(REDIS_URL, prefix);
  });

  const event = (room: string, n: number): RoomEvent =>
    n % 3 === 0
      ? { type: 'message', conversationId: room, at: new Date(1_000 + n), message: { id: `id${n}`, senderId: 'alice', body: `m${n}`, sentAt: new Date(1_000 + n), ackRequired: false } }
      : { type: 'system', conversationId: room, at: new Date(1_000 + n), event: `s${n}`, data: { n } };
  const audience = (n: number): Audience => (n % 5 === 0 ? { onlyUsers: ['alice'] } : n % 7 === 0 ? { exceptConnection: 'c1' } : {});
  /** Comparable across the two histories: the seq part of the id, and the event. */
  const shape = (page: StoredPage) => ({ more: page.more, events: page.events.map((e: RoomEnvelope) => [e.id.slice(e.id.indexOf(':')), e.event, e.audience]) });

  it('answers every page exactly like memory: windows, bounds, filters, chunks', async () => {
    const room = 'same';
    const memory = new RoomHistory({ size: 100, ttlMs: 60_000 });
    for (let n = 1; n <= 130; n += 1) {
      memory.append(room, event(room, n), audience(n), true);
      await broker.publish(room, event(room, n), { audience: audience(n), store: true });
      if (n % 11 === 0) {
        const typing: RoomEvent = { type: 'typing', conversationId: room, at: new Date(), userId: 'bob', isTyping: true };
        memory.append(room, typing, { exceptUser: 'bob' }, false);
        await broker.publish(room, typing, { audience: { exceptUser: 'bob' }, store: false });
      }
    }
    const memoryEpoch = memory.head(room).split(':')[0]!;
    const redisEpoch = (await broker.head(room)).split(':')[0]!;
    const filters: Array<[string, AcceptEnvelope]> = [
      ['all', () => true],
      ['messages', (e) => e.event.type === 'message'],
      ['rare', (e) => e.event.type === 'system' && (e.event.data as { n: number }).n % 17 === 0],
      ['bob sees', (e) => !e.audience.onlyUsers || e.audience.onlyUsers.includes('bob')],
    ];
    let compared = 0;
    for (const [name, accept] of filters) {
      for (const limit of [1, 3, 50, 100]) {
        for (const seq of [null, 131, 130, 100, 64, 40, 31, 30, 2, 1]) {
          for (const sub of seq === null ? [0] : [0, 1]) {
            const at = (epoch: string) => (seq === null ? null : formatEventId(epoch, seq, sub));
            const fromMemory = memory.readBefore(room, at(memoryEpoch), limit, accept);
            const fromRedis = await broker.readBefore(room, at(redisEpoch), limit, accept);
            expect(shape(fromRedis), `${name}, limit ${limit}, before ${seq}.${sub}`).toEqual(shape(fromMemory));
            compared += fromMemory.events.length;
          }
        }
      }
    }
    expect(compared).toBeGreaterThan(1000);
    // The window: the oldest kept is seq 31 (130 stored, 100 kept), on both.
    const everything = await broker.readBefore(room, null, 100);
    expect(everything.events.at(-1)!.id).toBe(formatEventId(redisEpoch, 31));
    expect(everything.more).toBe(false);
    // Another epoch, a foreign id: nothing.
    expect(await broker.readBefore(room, formatEventId(memoryEpoch, 50), 10)).toEqual({ events: [], more: false });
    expect(await broker.readBefore(room, 'garbage', 10)).toEqual({ events: [], more: false });
  });

  it('creates nothing and touches no TTL when reading', async () => {
    const keys = new ClusterKeys(prefix);
    expect(await broker.readBefore('ghost', null, 10)).toEqual({ events: [], more: false });
    expect(await broker.readBefore('ghost', formatEventId('e', 5), 10)).toEqual({ events: [], more: false });
    expect(await admin.exists(keys.roomMeta('ghost'), keys.roomStream('ghost'))).toBe(0);

    await broker.publish('ttl', event('ttl', 1), { store: true });
    await admin.pexpire(keys.roomStream('ttl'), 30_000);
    await admin.pexpire(keys.roomMeta('ttl'), 30_000);
    expect((await broker.readBefore('ttl', null, 10)).events).toHaveLength(1);
    expect(await admin.pttl(keys.roomStream('ttl'))).toBeLessThanOrEqual(30_000);
    expect(await admin.pttl(keys.roomMeta('ttl'))).toBeLessThanOrEqual(30_000);
  });

  it('refuses with a retryable UNAVAILABLE while Redis is unreachable', async () => {
    await using server = await startRedisServer();
    const outage = new RedisConnections(server.url, log, 'history-outage');
    const outageBroker = new RedisBroker({ redis: outage, keys: new ClusterKeys(prefix), historySize: 10, historyTtlMs: 60_000, log });
    try {
      await outage.whenAvailable(5000);
      await outageBroker.publish('down', event('down', 3), { store: true });
      expect((await outageBroker.readBefore('down', null, 10)).events).toHaveLength(1);
      await server.stop();
      await waitUntil(() => !outage.available, { what: 'the broker to notice Redis is gone' });
      await expect(outageBroker.readBefore('down', null, 10)).rejects.toMatchObject({ code: 'UNAVAILABLE', retryAfterMs: 1000 });
    } finally {
      await outageBroker.close();
      await outage.close();
    }
  });

  it('answers an empty page for a `before` from a lost history (the room restarted under a new epoch)', async () => {
    const room = 'lost';
    const keys = new ClusterKeys(prefix);
    for (let n = 1; n <= 60; n += 1) await broker.publish(room, event(room, n), { store: true });
    const head = await broker.head(room);
    // The history is lost (expiry, a Redis restart) and the room starts over.
    await admin.del(keys.roomMeta(room), keys.roomStream(room));
    await broker.publish(room, event(room, 1), { store: true });
    expect(await broker.readBefore(room, head, 10)).toEqual({ events: [], more: false });
    const fresh = await broker.readBefore(room, null, 10);
    expect(fresh.events).toHaveLength(1);
    expect(fresh.events[0]!.id.split(':')[0]).not.toBe(head.split(':')[0]);
  });
});
