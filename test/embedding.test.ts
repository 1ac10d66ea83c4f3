import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createChatClient } from '../clients/chat/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { DomainError } from '../src/domain/errors.ts';
import type { DeliveryReport, Principal } from '../src/domain/types.ts';
import { createRealtimeServer, type RealtimeServer } from '../src/server.ts';
import { errorOf, joined, record, trpcHttp } from './support/helpers.ts';
import { startTestApp, TEST_SECRET } from './support/start-test-app.ts';

function upgradeStatus(url: string): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('embedding API (CONTRACT §6)', () => {
  it('broadcastMessage, broadcastSystemEvent, updateConversation and broadcastTyping reach subscribers', async () => {
    await using t = await startTestApp({ typingTimeoutMs: 5000 });
    const bob = await t.client('bob');
    const b = await joined(bob, 'room');
    const seen = record(b);

    const message = b.next('message');
    const sent = await t.app.broadcastMessage('room', { body: 'from the server', senderName: 'Robot', clientMessageId: 'srv-1' });
    const m = await message;
    expect(m.message).toMatchObject({ id: sent.messageId, senderId: 'system', senderName: 'Robot', body: 'from the server', ackRequired: false });
    expect(b.lastEventId).toBe(sent.eventId);
    // clientMessageId makes server-side sends idempotent too.
    expect(await t.app.broadcastMessage('room', { body: 'from the server', clientMessageId: 'srv-1' })).toEqual(sent);
    const asBot = b.next('message');
    await t.app.broadcastMessage('room', { body: 'beep', senderId: 'bot' });
    expect((await asBot).message.senderId).toBe('bot');

    const system = b.next('system');
    const at = new Date('2030-01-02T03:04:05Z');
    const sys = await t.app.broadcastSystemEvent('room', 'maintenance', { at, minutes: 5 });
    const s = await system;
    expect(s.event).toBe('maintenance');
    expect(s.data).toEqual({ at, minutes: 5 });
    expect((s.data as { at: unknown }).at).toBeInstanceOf(Date);
    expect(b.lastEventId).toBe(sys.eventId);

    const updated = b.next('conversation_updated');
    const upd = await t.app.updateConversation('room', { title: 'New title', archived: false });
    expect((await updated).changes).toEqual({ title: 'New title', archived: false });
    expect(b.lastEventId).toBe(upd.eventId);

    const typingOn = b.next('typing');
    t.app.broadcastTyping('room', 'bot', true);
    expect(await typingOn).toMatchObject({ userId: 'bot', isTyping: true });
    expect((await t.app.getRoomStats('room'))?.typing).toEqual(['bot']);
    // Idempotent: a repeat is not a change and sends nothing; turning it off is.
    t.app.broadcastTyping('room', 'bot', true);
    const typingOff = b.next('typing');
    t.app.broadcastTyping('room', 'bot', false);
    expect(await typingOff).toMatchObject({ userId: 'bot', isTyping: false });
    expect(seen.filter((e) => e.event.type === 'typing')).toHaveLength(2);
    expect(seen.map((e) => e.event.type)).toEqual(['message', 'message', 'system', 'conversation_updated', 'typing', 'typing']);
  });

  it('broadcastWithAck resolves with the DeliveryReport (recipients auto-ack through the chat client)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000 });
    const bob1 = await t.client('bob');
    const bob2 = await t.client('bob');
    const carol = await t.client('carol');
    await joined(bob1, 'room');
    await joined(bob2, 'room');
    await joined(carol, 'room');

    const report = await t.app.broadcastWithAck('room', { body: 'please confirm' });
    expect(report.status).toBe('delivered');
    expect([...report.expected].sort()).toEqual(['bob', 'carol']);
    expect([...report.acked].sort()).toEqual(['bob', 'carol']);
    expect(report.missing).toEqual([]);
    expect(report.completedAt).toBeInstanceOf(Date);
    expect(report.latencyMs).toBeLessThan(3000);

    // With a recipient that does not ack: partial at the given timeout.
    const dave = await t.client('dave', { autoAck: false });
    await joined(dave, 'room');
    const partial = await t.app.broadcastWithAck('room', { body: 'again', timeoutMs: 200 });
    expect(partial).toMatchObject({ status: 'partial', missing: ['dave'] });
    expect(partial.latencyMs).toBeGreaterThanOrEqual(190);

    // Nobody in the room: failed at once.
    const empty = await t.app.broadcastWithAck('empty-room', { body: 'hello?', timeoutMs: 60_000 });
    expect(empty).toMatchObject({ status: 'failed', expected: [], acked: [], missing: [] });
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('getRoomUsers, getUserRooms, getRoomStats and getBroadcastStats describe the live state', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000, ackRetryMs: 0 });
    const alice = await t.client('alice', { name: 'Alice' });
    const bob1 = await t.client('bob');
    const bob2 = await t.client('bob', { autoAck: false });
    const a = await joined(alice, 'room');
    await joined(bob1, 'room');
    await joined(bob2, 'room');
    await joined(bob1, 'other');

    const users = (await t.app.getRoomUsers('room'));
    expect(users.map((u) => [u.userId, u.connections]).sort()).toEqual([
      ['alice', 1],
      ['bob', 2],
    ]);
    expect(users.find((u) => u.userId === 'alice')).toMatchObject({ name: 'Alice', typing: false });
    expect(users[0]!.joinedAt).toBeInstanceOf(Date);
    expect((await t.app.getUserRooms('bob')).sort()).toEqual(['other', 'room']);
    expect((await t.app.getUserRooms('alice'))).toEqual(['room']);
    expect((await t.app.getUserRooms('nobody'))).toEqual([]);
    expect((await t.app.getRoomUsers('nowhere'))).toEqual([]);
    expect((await t.app.getRoomStats('nowhere'))).toBeNull();

    // One acked message pending (bob2 does not ack, so bob's ack comes from bob1), one plain.
    const delivered = a.next('message_delivered', undefined, 3000);
    await alice.send('room', 'plain');
    const acked = await alice.send('room', 'ack me', { ack: true });
    const stats = (await t.app.getRoomStats('room'));
    expect(stats).toMatchObject({ conversationId: 'room', memberCount: 2, connectionCount: 3, messagesBroadcast: 2 });
    expect(stats!.createdAt).toBeInstanceOf(Date);
    expect(stats!.lastActivityAt.getTime()).toBeGreaterThanOrEqual(stats!.createdAt.getTime());
    expect(stats!.members).toHaveLength(2);
    expect((await delivered).report).toMatchObject({ messageId: acked.messageId, status: 'delivered' });
    expect((await t.app.getRoomStats('room'))!.pendingAcks).toBe(0);

    await vi.waitFor(() => expect(t.app.getBroadcastStats().deliveries).toBeGreaterThanOrEqual(4));
    const global = t.app.getBroadcastStats();
    expect(global).toMatchObject({ activeRooms: 2, connections: 3, users: 2, messagesBroadcast: 2, pendingAcks: 0, acksDelivered: 1, acksPartial: 0, acksFailed: 0 });
    expect(global.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(global.memory.rssBytes).toBeGreaterThan(0);
    expect(global.memory.heapUsedBytes).toBeGreaterThan(0);
    expect(global.deliveryLatencyMs.max).toBeGreaterThanOrEqual(global.deliveryLatencyMs.p50);
  });

  it('custom authenticate and authorizeJoin replace the token rules (ws and http)', async () => {
    const keys: Record<string, Principal> = {
      'key-alice': { userId: 'alice', name: 'Alice', role: 'user', conversations: '*' },
      'key-bob': { userId: 'bob', role: 'user', conversations: '*' },
    };
    const seenTokens: Array<string | null> = [];
    await using t = await startTestApp({
      authenticate: async ({ token, req }) => {
        seenTokens.push(token);
        expect(req.url).toMatch(/^\/trpc/);
        const principal = token ? keys[token] : undefined;
        if (!principal) throw new DomainError('UNAUTHENTICATED', 'unknown api key');
        return principal;
      },
      // Only rooms named after the user, and "public".
      authorizeJoin: async (principal, conversationId) => conversationId === 'public' || conversationId.startsWith(`${principal.userId}-`),
    });
    const alice = createChatClient({ url: t.wsUrl, token: 'key-alice', retryDelayMs: () => 20 });
    const bob = createChatClient({ url: t.wsUrl, token: 'key-bob', retryDelayMs: () => 20 });
    const jwtUser = createChatClient({ url: t.wsUrl, token: await t.token('carol'), retryDelayMs: () => 50 });
    try {
      const a = await joined(alice, 'public');
      await joined(alice, 'alice-notes');
      const bobJoined = a.next('user_joined', (e) => e.userId === 'bob');
      const bobPublic = await joined(bob, 'public');
      await bobJoined;

      let forbidden: unknown;
      bob.join('alice-notes', { onError: (e) => (forbidden = e) });
      await vi.waitFor(() => expect(forbidden).toBeDefined());
      expect((forbidden as { data?: { code?: string } }).data?.code).toBe('FORBIDDEN');
      expect((await errorOf(bob.send('alice-notes', 'x'))).code).toBe('FORBIDDEN');

      const got = bobPublic.next('message');
      await alice.send('public', 'hi bob');
      expect((await got).message).toMatchObject({ senderId: 'alice', senderName: 'Alice' });

      // A JWT the built-in rules would accept means nothing to the custom authenticate.
      let refused: unknown;
      jwtUser.join('public', { onError: (e) => (refused = e) });
      await vi.waitFor(() => expect(refused).toBeDefined());
      expect((refused as { data?: { code?: string; message?: string } }).data?.code).toBe('UNAUTHORIZED');
      expect((refused as Error).message).toBe('unknown api key');

      // Over HTTP the bearer value goes to the same function.
      const ok = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'public', body: 'via http' }, { token: 'key-bob' });
      expect(ok.status).toBe(200);
      const no = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'bob-x', body: 'x' }, { token: 'key-alice' });
      expect(no.status).toBe(403);
      expect((await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'public', body: 'x' })).status).toBe(401);
      expect(seenTokens).toContain(null);
      expect(seenTokens).toContain('key-alice');
    } finally {
      await Promise.all([alice.close(), bob.close(), jwtUser.close()]);
    }
  });

  it('close() reports every pending ack: the sender and broadcastWithAck callers get a report', async () => {
    const t = await startTestApp({ ackTimeoutMs: 60_000, ackRetryMs: 0, shutdownDrainMs: 300 });
    try {
      const alice = await t.client('alice', { retryDelayMs: () => 5000 });
      const bob = await t.client('bob', { autoAck: false, retryDelayMs: () => 5000 });
      const a = await joined(alice, 'room');
      await joined(bob, 'room');
      const delivered = a.next('message_delivered', undefined, 3000);
      const sent = await alice.send('room', 'pending forever', { ack: true });
      const serverSide = t.app.broadcastWithAck('room', { body: 'also pending' });
      let settled: DeliveryReport | undefined;
      void serverSide.then((r) => (settled = r));
      await vi.waitFor(() => expect(t.app.service.acks.pendingCount).toBe(2));
      // alice's client acks the server's message by itself; bob never does.
      await vi.waitFor(async () => expect((await t.app.service.pendingAcks()).find((p) => p.senderId === 'system')?.acked).toEqual(['alice']));
      expect(settled).toBeUndefined();

      const closing = t.app.close();
      const report = (await delivered).report;
      expect(report).toMatchObject({ messageId: sent.messageId, status: 'failed', missing: ['bob'] });
      expect(report.latencyMs).toBeLessThan(60_000);
      expect(await serverSide).toMatchObject({ status: 'partial', acked: ['alice'], missing: ['bob'] });
      await closing;
      expect(t.app.service.acks.pendingCount).toBe(0);
      expect(t.app.service.internals()).toMatchObject({ pendingAcks: 0, awaitingAck: 0, reportWaiters: 0 });
    } finally {
      await t.close();
    }
  });
});

