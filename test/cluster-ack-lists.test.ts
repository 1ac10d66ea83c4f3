import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, type ClusterNode, type TestCluster } from './support/cluster.ts';
import { joinLogged } from './support/wait.ts';

/**
 * `message.ack` lists in a cluster: one list may name messages owned by different nodes (each
 * message is owned by the node its send went to). Two real server processes over the Redis at
 * REDIS_URL, real chat clients.
 */
describeWithRedis('list acks across two nodes', () => {
  let cluster: TestCluster;
  const clients: ChatClient[] = [];
  let n1: ClusterNode;
  let n2: ClusterNode;

  beforeAll(async () => {
    // A generous start: two node processes start at once, slow on a busy machine.
    cluster = await startCluster({ nodes: 2, label: 'acklists', startTimeoutMs: 60_000, env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '3000', ACK_TIMEOUT_MS: '4000' } });
    [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
  }, 90_000);
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function client(node: ClusterNode, userId: string, options: { autoAck?: boolean; ackBatchMs?: number } = {}): Promise<ChatClient> {
    const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 20, ...options });
    clients.push(c);
    return c;
  }

  it('applies one list naming messages owned by both nodes, item by item, and every report is exact', async () => {
    const alice = await client(n1, 'alice'); // sends through n1: n1 owns her messages
    const dave = await client(n2, 'dave'); // sends through n2: n2 owns his
    const bob = await client(n2, 'bob', { autoAck: false }); // acks both in one list, from n2
    const a = joinLogged(alice, 'spread');
    const d = joinLogged(dave, 'spread');
    const b = joinLogged(bob, 'spread');
    await Promise.all([a.conversation.started, d.conversation.started, b.conversation.started]);
    await expect.poll(async () => (await alice.presence('spread')).length, { timeout: 5000 }).toBe(3);

    const fromAlice = await alice.send('spread', 'owned by n1', { ack: true });
    const fromDave = await dave.send('spread', 'owned by n2', { ack: true });
    expect([...(fromAlice.expected ?? [])].sort()).toEqual(['bob', 'dave']);
    expect([...(fromDave.expected ?? [])].sort()).toEqual(['alice', 'bob']);
    await expect.poll(() => b.log.filter((e) => e.event.type === 'message').length, { timeout: 5000 }).toBe(2);

    const answer = await bob.trpc.message.ack.mutate({
      acks: [
        { conversationId: 'spread', messageId: fromAlice.messageId }, // owned by the other node
        { conversationId: 'spread', messageId: fromDave.messageId }, // owned by this node
        { conversationId: 'spread', messageId: fromAlice.messageId }, // a repeat: a duplicate
        { conversationId: 'spread', messageId: 'never-sent' },
      ],
    });
    expect(answer).toEqual({
      results: [
        { accepted: true, duplicate: false, late: false },
        { accepted: true, duplicate: false, late: false },
        { accepted: true, duplicate: true, late: false },
        { error: { code: 'NOT_FOUND', message: 'no acknowledged message never-sent in conversation spread' } },
      ],
    });

    // dave and alice ack the other's message automatically (their clients coalesce, cross-node).
    const [aliceReport, daveReport] = await Promise.all([fromAlice.report, fromDave.report]);
    expect(aliceReport).toMatchObject({ status: 'delivered', missing: [] });
    expect([...aliceReport.acked].sort()).toEqual(['bob', 'dave']);
    expect(daveReport).toMatchObject({ status: 'delivered', missing: [] });
    expect([...daveReport.acked].sort()).toEqual(['alice', 'bob']);

    // After the reports, a list is answered `late` on either node.
    const late = await bob.trpc.message.ack.mutate({ acks: [{ conversationId: 'spread', messageId: fromAlice.messageId }, { conversationId: 'spread', messageId: fromDave.messageId }] });
    expect(late).toEqual({ results: [{ accepted: false, duplicate: true, late: true }, { accepted: false, duplicate: true, late: true }] });
  });

  it('ends a burst of acked messages from both nodes in exact reports with every client coalescing its acks', async () => {
    const senders = [await client(n1, 'sender-1'), await client(n2, 'sender-2')];
    const receivers = await Promise.all(['r1', 'r2', 'r3', 'r4'].map((u, i) => client(i % 2 === 0 ? n1 : n2, u, { ackBatchMs: 20 })));
    const joins = [...senders, ...receivers].map((c) => joinLogged(c, 'burst'));
    await Promise.all(joins.map((j) => j.conversation.started));
    await expect.poll(async () => (await senders[0]!.presence('burst')).length, { timeout: 5000 }).toBe(6);

    const sends = await Promise.all(Array.from({ length: 10 }, (_, i) => senders[i % 2]!.send('burst', `m${i}`, { ack: true })));
    const reports = await Promise.all(sends.map((s) => s.report));
    reports.forEach((report, i) => {
      const otherSender = i % 2 === 0 ? 'sender-2' : 'sender-1';
      expect(report.status).toBe('delivered');
      expect([...report.acked].sort()).toEqual([otherSender, 'r1', 'r2', 'r3', 'r4'].sort());
    });
  });
});
