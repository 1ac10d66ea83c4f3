import { describe, expect, it, vi } from 'vitest';
import { AdminClientError, type AdminClient, type RoomOrder } from '../clients/admin/index.ts';
import type { ChatClient, Conversation, RoomEvent } from '../clients/chat/index.ts';
import type { BrokerListener } from '../src/broker/broker.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import type { RoomId } from '../src/domain/types.ts';
import { joined, record } from './support/helpers.ts';
import { adminClient, adminQuery, adminToken, gql, nextMillisecond, readSse } from './support/graphql.ts';
import { openSseStream } from './support/sse-client.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';

/** The GraphQL admin plane (CONTRACT §5) against a live server with real chat clients making traffic. */

const sorted = (xs: readonly string[]) => [...xs].sort();

/** Rejects with the AdminClientError a call fails with; fails the test if it succeeds. */
async function adminError(promise: Promise<unknown>): Promise<AdminClientError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(AdminClientError);
    return error as AdminClientError;
  }
  throw new Error('expected the admin call to fail, but it succeeded');
}

/** Waits until the server has `userId` in `conversationId` (a subscription's `started` can precede the join). */
function present(t: TestApp, userId: string, conversationId: string): Promise<void> {
  return vi.waitFor(() => expect(t.app.service.registry.isMember(userId, conversationId)).toBe(true));
}

/** Every event a conversation delivers until the server ends the subscription. */
async function untilEnded(conversation: Conversation): Promise<RoomEvent[]> {
  const events: RoomEvent[] = [];
  for await (const { event } of conversation) events.push(event);
  return events;
}

