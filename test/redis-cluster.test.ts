import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClusterKeys } from '../src/cluster/keys.ts';
import { RedisBroker } from '../src/cluster/redis-broker.ts';
import { RedisConnections } from '../src/cluster/redis-connection.ts';
import type { RoomEnvelope, RoomEvent } from '../src/domain/types.ts';
import { createLogger } from '../src/logger.ts';
import { redisClusterAvailable, startRedisCluster, type TestRedisCluster } from './support/redis-cluster.ts';
import { waitUntil } from './support/wait.ts';

/**
 * The cluster broker on a real three-master Redis Cluster, in process (a RedisBroker over its
 * own RedisConnections, as in a node): rooms really spread over the shards, a room's publish and
 * its subscription go to the shard that owns the room's hash tag, and a shard that restarts
 * (empty) is an outage the node recovers from as from a Redis outage.
 */
describe.skipIf(!redisClusterAvailable)('on a three-master Redis Cluster', () => {
  const log = createLogger('silent');
  let redis: TestRedisCluster;
  let connections: RedisConnections;
  let broker: RedisBroker;
  const keys = new ClusterKeys('rc:');

  beforeAll(async () => {
    redis = await startRedisCluster();
    connections = new RedisConnections({ url: redis.url, cluster: true }, log, 'rc-test');
    broker = new RedisBroker({ redis: connections, keys, historySize: 100, historyTtlMs: 60_000, log });
    await connections.whenAvailable(20_000);
  }, 60_000);
  afterAll(async () => {
    await broker?.close();
    await connections?.close();
    await redis?.stop();
  });

  const system = (roomId: string, n: number): RoomEvent => ({ type: 'system', conversationId: roomId, at: new Date(), event: 'test', data: { n } });

  /** The index (into redis.ports) of the master that owns `key`'s slot, asked of the cluster itself. */
  async function ownerOf(key: string): Promise<number> {
    const [first] = redis.masters();
    const slot = Number(await first!.cluster('KEYSLOT', key));
    const shards = (await first!.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number, ...unknown[]]]>;
    const range = shards.find(([from, to]) => slot >= from && slot <= to)!;
    return redis.ports.indexOf(range[2][1]);
  }

  it('spreads rooms over the shards, and each room publishes and subscribes on the shard that owns it', async () => {
    const rooms = Array.from({ length: 12 }, (_, i) => `spread-${i}`);
    const received = new Map<string, RoomEnvelope[]>();
    const offs = rooms.map((roomId) => {
      received.set(roomId, []);
      return broker.subscribe(roomId, (envelope) => received.get(roomId)!.push(envelope));
    });
    try {
      await Promise.all(rooms.map((roomId) => broker.subscribed(roomId)));
      const masters = redis.masters();
      const spublishBefore = await Promise.all(masters.map(spublishCalls));
      for (const roomId of rooms) await broker.publish(roomId, system(roomId, 1), { store: true });
      await waitUntil(() => rooms.every((r) => received.get(r)!.length === 1), { what: 'one event in every room' });

      const owners = await Promise.all(rooms.map((roomId) => ownerOf(keys.roomMeta(roomId))));
      expect(new Set(owners).size, 'rooms on every one of the three shards').toBe(3);
      for (const [i, roomId] of rooms.entries()) {
        const owner = owners[i]!;
        // The room's keys and channel share its hash tag: one slot, one shard.
        expect(await ownerOf(keys.roomStream(roomId))).toBe(owner);
        expect(await ownerOf(keys.roomChannel(roomId))).toBe(owner);
        // Its history is on that shard and on no other (asked of each master directly, no redirect).
        for (const [m, master] of masters.entries()) {
          expect(await master.call('EXISTS', keys.roomStream(roomId)).catch(() => 0), `${roomId} on master ${m}`).toBe(m === owner ? 1 : 0);
        }
        // This node's subscription to the room's channel is on the owner.
        const [, subscribers] = (await masters[owner]!.call('PUBSUB', 'SHARDNUMSUB', keys.roomChannel(roomId))) as [string, number];
        expect(subscribers).toBe(1);
      }
      // Each shard published exactly the messages of its own rooms (SPUBLISH from the script).
      const spublishAfter = await Promise.all(masters.map(spublishCalls));
      const perShard = masters.map((_, m) => owners.filter((o) => o === m).length);
      expect(spublishAfter.map((after, m) => after - spublishBefore[m]!)).toEqual(perShard);
    } finally {
      for (const off of offs) off();
    }
  });

  it('a shard that restarts empty: the node is unavailable meanwhile, then resubscribes, says resync and delivers again', async () => {
    const roomId = 'restart';
    const owner = await ownerOf(keys.roomMeta(roomId));
    const envelopes: RoomEnvelope[] = [];
    const off = broker.subscribe(roomId, (envelope) => envelopes.push(envelope));
    try {
      await broker.subscribed(roomId);
      await broker.publish(roomId, system(roomId, 1), { store: true });
      await waitUntil(() => envelopes.length === 1, { what: 'the first event' });

      let sawDown = false;
      const offDown = connections.events.on('down', () => (sawDown = true));
      const up = new Promise<void>((resolve) => {
        const offUp = connections.events.on('up', () => {
          offUp();
          resolve();
        });
      });
      await redis.restartMaster(owner, 1500);
      await up;
      offDown();
      expect(sawDown, 'the probe saw the shard go').toBe(true);
      expect(connections.available).toBe(true);

      // The history is gone with the shard's data: the gap fill says so instead of a silent gap.
      await waitUntil(() => envelopes.some((e) => e.event.type === 'resync'), { what: 'resync after the restart', timeoutMs: 10_000 });
      // And the subscription was restored on the restarted master: new events arrive.
      await broker.publish(roomId, system(roomId, 2), { store: true });
      await waitUntil(() => envelopes.some((e) => e.event.type === 'system' && (e.event.data as { n: number }).n === 2), { what: 'an event after the restart', timeoutMs: 10_000 });
    } finally {
      off();
    }
  }, 60_000);
});

async function spublishCalls(master: { info(section: string): Promise<string> }): Promise<number> {
  const stats = await master.info('commandstats');
  return Number(/cmdstat_spublish:calls=(\d+)/.exec(stats)?.[1] ?? 0);
}
