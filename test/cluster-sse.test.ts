import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createChatClient, type ChatClient, type RoomEvent } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, type ClusterNode, type TestCluster } from './support/cluster.ts';
import { bodies, joinLogged, waitUntil } from './support/wait.ts';

/** A join of `userId` as the server announces it: a single `user_joined` or a batched `presence_diff`. */
function announcesJoinOf(event: RoomEvent, userId: string): boolean {
  if (event.type === 'user_joined') return event.userId === userId;
  return event.type === 'presence_diff' && event.joins.some((j) => j.userId === userId);
}

/**
 * Issue 13 part 3 across nodes: one member on SSE (the typed client, `transport: 'sse'`) on node
 * A and one on WebSocket on node B, in the same room, over the Redis at REDIS_URL.
 */
describeWithRedis('cluster: an SSE member and a WebSocket member on different nodes', () => {
  let cluster: TestCluster;
  let a: ClusterNode;
  let b: ClusterNode;
  const clients: ChatClient[] = [];

  beforeAll(async () => {
    cluster = await startCluster({ nodes: 2, label: 'sse', env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '3000', ACK_TIMEOUT_MS: '3000', SSE_RETRY_MS: '100' } });
    [a, b] = cluster.nodes as [ClusterNode, ClusterNode];
  }, 30_000);
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await cluster?.close();
  });

  async function client(node: ClusterNode, userId: string, transport: 'sse' | 'websocket'): Promise<ChatClient> {
    const c = createChatClient({ url: node.wsUrl, transport, token: await cluster.token(userId), retryDelayMs: () => 20 });
    clients.push(c);
    return c;
  }

  it('messages both ways, presence, and acked sends with their delivery reports', async () => {
    const alice = await client(a, 'alice', 'sse');
    const bob = await client(b, 'bob', 'websocket');
    const al = joinLogged(alice, 'x-room');
    await al.conversation.started;
    expect(alice.transport).toBe('sse');
    const bl = joinLogged(bob, 'x-room');
    await bl.conversation.started;

    // Presence across nodes: alice sees bob arrive, and both nodes list both.
    await waitUntil(() => al.log.some((e) => announcesJoinOf(e.event, 'bob')), { what: "alice (SSE, node A) to see bob's join" });
    await waitUntil(() => al.conversation.presence.members.has('bob'), { what: "alice's presence model to list bob" });
    expect((await alice.presence('x-room')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
    expect((await bob.presence('x-room')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);

    // Messages both ways, with the same ids on both nodes.
    const fromAlice = await alice.send('x-room', 'from alice');
    const fromBob = await bob.send('x-room', 'from bob');
    await waitUntil(() => bodies(al.log).includes('from bob') && bodies(bl.log).includes('from alice'), { what: 'both messages across nodes' });
    expect(bl.log.find((e) => e.event.type === 'message' && e.event.message.body === 'from alice')?.id).toBe(fromAlice.eventId);
    expect(al.log.find((e) => e.event.type === 'message' && e.event.message.body === 'from bob')?.id).toBe(fromBob.eventId);

    // Acked from SSE: bob acks over his socket on node B, the report reaches alice's stream on node A.
    const reportToAlice = al.conversation.next('message_delivered', undefined, 8000);
    const ackedByBob = await alice.send('x-room', 'ack me, bob', { ack: true });
    expect(ackedByBob.expected).toEqual(['bob']);
    expect((await reportToAlice).report).toMatchObject({ messageId: ackedByBob.messageId, conversationId: 'x-room', status: 'delivered', expected: ['bob'], acked: ['bob'], missing: [] });
    expect(await alice.deliveryStatus(ackedByBob.messageId)).toMatchObject({ status: 'delivered', acked: ['bob'] });

    // Acked from WebSocket: alice's client acks over HTTP on node A, the report reaches bob on node B.
    const reportToBob = bl.conversation.next('message_delivered', undefined, 8000);
    const ackedByAlice = await bob.send('x-room', 'ack me, alice', { ack: true });
    expect(ackedByAlice.expected).toEqual(['alice']);
    expect((await reportToBob).report).toMatchObject({ messageId: ackedByAlice.messageId, status: 'delivered', expected: ['alice'], acked: ['alice'], missing: [] });
    expect(await bob.deliveryStatus(ackedByAlice.messageId)).toMatchObject({ status: 'delivered', acked: ['alice'] });

    // Nobody saw their own messages; each saw the other's, once, in order.
    expect(bodies(al.log)).toEqual(['from bob', 'ack me, alice']);
    expect(bodies(bl.log)).toEqual(['from alice', 'ack me, bob']);
  });
});