describe('attaching to an existing http.Server', () => {
  it('serves our paths and upgrades next to the host handler, which answers everything else', async () => {
    // The host's own handler runs first for every request, and also calls handleRequest.
    const host = createServer((req, res) => hostHandler(req, res));
    const app: RealtimeServer = createRealtimeServer({ server: host, authSecret: TEST_SECRET, env: { LOG_LEVEL: 'silent' }, shutdownDrainMs: 100 });
    function hostHandler(req: IncomingMessage, res: ServerResponse): void {
      if (req.url === '/hello') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('host says hello');
        return;
      }
      if (!app.handleRequest(req, res)) {
        res.writeHead(418);
        res.end();
      }
    }
    const port = await listen(host);
    const base = `http://127.0.0.1:${port}`;
    const wsUrl = `ws://127.0.0.1:${port}/trpc`;
    const bob = createChatClient({ url: wsUrl, token: await mintToken(TEST_SECRET, { userId: 'bob', conversations: ['*'] }), retryDelayMs: () => 20 });
    try {
      expect(await (await fetch(`${base}/hello`)).text()).toBe('host says hello');
      expect((await fetch(`${base}/unknown`)).status).toBe(418);
      const health = await fetch(`${base}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      expect((await fetch(`${base}/readyz`)).status).toBe(200);

      // tRPC over ws on the host's port, and over HTTP.
      const b = await joined(bob, 'room');
      const got = b.next('system');
      await app.broadcastSystemEvent('room', 'attached', { ok: true });
      expect((await got).data).toEqual({ ok: true });
      const token = await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'] });
      const viaHttp = b.next('message');
      expect((await trpcHttp(base, 'message.send', { conversationId: 'room', body: 'over the host' }, { token })).status).toBe(200);
      expect((await viaHttp).message.senderId).toBe('alice');

      // Upgrades elsewhere are refused without harming anything.
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/elsewhere`)).toBe(404);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await bob.close();
      await app.close();
    }
    // close() leaves the host server to its owner.
    expect(host.listening).toBe(true);
    expect(await (await fetch(`${base}/hello`)).text()).toBe('host says hello');
    await new Promise<void>((resolve) => host.close(() => resolve()));
  });

  it('also works without the server option, through handleRequest and handleUpgrade from the host', async () => {
    const app = createRealtimeServer({ authSecret: TEST_SECRET, env: { LOG_LEVEL: 'silent' }, shutdownDrainMs: 100 });
    const host = createServer((req, res) => {
      if (!app.handleRequest(req, res)) {
        res.writeHead(418);
        res.end();
      }
    });
    host.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (!app.handleUpgrade(req, socket, head)) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    });
    const port = await listen(host);
    const base = `http://127.0.0.1:${port}`;
    const bob = createChatClient({ url: `ws://127.0.0.1:${port}/trpc`, token: await mintToken(TEST_SECRET, { userId: 'bob', conversations: ['*'] }), retryDelayMs: () => 20 });
    try {
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
      expect((await fetch(`${base}/readyz`)).status).toBe(200);
      expect((await fetch(`${base}/elsewhere`)).status).toBe(418);
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/elsewhere`)).toBe(400);
      const b = await joined(bob, 'room');
      const got = b.next('message');
      await app.broadcastMessage('room', { body: 'hosted' });
      expect((await got).message.body).toBe('hosted');
    } finally {
      await bob.close();
      await app.close();
      await new Promise<void>((resolve) => host.close(() => resolve()));
    }
  });

  it('takes its own paths before the host handler, passes every other request on, and gives the server back on close', async () => {
    // This host would answer everything itself.
    const host = createServer((req, res) => {
      res.writeHead(299);
      res.end('host');
    });
    const app = createRealtimeServer({ server: host, authSecret: TEST_SECRET, env: { LOG_LEVEL: 'silent' }, shutdownDrainMs: 0 });
    const port = await listen(host);
    try {
      for (let i = 0; i < 3; i += 1) {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ status: 'ok' });
      }
      const other = await fetch(`http://127.0.0.1:${port}/anything`);
      expect(other.status).toBe(299);
      expect(await other.text()).toBe('host');
      expect((await fetch(`http://127.0.0.1:${port}/trpc/conversation.mine`)).status).toBe(401);
      expect(await upgradeStatus(`ws://127.0.0.1:${port}/trpc`)).toBe('open');
    } finally {
      await app.close();
    }
    // After close the host's handler answers our old paths too.
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(299);
    await new Promise<void>((resolve) => host.close(() => resolve()));
  });
});