describe('Query.stats', () => {
  it('starts at zero and moves with traffic: counts, acks by outcome, latency percentiles', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 300, ackRetryMs: 0 });
    const admin = await adminClient(t);
    const before = await admin.stats();
    expect(before).toMatchObject({ activeRooms: 0, connections: 0, users: 0, messagesBroadcast: 0, deliveries: 0, pendingAcks: 0, acksDelivered: 0, acksPartial: 0, acksFailed: 0, slowConsumerCloses: 0 });
    expect(before.deliveryLatencyMs).toEqual({ p50: 0, p95: 0, p99: 0, max: 0, count: 0 });

    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'stats-room');
    const b = await joined(bob, 'stats-room');
    await present(t, 'bob', 'stats-room');
    const fifth = b.next('message', (e) => e.message.body === 'm5');
    for (let i = 1; i <= 5; i += 1) await alice.send('stats-room', `m${i}`);
    await fifth;
    // Acknowledged: bob acks (delivered) …
    const delivered = a.next('message_delivered');
    await alice.send('stats-room', 'ack please', { ack: true });
    expect((await delivered).report.status).toBe('delivered');
    // … alone in a room (failed at once) …
    await joined(alice, 'stats-solo');
    await present(t, 'alice', 'stats-solo');
    await alice.send('stats-solo', 'anyone?', { ack: true });
    // … and carol never acks (partial at the timeout, pending until then).
    await joined(carol, 'stats-room');
    await present(t, 'carol', 'stats-room');
    const partial = a.next('message_delivered', (e) => e.report.status === 'partial', 3000);
    await alice.send('stats-room', 'ack again', { ack: true });
    const during = await admin.stats();
    expect(during.pendingAcks).toBe(1);
    await partial;

    const after = await admin.stats();
    expect(after).toMatchObject({ activeRooms: 2, connections: 3, users: 3, messagesBroadcast: 8, pendingAcks: 0, acksDelivered: 1, acksPartial: 1, acksFailed: 1, slowConsumerCloses: 0 });
    // bob got 5 + 2 messages, carol 1; presence events and reports on top.
    expect(after.deliveries).toBeGreaterThanOrEqual(8);
    const d = after.deliveryLatencyMs;
    expect(d.count).toBe(8);
    expect(d.p50).toBeGreaterThanOrEqual(0); // local fan-out: often 0 ms (see the distant-broker test below)
    expect(d.p95).toBeGreaterThanOrEqual(d.p50);
    expect(d.p99).toBeGreaterThanOrEqual(d.p95);
    expect(d.max).toBeGreaterThanOrEqual(d.p99);
    const k = after.ackLatencyMs;
    expect(k.count).toBe(3);
    expect(k.p95).toBeGreaterThanOrEqual(290); // the partial one waited for the 300 ms timeout
    expect(k.max).toBeGreaterThanOrEqual(k.p95);
    expect(after.memory.rssBytes).toBeGreaterThan(0);
    expect(after.memory.heapUsedBytes).toBeGreaterThan(0);
    expect(after.uptimeSeconds).toBeGreaterThanOrEqual(0);
    expect(Math.abs(Date.parse(after.at) - Date.now())).toBeLessThan(5000);
    expect(Date.parse(after.at)).toBeGreaterThanOrEqual(Date.parse(before.at));
  });

  it('reports delivery and ack latency percentiles as they are: a broker 25 ms away shows >= 25 ms', async () => {
    // Local fan-out writes within the millisecond of the send (latency is measured in whole ms,
    // so mostly 0). A broker whose deliveries arrive 25 ms later, as one a network hop away would,
    // makes every delivery measurably late.
    class DistantBroker extends MemoryBroker {
      override subscribe(roomId: RoomId, listener: BrokerListener): () => void {
        return super.subscribe(roomId, (envelope, redelivery) => void setTimeout(() => listener(envelope, redelivery), 25));
      }
    }
    await using t = await startTestApp({ broker: new DistantBroker({ historySize: 256, historyTtlMs: 60_000 }) });
    const admin = await adminClient(t);
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const a = await joined(alice, 'far');
    const b = await joined(bob, 'far');
    await present(t, 'bob', 'far');
    const last = b.next('message', (e) => e.message.body === 'm4');
    for (let i = 1; i <= 4; i += 1) await alice.send('far', `m${i}`);
    await last;
    const delivered = a.next('message_delivered');
    await alice.send('far', 'ack please', { ack: true });
    expect((await delivered).report.status).toBe('delivered');

    const { deliveryLatencyMs: d, ackLatencyMs: k } = await admin.stats();
    expect(d.count).toBe(5);
    expect(d.p50).toBeGreaterThanOrEqual(24);
    expect(d.p95).toBeGreaterThanOrEqual(d.p50);
    expect(d.p99).toBeGreaterThanOrEqual(d.p95);
    expect(d.max).toBeGreaterThanOrEqual(d.p99);
    expect(d.max).toBeLessThan(5000);
    // The ack could only come back after bob got the message.
    expect(k.count).toBe(1);
    expect(k.p50).toBeGreaterThanOrEqual(24);
    expect(k.max).toBe(k.p50);
  });

  it('counts connections per transport in stats and nodes: one WebSocket, one SSE stream, back to 0 when both close', async () => {
    await using t = await startTestApp();
    const admin = await adminClient(t);
    const byTransport = async () => {
      const [stats, nodes] = await Promise.all([admin.stats(), admin.nodes()]);
      return { stats: { connections: stats.connections, ...stats.connectionsByTransport }, nodes: nodes.map((n) => ({ connections: n.connections, ...n.connectionsByTransport })) };
    };
    expect(await byTransport()).toEqual({ stats: { connections: 0, websocket: 0, sse: 0 }, nodes: [{ connections: 0, websocket: 0, sse: 0 }] });

    const alice = await t.client('alice');
    await joined(alice, 'tr-room');
    const bob = openSseStream(t.baseUrl, await t.token('bob'), 'tr-room');
    await bob.started;
    await present(t, 'bob', 'tr-room');
    const open = { connections: 2, websocket: 1, sse: 1 };
    await vi.waitFor(async () => expect(await byTransport()).toEqual({ stats: open, nodes: [open] }));
    // The same through a hand-written query (what the dashboard and curl users send).
    const raw = await adminQuery<{ stats: { connectionsByTransport: unknown }; nodes: Array<{ connectionsByTransport: unknown }> }>(
      t,
      '{ stats { connectionsByTransport { websocket sse } } nodes { connectionsByTransport { websocket sse } } }',
    );
    expect(raw).toEqual({ stats: { connectionsByTransport: { websocket: 1, sse: 1 } }, nodes: [{ connectionsByTransport: { websocket: 1, sse: 1 } }] });

    bob.close();
    await alice.close();
    const closed = { connections: 0, websocket: 0, sse: 0 };
    await vi.waitFor(async () => expect(await byTransport()).toEqual({ stats: closed, nodes: [closed] }));
  });
});

