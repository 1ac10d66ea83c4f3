import { connect, createServer, type Socket } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { describeWithRedis, startCluster, type ClusterNode } from './support/cluster.ts';
import { stockSseClient } from './support/raw-sse.ts';
import { joinLogged, waitUntil } from './support/wait.ts';

/**
 * A draining node ends its SSE streams with a retryable error; the stock httpSubscriptionLink's
 * EventSource reconnects to the same address — here a load balancer (a TCP proxy) that by then
 * sends new connections to the other node — and resumes there by Last-Event-ID: nothing lost,
 * nothing twice, no resync, and the room never sees the user leave.
 */
const clients: ChatClient[] = [];
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((c) => c.close()));
});

/** A TCP load balancer with one switchable backend. */
async function balancer(initial: ClusterNode) {
  let target = initial;
  const sockets = new Set<Socket>();
  const server = createServer((inbound) => {
    const outbound = connect(Number(new URL(target.baseUrl).port), '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    point(node: ClusterNode) {
      target = node;
    },
    async [Symbol.asyncDispose]() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describeWithRedis('SSE and a draining cluster node', () => {
  it('the SSE client moves to the other node through the balancer and resumes without loss, duplicates or a flicker', async () => {
    await using cluster = await startCluster({
      nodes: 2,
      label: 'sse-drain',
      env: { CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000', PRESENCE_GRACE_MS: '3000', SHUTDOWN_DRAIN_MS: '1500', SSE_RETRY_MS: '100' },
    });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    await using lb = await balancer(n1);

    const watcher = createChatClient({ url: n2.wsUrl, token: await cluster.token('watcher'), retryDelayMs: () => 50 });
    const sender = createChatClient({ url: n2.wsUrl, token: await cluster.token('sender'), retryDelayMs: () => 50 });
    clients.push(watcher, sender);
    const w = joinLogged(watcher, 'room');
    await w.conversation.started;

    const sse = stockSseClient(lb.url, await cluster.token('mover'));
    const received: string[] = [];
    let resynced = false;
    let started = false;
    const sub = sse.conversation.events.subscribe(
      { conversationId: 'room' },
      {
        onStarted: () => (started = true),
        onData: ({ data }) => {
          if (data.type === 'message') received.push(data.message.body);
          if (data.type === 'resync') resynced = true;
        },
      },
    );
    await waitUntil(() => started, { what: 'the SSE stream on n1' });
    await expect.poll(async () => (await watcher.presence('room')).map((m) => m.userId).sort()).toEqual(['mover', 'watcher']);

    const sent: string[] = [];
    let sending = true;
    const stream = (async () => {
      for (let i = 0; sending; i += 1) {
        await sender.send('room', `msg-${i}`);
        sent.push(`msg-${i}`);
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    await waitUntil(() => sent.length >= 10, { what: 'the stream to get going' });
    lb.point(n2);
    n1.kill('SIGTERM');
    expect(await n1.exited).toEqual({ code: 0, signal: null });
    await waitUntil(() => received.length > sent.length - 5 && sent.length > 60, { timeoutMs: 10_000, what: 'the SSE client to catch up on n2' });
    sending = false;
    await stream;
    await waitUntil(() => received.length === sent.length, { timeoutMs: 5000, what: 'every message over SSE' });
    expect(received).toEqual(sent);
    expect(resynced).toBe(false);
    // Nothing about the mover but its first join (single events or batched diffs alike).
    expect(w.log.filter((e) => e.event.type !== 'message' && JSON.stringify(e.event).includes('"mover"')).map((e) => e.event.type)).toEqual(['user_joined']);
    sub.unsubscribe();
  }, 40_000);
});
