import { afterEach, describe, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, type ClusterNode } from './support/cluster.ts';
import { joined } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';
import { aboutUser, bodies, joinLogged, waitUntil } from './support/wait.ts';

/**
 * Graceful shutdown: readiness drops and upgrades are refused at once, pending acks keep their
 * deadline (bounded by the drain) while the clients can still ack, then clients are asked to
 * move — and in a cluster they move to another node without losing an event.
 */
describe('graceful shutdown, one node', () => {
  it('503 at once, upgrades refused, pending acks reported at their deadline within the drain', async () => {
    const t = await startTestApp({ shutdownDrainMs: 1500, ackRetryMs: 0 });
    try {
      const alice = await t.client('alice', { retryDelayMs: () => 60_000 });
      const bob = await t.client('bob', { autoAck: false, retryDelayMs: () => 60_000 });
      const a = await joined(alice, 'room');
      await joined(bob, 'room');
      const delivered = a.next('message_delivered', undefined, 5000);
      const { messageId } = await alice.send('room', 'ack me', { ack: { timeoutMs: 600 } });

      const closing = t.app.close();
      expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(503);
      expect(await (await fetch(`${t.baseUrl}/readyz`)).json()).toEqual({ status: 'draining' });
      const { WebSocket } = await import('ws');
      const refused = await new Promise<number>((resolve) => {
        const ws = new WebSocket(t.wsUrl);
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => resolve(101));
        ws.on('error', () => undefined);
      });
      expect(refused).toBe(503);

      // The ack was given its deadline (600 ms), not cut short by the shutdown, and the sender,
      // still connected, got the report live.
      const { report } = await delivered;
      expect(report).toMatchObject({ messageId, status: 'failed', missing: ['bob'] });
      expect(report.latencyMs).toBeGreaterThanOrEqual(550);
      expect(report.latencyMs).toBeLessThan(1500);
      await closing;
      expect(t.app.service.internals()).toMatchObject({ pendingAcks: 0, connections: 0 });
    } finally {
      await t.close();
    }
  });
});

describeWithRedis('graceful shutdown in a cluster', () => {
  const clients: ChatClient[] = [];
  afterEach(async () => {
    await Promise.allSettled(clients.splice(0).map((c) => c.close()));
  });

  it('SIGTERM: the node exits 0 and its clients move to another node without losing an event or flickering', async () => {
    await using cluster = await startCluster({
      nodes: 2,
      label: 'drain',
      env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000', PRESENCE_GRACE_MS: '3000', SHUTDOWN_DRAIN_MS: '1500' },
    });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    // What a load balancer does: send each (re)connection to a node that is up.
    let target: ClusterNode = n1;
    const client = async (userId: string, node?: ClusterNode) => {
      const c = createChatClient({ url: () => (node ?? target).wsUrl, token: await cluster.token(userId), retryDelayMs: () => 50 });
      clients.push(c);
      return c;
    };
    const watcher = await client('watcher', n2);
    const w = joinLogged(watcher, 'drain');
    await w.conversation.started;
    const sender = await client('sender', n2);
    const moving = await Promise.all(['m1', 'm2', 'm3', 'm4', 'm5'].map((u) => client(u)));
    const logs = moving.map((c) => joinLogged(c, 'drain'));
    await Promise.all(logs.map((l) => l.conversation.started));
    await expect.poll(async () => (await watcher.presence('drain')).length).toBe(6);

    // A steady stream from n2 while n1 drains.
    const sent: string[] = [];
    let sending = true;
    const stream = (async () => {
      for (let i = 0; sending; i += 1) {
        await sender.send('drain', `msg-${i}`);
        sent.push(`msg-${i}`);
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    await waitUntil(() => sent.length >= 10, { what: 'the stream to get going' });
    target = n2;
    n1.kill('SIGTERM');
    expect(await n1.exited).toEqual({ code: 0, signal: null });
    // Every client has moved to n2 (it reconnected and resumed there).
    await waitUntil(() => logs.every((l) => bodies(l.log).length > sent.length - 5 && sent.length > 40), { timeoutMs: 10_000, what: 'the clients to catch up on n2' });
    sending = false;
    await stream;
    await waitUntil(() => logs.every((l) => bodies(l.log).length === sent.length), { timeoutMs: 5000, what: 'every message everywhere' });
    for (const l of logs) {
      expect(bodies(l.log)).toEqual(sent);
      expect(l.log.some((e) => e.event.type === 'resync')).toBe(false);
    }
    // Nobody flickered: the moved users never left, as far as the others could tell.
    for (const user of ['m1', 'm2', 'm3', 'm4', 'm5']) expect(aboutUser(w.log, user)).toEqual(['user_joined']);
    await expect.poll(async () => (await watcher.presence('drain')).map((m) => [m.userId, m.connections])).toEqual(
      expect.arrayContaining([['m1', 1], ['m5', 1], ['watcher', 1]]),
    );
  }, 40_000);
});
