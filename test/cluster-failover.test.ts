import { afterEach, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, type ClusterNode } from './support/cluster.ts';
import { aboutUser, bodies, joinLogged, waitUntil } from './support/wait.ts';

/**
 * A node dies without warning (SIGKILL) in the middle of a conversation: its clients resume on
 * another node with exactly the events they missed, its users are announced as disconnected
 * unless they reappear within the grace period, and its pending acks still end in a report.
 */
describeWithRedis('cluster: a node dies', () => {
  const clients: ChatClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  it('survivors take over: resume elsewhere is exact, the dead node’s users are announced, its acks are reported', async () => {
    await using cluster = await startCluster({
      nodes: 3,
      label: 'failover',
      env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000', PRESENCE_GRACE_MS: '800', ACK_RETRY_MS: '0' },
    });
    const [n1, n2, n3] = cluster.nodes as [ClusterNode, ClusterNode, ClusterNode];
    const client = async (node: ClusterNode, userId: string, options: { autoAck?: boolean } = {}) => {
      const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 50, ...options });
      clients.push(c);
      return c;
    };

    const alice = await client(n2, 'alice');
    const bob = await client(n3, 'bob');
    const mute = await client(n3, 'mute', { autoAck: false });
    const vic = await client(n1, 'vic');
    const gone = await client(n1, 'gone');
    const owner = await client(n1, 'owner');
    const a = joinLogged(alice, 'fo');
    await a.conversation.started;
    const v = joinLogged(vic, 'fo');
    const o = joinLogged(owner, 'fo');
    const joins = [bob.join('fo'), mute.join('fo'), gone.join('fo')];
    await Promise.all([v.conversation.started, o.conversation.started, ...joins.map((j) => j.started)]);
    await expect.poll(async () => (await alice.presence('fo')).length).toBe(6);

    for (let i = 0; i < 5; i += 1) await bob.send('fo', `before-${i}`);
    await waitUntil(() => bodies(v.log).length === 5, { what: 'vic to receive the first five' });

    // The owner (on n1) sends a message that needs acks; everyone acks at once but mute.
    const { messageId } = await owner.send('fo', 'ack me', { ack: { timeoutMs: 2500 } });
    await waitUntil(() => a.log.some((e) => e.event.type === 'message' && e.event.message.id === messageId), { what: 'alice to get the acked message' });
    const ackers = ['alice', 'bob', 'gone', 'vic'];
    await expect.poll(async () => [...(await (await client(n2, 'owner')).deliveryStatus(messageId)).acked].sort()).toEqual(ackers);

    await waitUntil(() => bodies(v.log).length === 6, { what: 'vic to receive the acked message' });
    const resumeFrom = v.conversation.lastEventId!;
    n1.kill('SIGKILL');
    await n1.exited;
    await vic.close();
    await gone.close();
    await owner.close();

    // Events while vic is away; it resumes on n2 within the grace period.
    for (let i = 0; i < 5; i += 1) await bob.send('fo', `during-${i}`);
    const vic2 = await client(n2, 'vic');
    const v2 = joinLogged(vic2, 'fo', { lastEventId: resumeFrom });
    await v2.conversation.started;
    await waitUntil(() => bodies(v2.log).length >= 5, { what: 'vic to catch up on n2' });
    expect(bodies(v2.log)).toEqual(['during-0', 'during-1', 'during-2', 'during-3', 'during-4']);
    expect(v2.log.some((e) => e.event.type === 'resync')).toBe(false);

    // gone never comes back: announced once the node is found dead and the grace has passed.
    await a.conversation.next('user_disconnected', (e) => e.userId === 'gone', 5000);
    expect(aboutUser(a.log, 'vic')).not.toContain('user_disconnected');

    // The owner's pending ack is finished by a survivor at its original deadline, exactly.
    const owner2 = await client(n3, 'owner');
    const o2 = joinLogged(owner2, 'fo', { lastEventId: o.conversation.lastEventId! });
    const delivered = await o2.conversation.next('message_delivered', (e) => e.report.messageId === messageId, 6000);
    expect(delivered.report).toMatchObject({ status: 'partial', missing: ['mute'] });
    expect([...delivered.report.acked].sort()).toEqual(ackers);
    expect(await owner2.deliveryStatus(messageId)).toMatchObject({ status: 'partial', missing: ['mute'] });

    // The dead node is gone from the admin plane's node list.
    const { createAdminClient } = await import('../clients/admin/index.ts');
    const ops = createAdminClient({ url: n2.baseUrl, token: await cluster.token('ops', { role: 'admin' }) });
    expect((await ops.nodes()).map((n) => n.nodeId)).toEqual(['failover-n2', 'failover-n3']);
  }, 30_000);

  it('a node frozen past its TTL (a partition, a long GC pause) is taken for dead, then rejoins cleanly', async () => {
    await using cluster = await startCluster({
      nodes: 2,
      label: 'frozen',
      env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000', PRESENCE_GRACE_MS: '200', ACK_RETRY_MS: '0', KEEPALIVE_PING_MS: '60000' },
    });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const client = async (node: ClusterNode, userId: string, options: { autoAck?: boolean } = {}) => {
      const c = createChatClient({ url: node.wsUrl, token: await cluster.token(userId), retryDelayMs: () => 50, ...options });
      clients.push(c);
      return c;
    };
    const alice = await client(n2, 'alice');
    const mute = await client(n2, 'mute', { autoAck: false });
    const owner = await client(n1, 'owner');
    const a = joinLogged(alice, 'fz');
    await a.conversation.started;
    await mute.join('fz').started;
    const o = joinLogged(owner, 'fz');
    await o.conversation.started;
    await waitUntil(() => aboutUser(a.log, 'owner').includes('user_joined'), { what: "owner's join" });

    const { messageId } = await owner.send('fz', 'ack me', { ack: { timeoutMs: 3000 } });
    await expect.poll(async () => (await alice.deliveryStatus(messageId).catch((e: Error) => e.message))).toMatch(/only the sender/);

    process.kill(n1.pid, 'SIGSTOP');
    try {
      // n2 takes n1 for dead: owner is announced gone after the grace, its ack adopted.
      await a.conversation.next('user_disconnected', (e) => e.userId === 'owner', 5000);
    } finally {
      process.kill(n1.pid, 'SIGCONT');
    }
    // n1 wakes up, finds itself reaped and re-asserts its users: owner is back for everyone.
    await a.conversation.next('user_joined', (e) => e.userId === 'owner', 5000);
    await expect.poll(async () => (await alice.presence('fz')).map((m) => m.userId).sort(), { timeout: 5000 }).toEqual(['alice', 'mute', 'owner']);

    // The adopted message is reported once, by the adopter, to the sender on the node that froze.
    const report = await o.conversation.next('message_delivered', (e) => e.report.messageId === messageId, 6000);
    expect(report.report).toMatchObject({ status: 'partial', acked: ['alice'], missing: ['mute'] });
    // n1's own timer for the message would have fired at the same deadline: once that moment is
    // past, a marker published after it arrives after any second report would have.
    const deadline = report.report.createdAt.getTime() + 3000;
    await waitUntil(() => Date.now() > deadline + 300, { timeoutMs: 5000, intervalMs: 20, what: 'the original deadline to pass' });
    const label = 'after-report';
    const seen = o.conversation.next('system', (e) => e.event === label, 5000);
    const { createAdminClient } = await import('../clients/admin/index.ts');
    await createAdminClient({ url: n1.baseUrl, token: await cluster.token('ops', { role: 'admin' }) }).broadcastSystemEvent({ conversationId: 'fz', event: label });
    await seen;
    const reports = o.log.filter((e) => e.event.type === 'message_delivered' && e.event.report.messageId === messageId);
    expect(reports).toHaveLength(1);
  }, 30_000);

  it('a node restarted under the same NODE_ID cleans up after its previous process at once', async () => {
    // A TTL far longer than the test: survivors cannot be the ones who clean up here.
    await using cluster = await startCluster({ nodes: 2, label: 'reuse', env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '20000', PRESENCE_GRACE_MS: '200' } });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const alice = createChatClient({ url: n2.wsUrl, token: await cluster.token('alice'), retryDelayMs: () => 50 });
    const gone = createChatClient({ url: n1.wsUrl, token: await cluster.token('gone'), retryDelayMs: () => 50 });
    clients.push(alice, gone);
    const a = joinLogged(alice, 'reuse');
    await a.conversation.started;
    await gone.join('reuse').started;
    await waitUntil(() => aboutUser(a.log, 'gone').includes('user_joined'), { what: "gone's join" });

    n1.kill('SIGKILL');
    await n1.exited;
    await gone.close();
    const started = Date.now();
    await cluster.addNode({ NODE_ID: 'reuse-n1' });
    await a.conversation.next('user_disconnected', (e) => e.userId === 'gone', 5000);
    expect(Date.now() - started).toBeLessThan(15_000);
    await expect.poll(async () => (await alice.presence('reuse')).map((m) => m.userId)).toEqual(['alice']);
  }, 30_000);
});
