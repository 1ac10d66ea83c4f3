import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createChatClient, type ChatClient, type Conversation } from '../clients/chat/index.ts';
import { describeWithRedis, REDIS_BACKENDS, startCluster, useRedisBackend, type ClusterNode, type TestCluster } from './support/cluster.ts';
import { createAdminClient, type AdminClient } from '../clients/admin/index.ts';
import { openSseStream } from './support/sse-client.ts';
import { aboutUser, bodies, joinLogged, waitUntil } from './support/wait.ts';

/**
 * One logical service across three real server processes sharing the Redis at REDIS_URL, and
 * again on a three-master Redis Cluster the describe starts itself: clients are spread across
 * the nodes and must not be able to tell.
 */
describeWithRedis.each(REDIS_BACKENDS)('cluster of three nodes over $backend', ({ redisCluster }) => {
  const backend = useRedisBackend(redisCluster);
  let cluster: TestCluster;
  const clients: ChatClient[] = [];
  let n1: ClusterNode;
  let n2: ClusterNode;
  let n3: ClusterNode;

  beforeAll(async () => {
    const redis = backend();
    cluster = await startCluster({ nodes: 3, label: 'cluster', env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '3000', ACK_TIMEOUT_MS: '3000' }, startTimeoutMs: 60_000, ...(redis && { redisCluster: redis }) });
    [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
  }, 90_000);
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function admin(node: ClusterNode): Promise<AdminClient> {
    return createAdminClient({ url: node.baseUrl, token: await cluster.token('ops', { role: 'admin' }) });
  }

  /** Publishes a system marker through `node` and waits until every conversation has it (see syncMarker). */
  async function marker(node: ClusterNode, room: string, ...conversations: Conversation[]): Promise<void> {
    const label = `marker-${Math.random().toString(36).slice(2)}`;
    const arrivals = conversations.map((c) => c.next('system', (e) => e.event === label));
    await (await admin(node)).broadcastSystemEvent({ conversationId: room, event: label });
    await Promise.all(arrivals);
  }

  async function client(node: ClusterNode, userId: string, options: { autoAck?: boolean } = {}): Promise<ChatClient> {
    const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId, { name: userId.toUpperCase() }), retryDelayMs: () => 20, ...options });
    clients.push(c);
    return c;
  }

  it('delivers every message to members on every node, in the same order and with the same ids', async () => {
    const alice = await client(n1, 'alice');
    const bob = await client(n2, 'bob');
    const carol = await client(n3, 'carol');
    const a = joinLogged(alice, 'order');
    const b = joinLogged(bob, 'order');
    const c = joinLogged(carol, 'order');
    await Promise.all([a.conversation.started, b.conversation.started, c.conversation.started]);

    const sent: string[] = [];
    for (let i = 0; i < 30; i += 1) {
      const [sender, name] = i % 3 === 0 ? [alice, 'alice'] : i % 3 === 1 ? [bob, 'bob'] : [carol, 'carol'];
      sent.push(`${name}-${i}`);
      await sender.send('order', `${name}-${i}`, { echo: true });
    }
    await waitUntil(() => [a, b, c].every((x) => bodies(x.log).length === 30), { what: 'all 30 messages on all three nodes' });
    const ids = (x: typeof a) => x.log.filter((e) => e.event.type === 'message').map((e) => e.id);
    expect(bodies(a.log)).toEqual(sent);
    expect(bodies(b.log)).toEqual(sent);
    expect(bodies(c.log)).toEqual(sent);
    expect(ids(b)).toEqual(ids(a));
    expect(ids(c)).toEqual(ids(a));
    expect([...ids(a)].sort()).toEqual(ids(a));
  });

  it('counts presence per user across nodes: one join for two tabs on two nodes, no leave until the last tab goes', async () => {
    const alice = await client(n1, 'alice');
    const a = joinLogged(alice, 'tabs');
    await a.conversation.started;
    const tab1 = await client(n2, 'dave');
    const tab2 = await client(n3, 'dave');
    const t1 = tab1.join('tabs');
    await t1.started;
    await waitUntil(() => aboutUser(a.log, 'dave').includes('user_joined'), { what: "dave's join" });
    const t2 = tab2.join('tabs');
    await t2.started;

    await expect.poll(async () => (await alice.presence('tabs')).find((m) => m.userId === 'dave')).toMatchObject({ userId: 'dave', name: 'DAVE', connections: 2 });

    // One tab goes: dave is still present (1 connection) and nobody is told he left.
    t1.leave();
    await expect.poll(async () => (await alice.presence('tabs')).find((m) => m.userId === 'dave')?.connections).toBe(1);
    await marker(n1, 'tabs', a.conversation);
    expect(aboutUser(a.log, 'dave')).toEqual(['user_joined']);

    t2.leave();
    await a.conversation.next('user_left', (e) => e.userId === 'dave');
    expect(aboutUser(a.log, 'dave')).toEqual(['user_joined', 'user_left']);
  });

  it('routes acks from any node to the owner: the sender gets an exact report wherever it is connected', async () => {
    const sender = await client(n1, 'sender');
    const r2 = await client(n2, 'r2');
    const r3 = await client(n3, 'r3');
    const silent = await client(n3, 'silent', { autoAck: false });
    const s = joinLogged(sender, 'acks');
    const joined = [r2.join('acks'), r3.join('acks'), silent.join('acks')];
    await Promise.all([s.conversation.started, ...joined.map((j) => j.started)]);
    await expect.poll(async () => (await sender.presence('acks')).length).toBe(4);

    const delivered = s.conversation.next('message_delivered');
    const { messageId, expected } = await sender.send('acks', 'please ack', { ack: { timeoutMs: 3000 } });
    expect([...(expected ?? [])].sort()).toEqual(['r2', 'r3', 'silent']);
    // While pending, any node answers the sender's status query from the shared record.
    const status = await (await client(n2, 'sender')).deliveryStatus(messageId);
    expect(status).toMatchObject({ messageId, status: 'pending' });
    const report = (await delivered).report;
    // `acked` is in the order the acks arrived, which two nodes do not fix: compare as sets.
    expect(report).toMatchObject({ messageId, status: 'partial', missing: ['silent'] });
    expect([...report.acked].sort()).toEqual(['r2', 'r3']);
    // Finished reports are readable on every node; a late ack is recognised on every node.
    const fromN3 = await (await client(n3, 'sender')).deliveryStatus(messageId);
    expect(fromN3).toMatchObject({ status: 'partial' });
    expect([...fromN3.acked].sort()).toEqual(['r2', 'r3']);
    await expect(silent.ack('acks', messageId)).resolves.toEqual({ accepted: false, duplicate: false, late: true });
    // Only the sender may read it, and nobody else may ack it.
    await expect(r2.deliveryStatus(messageId)).rejects.toThrow(/only the sender/);
    const stranger = await client(n2, 'stranger');
    await expect(stranger.ack('acks', messageId)).rejects.toThrow(/not an expected recipient/);
  });

  it('admin plane on any node sees the whole cluster: totals, rooms, users, nodes and pending acks', async () => {
    const a = await client(n1, 'ann');
    const b = await client(n2, 'ben');
    const c1 = await client(n3, 'cid');
    const c2 = await client(n1, 'cid');
    const joins = [a.join('adm-1'), b.join('adm-1'), c1.join('adm-1'), c2.join('adm-2')];
    await Promise.all(joins.map((j) => j.started));
    const ops = await admin(n2);
    await expect.poll(async () => (await ops.room('adm-1'))?.memberCount).toBe(3);
    const room = (await ops.room('adm-1'))!;
    expect(room.connectionCount).toBe(3);
    expect(room.members.map((m) => m.userId).sort()).toEqual(['ann', 'ben', 'cid']);

    const stats = await ops.stats();
    expect(stats.connections).toBeGreaterThanOrEqual(4);
    const user = (await ops.user('cid'))!;
    expect(user.connections).toBe(2);
    expect(user.rooms.map((r) => r.conversationId)).toEqual(['adm-1', 'adm-2']);
    const rooms = await ops.allRooms();
    expect(rooms.map((r) => r.conversationId)).toEqual(expect.arrayContaining(['adm-1', 'adm-2']));

    const nodes = await ops.nodes();
    expect(nodes.map((n) => n.nodeId)).toEqual(['cluster-n1', 'cluster-n2', 'cluster-n3']);
    expect(nodes.filter((n) => n.self).map((n) => n.nodeId)).toEqual(['cluster-n2']);
    for (const n of nodes) expect(n.address).toMatch(/:\d+$/);

    // Totals are exact: the same figures from every node, users counted once across nodes.
    const fromN1 = await (await admin(n1)).stats();
    expect(fromN1.connections).toBe(stats.connections);
    expect(fromN1.users).toBe(stats.users);

    // Connections by transport add up over the nodes like `connections`: an SSE stream on n3.
    const stream = openSseStream(n3.baseUrl, await cluster.token('sue'), 'adm-sse');
    try {
      await stream.started;
      await expect.poll(async () => (await ops.stats()).connectionsByTransport.sse).toBe(1);
      const withSse = await ops.stats();
      expect(withSse.connectionsByTransport.websocket + withSse.connectionsByTransport.sse).toBe(withSse.connections);
      // Other nodes' entries come from their heartbeats.
      await expect.poll(async () => (await ops.nodes()).map((n) => n.connectionsByTransport.sse)).toEqual([0, 0, 1]);
      for (const n of await ops.nodes()) expect(n.connectionsByTransport.websocket + n.connectionsByTransport.sse, n.nodeId).toBe(n.connections);
    } finally {
      stream.close();
    }

    const quiet = await client(n3, 'quiet', { autoAck: false });
    await quiet.join('adm-1').started;
    await expect.poll(async () => (await ops.room('adm-1'))?.memberCount).toBe(4);
    const { messageId } = await a.send('adm-1', 'needs acks', { ack: { timeoutMs: 2000 } });
    await expect.poll(async () => (await ops.pendingAcks({ conversationId: 'adm-1' })).map((p) => p.messageId)).toContain(messageId);
    const kicked = await (await admin(n3)).disconnectUser({ userId: 'cid' });
    expect(kicked).toBe(2);
  });
});