describe('Query.rooms', () => {
  // 7 rooms whose member counts, message counts and activity times are all chosen.
  const ROOMS = {
    'pg-a': { members: 1, messages: 3 },
    'pg-b': { members: 3, messages: 0 },
    'pg-c': { members: 2, messages: 5 },
    'pg-d': { members: 3, messages: 1 },
    'pg-e': { members: 1, messages: 2 },
    'pg-f': { members: 2, messages: 0 },
    'pg-g': { members: 4, messages: 4 },
  } as const;
  type RoomId = keyof typeof ROOMS;
  const ids = Object.keys(ROOMS) as RoomId[];
  /** Sends happen room by room in this order, so the last one (pg-d) is the most recently active. */
  const SEND_ORDER: RoomId[] = ['pg-c', 'pg-a', 'pg-g', 'pg-e', 'pg-d'];
  const EXPECTED: Record<RoomOrder, RoomId[]> = {
    MEMBERS: ['pg-g', 'pg-b', 'pg-d', 'pg-c', 'pg-f', 'pg-a', 'pg-e'], // ties by id
    MESSAGES: ['pg-c', 'pg-g', 'pg-a', 'pg-e', 'pg-d', 'pg-b', 'pg-f'],
    // latest send first; rooms without messages by creation time, newest first
    ACTIVITY: ['pg-d', 'pg-e', 'pg-g', 'pg-a', 'pg-c', 'pg-f', 'pg-b'],
    ID: ['pg-a', 'pg-b', 'pg-c', 'pg-d', 'pg-e', 'pg-f', 'pg-g'],
  };

  async function sevenRooms(t: TestApp): Promise<{ users: ChatClient[]; first: Map<RoomId, Conversation> }> {
    const users = await Promise.all(['u1', 'u2', 'u3', 'u4'].map((u) => t.client(u)));
    const first = new Map<RoomId, Conversation>();
    for (const id of ids) {
      // u1 creates each room in turn, a millisecond apart (creation time is the activity of a quiet room).
      first.set(id, await joined(users[0]!, id));
      await present(t, 'u1', id);
      await nextMillisecond();
    }
    for (const id of ids) {
      for (let u = 1; u < ROOMS[id].members; u += 1) await joined(users[u]!, id);
    }
    await vi.waitFor(() => {
      for (const id of ids) expect(t.app.service.registry.snapshot(id)?.connectionCount).toBe(ROOMS[id].members);
    });
    for (const id of SEND_ORDER) {
      for (let i = 0; i < ROOMS[id].messages; i += 1) await users[0]!.send(id, `${id} #${i}`);
      await nextMillisecond();
    }
    return { users, first };
  }

  async function pageThrough(admin: AdminClient, orderBy: RoomOrder, first: number) {
    const pages: Array<{ ids: string[]; hasNextPage: boolean; totalCount: number }> = [];
    let after: string | null = null;
    for (let guard = 0; guard < 10; guard += 1) {
      const page: Awaited<ReturnType<AdminClient['rooms']>> = await admin.rooms({ first, after, orderBy });
      pages.push({ ids: page.edges.map((e) => e.node.conversationId), hasNextPage: page.pageInfo.hasNextPage, totalCount: page.totalCount });
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
      if (!page.pageInfo.hasNextPage) return pages;
      after = page.pageInfo.endCursor;
    }
    throw new Error('pagination did not end');
  }

  it('pages 7 rooms 3 at a time in every order, without repeats or skips, with totalCount', async () => {
    await using t = await startTestApp();
    await sevenRooms(t);
    const admin = await adminClient(t);

    // The data the orders are computed from is what we set up.
    const all = await admin.rooms({ first: 100, orderBy: 'ID' });
    expect(all.edges.map((e) => [e.node.conversationId, e.node.memberCount, e.node.messagesBroadcast])).toEqual(ids.map((id) => [id, ROOMS[id].members, ROOMS[id].messages]));

    for (const orderBy of ['MEMBERS', 'MESSAGES', 'ACTIVITY', 'ID'] as const) {
      const pages = await pageThrough(admin, orderBy, 3);
      expect(pages.map((p) => p.ids.length), orderBy).toEqual([3, 3, 1]);
      expect(pages.map((p) => p.hasNextPage), orderBy).toEqual([true, true, false]);
      expect(pages.every((p) => p.totalCount === 7), orderBy).toBe(true);
      expect(pages.flatMap((p) => p.ids), orderBy).toEqual(EXPECTED[orderBy]);
    }
    // The default order is MEMBERS, the default page 20.
    const byDefault = await gql<{ rooms: { edges: Array<{ node: { conversationId: string } }> } }>(t, '{ rooms { edges { node { conversationId } } } }', { token: await adminToken(t) });
    expect(byDefault.data?.rooms.edges.map((e) => e.node.conversationId)).toEqual(EXPECTED.MEMBERS);
    // first: 0 is an empty page that still counts.
    expect(await admin.rooms({ first: 0 })).toMatchObject({ edges: [], totalCount: 7, pageInfo: { hasNextPage: true, endCursor: null } });
  });

  it('keeps its place when rooms go away between pages (keyset cursor), and refuses bad cursors and sizes', async () => {
    await using t = await startTestApp();
    const { first } = await sevenRooms(t);
    const admin = await adminClient(t);

    const page1 = await admin.rooms({ first: 3, orderBy: 'ID' });
    expect(page1.edges.map((e) => e.node.conversationId)).toEqual(['pg-a', 'pg-b', 'pg-c']);
    // pg-a (only u1) empties and disappears: an offset would now skip pg-d.
    first.get('pg-a')!.leave();
    await vi.waitFor(() => expect(t.app.service.registry.hasRoom('pg-a')).toBe(false));
    const page2 = await admin.rooms({ first: 3, after: page1.pageInfo.endCursor, orderBy: 'ID' });
    expect(page2.edges.map((e) => e.node.conversationId)).toEqual(['pg-d', 'pg-e', 'pg-f']);
    expect(page2.totalCount).toBe(6);

    for (const after of ['garbage', Buffer.from('[1,2]').toString('base64url')]) {
      const e = await adminError(admin.rooms({ first: 3, after }));
      expect(e.code).toBe('BAD_USER_INPUT');
      expect(e.status).toBe(400);
    }
    // A cursor only means something in the order that produced it.
    const e = await adminError(admin.rooms({ first: 3, after: page1.pageInfo.endCursor, orderBy: 'MEMBERS' }));
    expect(e.code).toBe('BAD_USER_INPUT');
    for (const size of [-1, 501]) expect((await adminError(admin.rooms({ first: size }))).code).toBe('BAD_USER_INPUT');
  });
});

