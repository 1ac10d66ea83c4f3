import { afterEach, describe, expect, it } from 'vitest';
import type { ChatClient } from '../clients/chat/index.ts';
import { ClusterKeys } from '../src/cluster/keys.ts';
import { startCluster, startRedisCluster, type ClusterNode } from './support/cluster.ts';
import { redisClusterAvailable } from './support/redis-cluster.ts';
import { twoMembersOnTwoNodes } from './support/two-members.ts';
import { aboutUser, bodies, waitUntil } from './support/wait.ts';

/**
 * test/cluster-redis-outage.test.ts on a three-master Redis Cluster: the master that owns the
 * room is killed hard and restarted empty under two running nodes. They keep their clients, say
 * 503 on /readyz, refuse sends with a retryable error, and when the shard is back they
 * resubscribe, tell the room's subscribers `resync` (its history died with the shard), and
 * deliver again — without announcing anyone joined twice.
 */
describe.skipIf(!redisClusterAvailable)('cluster: a Redis Cluster shard restarts', () => {
  const clients: ChatClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  const readyz = async (node: ClusterNode) => (await fetch(`${node.baseUrl}/readyz`)).status;

  it('keeps serving, reports 503, recovers and resynchronises', async () => {
    await using redis = await startRedisCluster();
    await using cluster = await startCluster({ nodes: 2, label: 'rc-outage', redisCluster: redis, startTimeoutMs: 60_000, env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '3000' } });
    const { n1, n2, alice, bob, a, b } = await twoMembersOnTwoNodes(cluster, clients);

    // The master that owns the room's hash tag.
    const [first] = redis.masters();
    const slot = Number(await first!.cluster('KEYSLOT', new ClusterKeys(cluster.prefix).roomMeta('out')));
    const ranges = (await first!.call('CLUSTER', 'SLOTS')) as Array<[number, number, [string, number]]>;
    const owner = redis.ports.indexOf(ranges.find(([from, to]) => slot >= from && slot <= to)![2][1]);

    const restarted = redis.restartMaster(owner, 3000);
    await expect.poll(() => readyz(n1), { timeout: 5000 }).toBe(503);
    await expect.poll(() => readyz(n2), { timeout: 5000 }).toBe(503);
    expect((await fetch(`${n1.baseUrl}/healthz`)).status).toBe(200);
    await expect(alice.send('out', 'during')).rejects.toThrow(/unreachable/);
    await restarted;
    await expect.poll(() => readyz(n1), { timeout: 15_000 }).toBe(200);
    await expect.poll(() => readyz(n2), { timeout: 15_000 }).toBe(200);

    const resynced = (log: typeof a.log) => log.some((e) => e.event.type === 'resync');
    await waitUntil(() => resynced(a.log) && resynced(b.log), { what: 'both subscribers to be told resync', timeoutMs: 20_000 });

    await bob.send('out', 'after');
    await waitUntil(() => bodies(a.log).includes('after'), { what: 'alice to get the message sent after recovery', timeoutMs: 5000 });
    // Both users listed again, neither announced twice: the nodes, both cut off for the shard's
    // restart (longer than CLUSTER_NODE_TTL_MS), do not claim each other dead on recovery.
    await expect.poll(async () => (await alice.presence('out')).map((m) => m.userId).sort(), { timeout: 5000 }).toEqual(['alice', 'bob']);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
    expect(bodies(a.log)).toEqual(['before', 'after']);
    const exited = await Promise.race([Promise.any([n1.exited, n2.exited]).then(() => true), Promise.resolve(false)]);
    expect(exited).toBe(false);
  }, 120_000);
});
