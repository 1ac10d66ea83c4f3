import { afterEach, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, startRedisServer, type ClusterNode } from './support/cluster.ts';
import { twoMembersOnTwoNodes } from './support/two-members.ts';
import { aboutUser, bodies, joinLogged, waitUntil } from './support/wait.ts';

/**
 * Redis goes away under a running two-node cluster (its own redis-server, killed hard, then
 * restarted empty): nodes keep their clients, say 503 on /readyz, refuse what needs Redis with
 * a retryable error, and when Redis is back they reconnect, restore presence and tell every
 * subscriber `resync` because the history is gone. Nothing crashes.
 */
describeWithRedis('cluster: Redis restarts', () => {
  const clients: ChatClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  const readyz = async (node: ClusterNode) => (await fetch(`${node.baseUrl}/readyz`)).status;
  const metric = async (node: ClusterNode, name: string) => {
    const text = await (await fetch(`${node.baseUrl}/metrics`)).text();
    return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  };

  it('keeps serving, reports 503, recovers and resynchronises', async () => {
    await using redis = await startRedisServer();
    await using cluster = await startCluster({ nodes: 2, label: 'outage', redisUrl: redis.url, env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000' } });
    const { n1, n2, alice, bob, a, b } = await twoMembersOnTwoNodes(cluster, clients);

    await redis.stop();
    await expect.poll(() => readyz(n1), { timeout: 5000 }).toBe(503);
    await expect.poll(() => readyz(n2), { timeout: 5000 }).toBe(503);
    expect((await fetch(`${n1.baseUrl}/healthz`)).status).toBe(200);
    await expect(alice.send('out', 'during')).rejects.toThrow(/unreachable/);
    expect(await metric(n1, 'realtime_cluster_redis_up')).toBe(0);

    await redis.start();
    await expect.poll(() => readyz(n1), { timeout: 10_000 }).toBe(200);
    await expect.poll(() => readyz(n2), { timeout: 10_000 }).toBe(200);

    // The history died with Redis: both subscribers are told so, on the same connection.
    const resynced = (log: typeof a.log) => log.some((e) => e.event.type === 'resync');
    await waitUntil(() => resynced(a.log) && resynced(b.log), { what: 'both subscribers to be told resync', timeoutMs: 20_000 });

    // Delivery across the nodes works again, and presence was restored without announcements.
    await bob.send('out', 'after');
    await waitUntil(() => bodies(a.log).includes('after'), { what: 'alice to get the message sent after recovery', timeoutMs: 5000 });
    await expect.poll(async () => (await alice.presence('out')).map((m) => m.userId).sort(), { timeout: 5000 }).toEqual(['alice', 'bob']);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
    expect(bodies(a.log)).toEqual(['before', 'after']);
    expect(await metric(n1, 'realtime_cluster_redis_up')).toBe(1);
    expect(await metric(n1, 'realtime_cluster_resyncs_total')).toBe(1);

    // Neither node crashed.
    const exited = await Promise.race([Promise.any([n1.exited, n2.exited]).then(() => true), Promise.resolve(false)]);
    expect(exited).toBe(false);
  }, 40_000);

  it('a departure during an outage without data loss is announced once Redis is back', async () => {
    await using redis = await startRedisServer({ persistent: true });
    await using cluster = await startCluster({ nodes: 2, label: 'outage2', redisUrl: redis.url, env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000' } });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const alice = createChatClient({ url: n1.wsUrl, token: await cluster.token('alice'), retryDelayMs: () => 50 });
    const bob = createChatClient({ url: n2.wsUrl, token: await cluster.token('bob'), retryDelayMs: () => 50 });
    clients.push(alice, bob);
    const a = joinLogged(alice, 'out2');
    await a.conversation.started;
    await bob.join('out2').started;
    await waitUntil(() => aboutUser(a.log, 'bob').includes('user_joined'), { what: "bob's join" });

    await redis.stop();
    await expect.poll(() => readyz(n2), { timeout: 5000 }).toBe(503);
    await bob.close(); // bob leaves while his node cannot tell anyone
    await redis.start();
    await expect.poll(() => readyz(n2), { timeout: 10_000 }).toBe(200);

    // The history survived (no resync); bob's departure is announced once his node reconnects.
    // (user_left, or user_disconnected when the socket closed before the stops were read)
    const gone = () => aboutUser(a.log, 'bob').filter((e) => e === 'user_left' || e === 'user_disconnected');
    await waitUntil(() => gone().length > 0, { timeoutMs: 10_000, what: "bob's departure" });
    await expect.poll(async () => (await alice.presence('out2')).map((m) => m.userId), { timeout: 5000 }).toEqual(['alice']);
    expect(a.log.some((e) => e.event.type === 'resync')).toBe(false);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', gone()[0]]);
  }, 40_000);
});