describe('Query.room, Query.user, Query.pendingAcks, Query.deliveryReport, Query.nodes', () => {
  it('room: members, typing, pending acks and their list', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 10_000, ackRetryMs: 0 });
    const alice1 = await t.client('alice', { name: 'Alice' });
    const alice2 = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob');
    const carol = await t.client('carol', { autoAck: false });
    for (const c of [alice1, alice2, bob, carol]) await joined(c, 'ops-room');
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('ops-room')?.connectionCount).toBe(4));
    const sent = await alice1.send('ops-room', 'ack me', { ack: true });
    carol.setTyping('ops-room', true);

    const query = `query ($id: ID!) { room(conversationId: $id) {
      conversationId memberCount connectionCount typing createdAt lastActivityAt messagesBroadcast pendingAcks
      members { userId name connections joinedAt typing }
      pendingAckList { messageId conversationId senderId expected acked missing createdAt expiresAt ageMs attempts }
    } }`;
    type RoomData = {
      room: {
        conversationId: string; memberCount: number; connectionCount: number; typing: string[]; createdAt: string; lastActivityAt: string; messagesBroadcast: number; pendingAcks: number;
        members: Array<{ userId: string; name: string | null; connections: number; joinedAt: string; typing: boolean }>;
        pendingAckList: Array<{ messageId: string; conversationId: string; senderId: string; expected: string[]; acked: string[]; missing: string[]; createdAt: string; expiresAt: string; ageMs: number; attempts: number }>;
      } | null;
    };
    // bob's ack and carol's typing arrive asynchronously.
    const room = await vi.waitFor(async () => {
      const { room } = await adminQuery<RoomData>(t, query, { id: 'ops-room' });
      expect(room?.typing).toEqual(['carol']);
      expect(room?.pendingAckList[0]?.acked).toEqual(['bob']);
      return room!;
    });
    expect(room).toMatchObject({ conversationId: 'ops-room', memberCount: 3, connectionCount: 4, messagesBroadcast: 1, pendingAcks: 1 });
    expect(Date.parse(room.createdAt)).toBeLessThanOrEqual(Date.parse(room.lastActivityAt));
    const members = [...room.members].sort((x, y) => x.userId.localeCompare(y.userId));
    expect(members.map((m) => [m.userId, m.name, m.connections, m.typing])).toEqual([
      ['alice', 'Alice', 2, false],
      ['bob', null, 1, false],
      ['carol', null, 1, true],
    ]);
    for (const m of members) expect(Date.parse(m.joinedAt)).toBeGreaterThanOrEqual(Date.parse(room.createdAt));
    expect(room.pendingAckList).toHaveLength(1);
    const ack = room.pendingAckList[0]!;
    expect(ack).toMatchObject({ messageId: sent.messageId, conversationId: 'ops-room', senderId: 'alice', acked: ['bob'], missing: ['carol'], attempts: 1 });
    expect(sorted(ack.expected)).toEqual(['bob', 'carol']);
    expect(Date.parse(ack.expiresAt) - Date.parse(ack.createdAt)).toBe(10_000);
    expect(ack.ageMs).toBeGreaterThanOrEqual(0);
    expect(ack.ageMs).toBeLessThan(10_000);

    // The typed client's Room document reads the same room.
    const admin = await adminClient(t);
    expect(await admin.room('ops-room')).toMatchObject({ conversationId: 'ops-room', memberCount: 3, pendingAcks: 1, typing: ['carol'] });
    expect(await admin.room('no-such-room')).toBeNull();
  });

  it('user: connections and rooms of one user; null for a user without connections', async () => {
    await using t = await startTestApp();
    const admin = await adminClient(t);
    const alice1 = await t.client('alice');
    const alice2 = await t.client('alice');
    await joined(alice1, 'u-x');
    await joined(alice2, 'u-x');
    await joined(alice2, 'u-y');
    const dave = await t.client('dave');
    await dave.presence('u-x'); // a round trip: dave's socket is open
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('u-x')?.connectionCount).toBe(2));
    await present(t, 'alice', 'u-y');
    alice1.setTyping('u-x', true);

    const alice = await vi.waitFor(async () => {
      const user = await admin.user('alice');
      expect(user?.rooms.find((r) => r.conversationId === 'u-x')?.typing).toBe(true);
      return user!;
    });
    expect(alice.userId).toBe('alice');
    expect(alice.connections).toBe(2);
    const rooms = [...alice.rooms].sort((x, y) => x.conversationId.localeCompare(y.conversationId));
    expect(rooms.map((r) => [r.conversationId, r.connections, r.typing])).toEqual([
      ['u-x', 2, true],
      ['u-y', 1, false],
    ]);
    for (const r of rooms) expect(Number.isNaN(Date.parse(r.joinedAt))).toBe(false);
    expect(await admin.user('dave')).toEqual({ userId: 'dave', connections: 1, rooms: [] });
    expect(await admin.user('ghost')).toBeNull();
  });

  it('pendingAcks (oldest first, filter, first) and deliveryReport follow acks until the report', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 10_000, ackRetryMs: 0 });
    const admin = await adminClient(t);
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    for (const room of ['pa-1', 'pa-2']) {
      await joined(alice, room);
      await joined(bob, room);
      await present(t, 'bob', room);
    }
    const m1 = await alice.send('pa-1', 'one', { ack: true });
    await nextMillisecond();
    const m2 = await alice.send('pa-2', 'two', { ack: true });
    await nextMillisecond();
    const m3 = await alice.send('pa-1', 'three', { ack: true });

    const all = await admin.pendingAcks();
    expect(all.map((a) => a.messageId)).toEqual([m1.messageId, m2.messageId, m3.messageId]);
    for (const a of all) {
      expect(a).toMatchObject({ senderId: 'alice', expected: ['bob'], acked: [], missing: ['bob'], attempts: 1 });
      expect(Date.parse(a.expiresAt) - Date.parse(a.createdAt)).toBe(10_000);
      expect(a.ageMs).toBeGreaterThanOrEqual(0);
    }
    expect(all[0]!.ageMs).toBeGreaterThanOrEqual(all[2]!.ageMs);
    expect((await admin.pendingAcks({ first: 1 })).map((a) => a.messageId)).toEqual([m1.messageId]);
    expect((await admin.pendingAcks({ conversationId: 'pa-1' })).map((a) => a.messageId)).toEqual([m1.messageId, m3.messageId]);
    expect(await admin.pendingAcks({ conversationId: 'nowhere' })).toEqual([]);
    expect((await adminError(admin.pendingAcks({ first: 1001 }))).code).toBe('BAD_USER_INPUT');

    expect(await admin.deliveryReport(m1.messageId)).toMatchObject({ messageId: m1.messageId, conversationId: 'pa-1', status: 'pending', acked: [], missing: ['bob'], completedAt: null, latencyMs: null });
    await bob.ack('pa-1', m1.messageId);
    const report = await admin.deliveryReport(m1.messageId);
    expect(report).toMatchObject({ status: 'delivered', expected: ['bob'], acked: ['bob'], missing: [] });
    expect(report!.latencyMs).toBeGreaterThanOrEqual(0);
    expect(Date.parse(report!.completedAt!)).toBeGreaterThanOrEqual(Date.parse(report!.createdAt));
    expect((await admin.pendingAcks()).map((a) => a.messageId)).toEqual([m2.messageId, m3.messageId]);
    expect(await admin.deliveryReport('00000000-0000-0000-0000-000000000000')).toBeNull();
  });

  it('nodes: one entry for this single node, self: true', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    await joined(alice, 'n-1');
    await present(t, 'alice', 'n-1');
    const { nodes } = await adminQuery<{ nodes: Array<{ nodeId: string; address: string; connections: number; rooms: number; users: number; uptimeSeconds: number; lastHeartbeat: string; memory: { rssBytes: number }; self: boolean }> }>(
      t,
      '{ nodes { nodeId address connections rooms users uptimeSeconds lastHeartbeat memory { rssBytes } self } }',
    );
    expect(nodes).toHaveLength(1);
    const node = nodes[0]!;
    expect(node).toMatchObject({ address: new URL(t.baseUrl).host, connections: 1, rooms: 1, users: 1, self: true });
    expect(node.nodeId).not.toBe('');
    expect(node.memory.rssBytes).toBeGreaterThan(0);
    expect(Math.abs(Date.parse(node.lastHeartbeat) - Date.now())).toBeLessThan(5000);
    expect(await (await adminClient(t)).nodes()).toEqual([expect.objectContaining({ nodeId: node.nodeId, self: true })]);
  });
});

describe('Mutations', () => {
  it('broadcastSystemEvent reaches every subscriber as a `system` event; updateConversation as `conversation_updated`', async () => {
    await using t = await startTestApp();
    const admin = await adminClient(t);
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const a = await joined(alice, 'pub');
    const b = await joined(bob, 'pub');
    await present(t, 'bob', 'pub');
    const seenA = record(a);

    const systemA = a.next('system', (e) => e.event === 'maintenance');
    const systemB = b.next('system', (e) => e.event === 'maintenance');
    expect(await admin.broadcastSystemEvent({ conversationId: 'pub', event: 'maintenance', data: { inMinutes: 5, note: 'db' } })).toBe(true);
    for (const e of await Promise.all([systemA, systemB])) expect(e).toMatchObject({ type: 'system', conversationId: 'pub', event: 'maintenance', data: { inMinutes: 5, note: 'db' } });
    // data is optional (null then).
    const bare = b.next('system', (e) => e.event === 'ping');
    expect(await admin.broadcastSystemEvent({ conversationId: 'pub', event: 'ping' })).toBe(true);
    expect((await bare).data).toBeNull();

    const updatedA = a.next('conversation_updated');
    const updatedB = b.next('conversation_updated');
    expect(await admin.updateConversation({ conversationId: 'pub', changes: { title: 'Renamed', archived: false } })).toBe(true);
    for (const e of await Promise.all([updatedA, updatedB])) expect(e.changes).toEqual({ title: 'Renamed', archived: false });

    // Bad input changes nothing.
    expect((await adminError(admin.broadcastSystemEvent({ conversationId: 'not a room id!', event: 'x' }))).code).toBe('BAD_USER_INPUT');
    for (const changes of [[1, 2], 'text', null]) {
      const res = await gql(t, 'mutation ($c: JSON!) { updateConversation(conversationId: "pub", changes: $c) }', { token: await adminToken(t), variables: { c: changes } });
      expect(res.status, JSON.stringify(changes)).toBe(400);
      expect(res.data ?? null).toBeNull();
      // null fails variable coercion (no code); the others reach the resolver's check.
      if (changes !== null) expect(res.errors.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      else expect(res.errors).toHaveLength(1);
    }
    const marker = a.next('system', (e) => e.event === 'marker');
    await admin.broadcastSystemEvent({ conversationId: 'pub', event: 'marker' });
    await marker;
    // Nothing was published by the refused calls: only the four good ones reached alice.
    const published = seenA.filter((s) => s.event.type === 'system' || s.event.type === 'conversation_updated');
    expect(published.map((s) => s.event.type)).toEqual(['system', 'system', 'conversation_updated', 'system']);
  });

  it('closeRoom ends every subscription of the room (after a `room_closed` event) and returns the connections affected', async () => {
    await using t = await startTestApp();
    const admin = await adminClient(t);
    const alice1 = await t.client('alice');
    const alice2 = await t.client('alice');
    const bob = await t.client('bob');
    const doomed = [await joined(alice1, 'doomed'), await joined(alice2, 'doomed'), await joined(bob, 'doomed')];
    const survivor = await joined(alice1, 'survivor');
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('doomed')?.connectionCount).toBe(3));
    await present(t, 'alice', 'survivor');
    const ended = doomed.map(untilEnded);

    expect(await admin.closeRoom({ conversationId: 'doomed', reason: 'maintenance' })).toBe(3);
    for (const events of await Promise.all(ended)) {
      expect(events.at(-1)).toMatchObject({ type: 'system', event: 'room_closed', data: { reason: 'maintenance' } });
    }
    await vi.waitFor(async () => expect(await admin.room('doomed')).toBeNull());
    // The sockets stay open and other rooms go on.
    expect(t.app.service.registry.userConnections('alice').size).toBe(2);
    expect(t.app.service.registry.userConnections('bob').size).toBe(1);
    const still = survivor.next('system', (e) => e.event === 'still-here');
    await admin.broadcastSystemEvent({ conversationId: 'survivor', event: 'still-here' });
    await still;
    expect(await admin.closeRoom({ conversationId: 'doomed' })).toBe(0);
    expect(await admin.closeRoom({ conversationId: 'never-existed' })).toBe(0);
  });

  it('disconnectUser closes every socket of the user (terminal code 4500) and returns how many', async () => {
    await using t = await startTestApp();
    const admin = await adminClient(t);
    const closes: Array<[string, number]> = [];
    const bob1 = await t.client('bob', { onTerminalClose: (code) => closes.push(['bob1', code]) });
    const bob2 = await t.client('bob', { onTerminalClose: (code) => closes.push(['bob2', code]) });
    const carol = await t.client('carol', { onTerminalClose: (code) => closes.push(['carol', code]) });
    const alice = await t.client('alice');
    const a = await joined(alice, 'kick');
    for (const c of [bob1, bob2, carol]) await joined(c, 'kick');
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('kick')?.connectionCount).toBe(4));

    const bobGone = a.next('user_disconnected', (e) => e.userId === 'bob');
    expect(await admin.disconnectUser({ userId: 'bob', reason: 'spam' })).toBe(2);
    await vi.waitFor(() => expect(sorted(closes.map(([who]) => who))).toEqual(['bob1', 'bob2']));
    expect(closes.map(([, code]) => code)).toEqual([4500, 4500]);
    await bobGone;
    expect(await admin.user('bob')).toBeNull();
    expect(t.app.service.registry.userConnections('alice').size).toBe(1);

    // A long non-ASCII reason is cut to the close-frame limit by bytes (it used to crash the process).
    expect(await admin.disconnectUser({ userId: 'carol', reason: 'é'.repeat(100) })).toBe(1);
    await vi.waitFor(() => expect(closes).toContainEqual(['carol', 4500]));
    expect(await admin.disconnectUser({ userId: 'ghost' })).toBe(0);
    expect((await admin.room('kick'))?.members.map((m) => m.userId)).toEqual(['alice']);
  });
});

describe('Subscription.stats over SSE', () => {
  it('pushes stats every intervalMs until the client goes away; live numbers', async () => {
    await using t = await startTestApp();
    const controller = new AbortController();
    const res = await fetch(`${t.baseUrl}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${await adminToken(t)}` },
      body: JSON.stringify({ query: 'subscription { stats(intervalMs: 250) { connections activeRooms messagesBroadcast at } }' }),
      signal: controller.signal,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    type StatsEvent = { data?: { stats: { connections: number; activeRooms: number; messagesBroadcast: number; at: string } } };
    let client: Promise<ChatClient> | null = null;
    const events = await readSse(res, (seen) => {
      // After the first event, make traffic; read on until the stream shows it.
      client ??= t.client('alice').then(async (c) => {
        await joined(c, 'sse-room');
        return c;
      });
      const last = seen.at(-1)?.data as StatsEvent | undefined;
      return seen.length >= 2 && last?.data?.stats.connections === 1 && last.data.stats.activeRooms === 1;
    });
    controller.abort();
    const stats = events.filter((e) => e.event === 'next').map((e) => (e.data as StatsEvent).data!.stats);
    expect(stats.length).toBeGreaterThanOrEqual(2);
    expect(stats[0]).toMatchObject({ connections: 0, activeRooms: 0 });
    expect(stats.at(-1)).toMatchObject({ connections: 1, activeRooms: 1 });
    const times = stats.map((s) => Date.parse(s.at));
    for (let i = 1; i < times.length; i += 1) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(200);
    await client;
  });

  it('refuses an intervalMs outside 250–60000', async () => {
    await using t = await startTestApp();
    for (const intervalMs of [10, 249, 60_001]) {
      const res = await fetch(`${t.baseUrl}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${await adminToken(t)}` },
        body: JSON.stringify({ query: 'subscription ($i: Int) { stats(intervalMs: $i) { connections } }', variables: { i: intervalMs } }),
      });
      const events = await readSse(res, () => false); // the server ends the stream
      const errors = events.flatMap((e) => (e.event === 'next' ? ((e.data as { errors?: Array<{ extensions?: { code?: string } }> }).errors ?? []) : []));
      expect(errors.map((e) => e.extensions?.code), String(intervalMs)).toEqual(['BAD_USER_INPUT']);
      expect(events.some((e) => e.event === 'next' && (e.data as { data?: unknown }).data)).toBe(false);
    }
  });
});
