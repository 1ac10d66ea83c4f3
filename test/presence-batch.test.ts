import { createTRPCClient, httpLink, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { createChatClient, type ChatClient, type Conversation, type PresenceView, type RoomEvent } from '../clients/chat/index.ts';
import { loadConfig } from '../src/config.ts';
import type { AppRouter } from '../src/transport/router.ts';
import { describeWithRedis, startCluster, type ClusterNode } from './support/cluster.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';
import { dropConnections, joinLogged, recordRaw, syncMarker, waitUntil, type RecordedEvent } from './support/wait.ts';

/**
 * Issue 13, presence without storms: a presence change in a quiet room goes out at once as
 * today's single event; changes within the next PRESENCE_BATCH_MS are coalesced into one stored
 * `presence_diff` (net per user), published before any other stored event of the room.
 */

const PRESENCE_TYPES = new Set<RoomEvent['type']>(['user_joined', 'user_left', 'user_disconnected', 'presence_diff']);
const presenceOf = (log: readonly RecordedEvent[]) => log.filter((e) => PRESENCE_TYPES.has(e.event.type)).map((e) => e.event);

/** Resolves once no presence window is open on the server: the room is quiet again. */
const quiet = (t: TestApp) => waitUntil(() => t.app.service.internals().presenceWindows === 0, { what: 'the presence windows to close' });

/** Resolves once the typed client's presence model lists exactly `userIds` and is complete. */
const modelIs = (c: Conversation, userIds: string[], what = 'the presence model') =>
  waitUntil(() => sameMembers(c.presence, userIds), { timeoutMs: 10_000, what: `${what} to be ${userIds.join(', ')}` });

function sameMembers(view: PresenceView, userIds: readonly string[]): boolean {
  return view.complete && view.members.size === userIds.length && userIds.every((u) => view.members.has(u)) && view.memberCount === userIds.length;
}

describe('presence batching (PRESENCE_BATCH_MS)', () => {
  it('PRESENCE_BATCH_MS defaults to 50 and is validated like every setting', () => {
    expect(loadConfig({}).presenceBatchMs).toBe(50);
    expect(loadConfig({ PRESENCE_BATCH_MS: '0' }).presenceBatchMs).toBe(0);
    expect(() => loadConfig({ PRESENCE_BATCH_MS: '-1' })).toThrow(/^Invalid configuration: PRESENCE_BATCH_MS="-1" /);
    expect(() => loadConfig({ PRESENCE_BATCH_MS: 'soon' })).toThrow(/PRESENCE_BATCH_MS="soon" must be a whole number/);
  });

  it('a single join in a quiet room goes out at once, as the user_joined it always was', async () => {
    await using t = await startTestApp({ presenceBatchMs: 2000 });
    const alice = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob', { name: 'Bob' });
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    // Alice's own join opened a window; once it has passed without changes the room is quiet.
    await quiet(t);
    const joined = a.conversation.next('user_joined', (e) => e.userId === 'bob', 1000); // well inside the 2 s window
    const b = joinLogged(bob, 'room');
    await b.conversation.started;
    const event = await joined;
    expect(event).toEqual({ type: 'user_joined', conversationId: 'room', at: expect.any(Date), userId: 'bob', name: 'Bob' });
    await syncMarker(t, 'room', a.conversation, b.conversation);
    expect(presenceOf(b.log)).toEqual([]); // never to the joining connection
    expect(presenceOf(a.log).map((e) => e.type)).toEqual(['user_joined']);
  });

  it('joins within a window arrive as one presence_diff; a join and a leave inside it cancel out', async () => {
    // A 1 s window: four sequential joins and a leave must fit in it even on a loaded machine.
    await using t = await startTestApp({ presenceBatchMs: 1000 });
    const alice = await t.client('alice');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    await quiet(t);
    const clients = new Map<string, ChatClient>();
    for (const u of ['bob', 'carol', 'dave', 'erin']) clients.set(u, await t.client(u, { name: u.toUpperCase() }));
    const diff = a.conversation.next('presence_diff');
    // bob: the leading single event. carol, dave, erin: inside its window. erin leaves again at once.
    await clients.get('bob')!.join('room').started;
    await clients.get('carol')!.join('room').started;
    await clients.get('dave')!.join('room').started;
    const erin = clients.get('erin')!.join('room');
    await erin.started;
    erin.leave();
    await waitUntil(() => !t.app.service.registry.isMember('erin', 'room'));
    const event = await diff;
    expect(event.joins).toEqual(expect.arrayContaining([{ userId: 'carol', name: 'CAROL' }, { userId: 'dave', name: 'DAVE' }]));
    expect(event.joins).toHaveLength(2);
    expect(event.leaves).toEqual([]);
    await syncMarker(t, 'room', a.conversation);
    const seen = presenceOf(a.log);
    expect(seen.map((e) => e.type)).toEqual(['user_joined', 'presence_diff']);
    expect(seen[0]).toMatchObject({ type: 'user_joined', userId: 'bob' });
    // The typed client's model agrees with the server, erin nowhere.
    await modelIs(a.conversation, ['alice', 'bob', 'carol', 'dave']);
    // Nothing is left behind once the room is quiet: no window, no pending change.
    await quiet(t);
    expect(t.app.service.internals()).toMatchObject({ presenceWindows: 0, presencePending: 0 });
  });

  it('a long burst makes the windows grow: 1.5 s of joins every 30 ms is a handful of presence events, not one per 50 ms', async () => {
    await using t = await startTestApp({ presenceBatchMs: 50, subscribeRatePerSec: 1000, subscribeRateBurst: 1000 });
    const alice = await t.client('alice');
    const a = joinLogged(alice, 'burst');
    await a.conversation.started;
    await quiet(t);
    const users = Array.from({ length: 50 }, (_, i) => `u${String(i).padStart(2, '0')}`);
    const clients = await Promise.all(users.map((u) => t.client(u)));
    const started = Date.now();
    for (const [i, c] of clients.entries()) {
      const due = started + i * 30;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      void c.join('burst');
    }
    await modelIs(a.conversation, ['alice', ...users]);
    await quiet(t);
    const events = presenceOf(a.log);
    // Fixed 50 ms windows over ~1.5 s would be ~30 events; doubling windows (50…400 ms) about 7.
    expect(events.length).toBeLessThanOrEqual(10);
    // The burst opens with one single event, for whichever join the server handled first (two
    // sockets' frames can overtake each other when the test process stalls).
    expect(events[0]).toMatchObject({ type: 'user_joined' });
    expect(users).toContain((events[0] as { userId: string }).userId);
    expect(new Set(events.flatMap((e) => (e.type === 'presence_diff' ? e.joins.map((j) => j.userId) : e.type === 'user_joined' ? [e.userId] : [])))).toEqual(new Set(users));
  });

  it('leaves inside a window carry their reason; PRESENCE_BATCH_MS=0 keeps single events', async () => {
    {
      await using t = await startTestApp({ presenceBatchMs: 300 });
      const alice = await t.client('alice');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const others = await Promise.all(['bob', 'carol', 'dave'].map((u) => t.client(u)));
      const joins = others.map((c) => c.join('room'));
      await Promise.all(joins.map((j) => j.started));
      await syncMarker(t, 'room', a.conversation);
      await quiet(t);
      const diff = a.conversation.next('presence_diff');
      joins[0]!.leave(); // bob: the leading single user_left
      await waitUntil(() => !t.app.service.registry.isMember('bob', 'room'));
      joins[1]!.leave(); // carol: left, inside the window
      await dropConnections(t, 'dave', 'kicked'); // dave: disconnected (PRESENCE_GRACE_MS 0; 4500 is terminal), inside the window
      const event = await diff;
      expect(event.joins).toEqual([]);
      expect(event.leaves).toEqual(expect.arrayContaining([{ userId: 'carol', reason: 'left' }, { userId: 'dave', reason: 'disconnected' }]));
      expect(event.leaves).toHaveLength(2);
      await modelIs(a.conversation, ['alice']);
    }
    {
      await using t = await startTestApp({ presenceBatchMs: 0 });
      const alice = await t.client('alice');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const others = await Promise.all(['bob', 'carol', 'dave'].map((u) => t.client(u)));
      await Promise.all(others.map((c) => c.join('room').started));
      await syncMarker(t, 'room', a.conversation);
      const seen = presenceOf(a.log);
      expect(seen.map((e) => e.type)).toEqual(['user_joined', 'user_joined', 'user_joined']);
      expect(seen.map((e) => (e.type === 'user_joined' ? e.userId : '')).sort()).toEqual(['bob', 'carol', 'dave']);
      expect(t.app.service.internals()).toMatchObject({ presenceWindows: 0, presencePending: 0 });
    }
  });

  it('a message from a user who just joined never precedes its join', async () => {
    await using t = await startTestApp({ presenceBatchMs: 2500 });
    const alice = await t.client('alice');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    await quiet(t);
    const bob = await t.client('bob');
    await bob.join('room').started; // the leading single event: opens a 2.5 s window
    for (const u of ['carol', 'dave']) {
      const c = await t.client(u);
      await c.join('room').started; // buffered in the window
      await c.send('room', `hello from ${u}`);
    }
    await syncMarker(t, 'room', a.conversation);
    const kinds = a.log.map(({ event }) =>
      event.type === 'message' ? `message:${event.message.senderId}` : event.type === 'presence_diff' ? `diff:${event.joins.map((j) => j.userId).join('+')}` : event.type === 'user_joined' ? `joined:${event.userId}` : event.type,
    );
    // Each send flushed the pending diff first: no message before its sender's join, long before the window ended.
    expect(kinds).toEqual(['joined:bob', 'diff:carol', 'message:carol', 'diff:dave', 'message:dave', 'system']);
  });

  it('stores diffs: a resume replays them (without the resuming user\'s own entries)', async () => {
    await using t = await startTestApp({ presenceBatchMs: 300 });
    const alice = await t.client('alice');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    await quiet(t);
    const xTab1 = await t.client('xavier');
    const bob = await t.client('bob');
    const carol = await t.client('carol');
    const diff = a.conversation.next('presence_diff');
    await carol.join('room').started; // leading single event
    const x = recordRaw(xTab1, 'room');
    await x.started();
    await bob.join('room').started;
    const live = await diff;
    expect(live.joins.map((j) => j.userId).sort()).toEqual(['bob', 'xavier']);
    // Live, the diff reaches every subscriber, xavier too (it lists xavier itself).
    const xLive = await x.until((e) => e.event.type === 'presence_diff');
    expect(xLive.event).toMatchObject({ type: 'presence_diff', joins: expect.arrayContaining([{ userId: 'xavier' }, { userId: 'bob' }]) });
    // Another tab of xavier resumes from xavier's first position: the stored diff is replayed,
    // with the same id and without xavier's own entry.
    const from = x.positions[0]!.id;
    const xTab2 = await t.client('xavier');
    const replay = recordRaw(xTab2, 'room', from);
    const replayed = await replay.until((e) => e.event.type === 'presence_diff');
    expect(replayed.id).toBe(xLive.id);
    expect(replayed.event).toMatchObject({ type: 'presence_diff', joins: [{ userId: 'bob' }], leaves: [] });
    expect(replay.positions[0]!.event).toMatchObject({ type: 'subscribed', resumed: true });
    x.stop();
    replay.stop();
  });

  it('pages conversation.presence by user id over the stock @trpc/client (after, limit, next, memberCount)', async () => {
    await using t = await startTestApp();
    const users = Array.from({ length: 25 }, (_, i) => `user-${String(i).padStart(2, '0')}`);
    const clients = await Promise.all(users.map((u) => t.client(u, { name: u.toUpperCase() })));
    await Promise.all(clients.map((c) => c.join('room').started));
    const trpc = createTRPCClient<AppRouter>({
      links: [httpLink({ url: `${t.baseUrl}/trpc`, transformer: superjson, headers: async () => ({ authorization: `Bearer ${await t.token('reader')}` }) })],
    });
    const all = await trpc.conversation.presence.query({ conversationId: 'room' });
    expect(all).toMatchObject({ memberCount: 25, next: null });
    expect(all.members.map((m) => m.userId)).toEqual(users);
    expect(all.members[0]).toEqual({ userId: 'user-00', name: 'USER-00', connections: 1, joinedAt: expect.any(Date), typing: false });

    const pages: string[][] = [];
    let after: string | undefined;
    for (;;) {
      const page = await trpc.conversation.presence.query({ conversationId: 'room', limit: 10, ...(after !== undefined && { after }) });
      expect(page.memberCount).toBe(25);
      pages.push(page.members.map((m) => m.userId));
      if (page.next === null) break;
      expect(page.next).toBe(page.members.at(-1)!.userId);
      after = page.next;
    }
    expect(pages.map((p) => p.length)).toEqual([10, 10, 5]);
    expect(pages.flat()).toEqual(users);
    // `after` need not be a member: the page starts after it in user id order.
    const from = await trpc.conversation.presence.query({ conversationId: 'room', after: 'user-19x', limit: 3 });
    expect(from.members.map((m) => m.userId)).toEqual(['user-20', 'user-21', 'user-22']);
    expect(from.next).toBe('user-22');
    expect(await trpc.conversation.presence.query({ conversationId: 'room', after: 'zzz' })).toEqual({ members: [], memberCount: 25, next: null });
    for (const limit of [0, 1001, 1.5]) {
      const error = await trpc.conversation.presence.query({ conversationId: 'room', limit }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<AppRouter>).data?.code).toBe('BAD_REQUEST');
      expect((error as Error).message).toContain('limit');
    }
  });

  it('the typed client pages in members its snapshot does not list, and stays right while events arrive', async () => {
    await using t = await startTestApp({ presenceBatchMs: 20 });
    const users = Array.from({ length: 130 }, (_, i) => `m-${String(i).padStart(3, '0')}`);
    const clients: ChatClient[] = [];
    for (let i = 0; i < users.length; i += 30) {
      const batch = await Promise.all(users.slice(i, i + 30).map((u) => t.client(u)));
      clients.push(...batch);
      await Promise.all(batch.map((c) => c.join('room').started));
    }
    const late = await t.client('late');
    const conversation = late.join('room');
    // Presence changes while the page request may be in flight: the model must end with them.
    const leaving = clients.slice(0, 5);
    await conversation.started;
    await Promise.all(leaving.map((c) => c.close()));
    const changes: number[] = [];
    const off = conversation.onPresence((view) => changes.push(view.members.size));
    await modelIs(conversation, ['late', ...users.slice(5)], 'the late joiner\'s model');
    expect(changes.length).toBeGreaterThan(0);
    off();
    // Typing is part of the model too.
    const typist = clients.at(-1)!;
    typist.setTyping('room', true);
    await waitUntil(() => conversation.presence.members.get(users.at(-1)!)?.typing === true, { what: 'the typist to show as typing' });
    typist.setTyping('room', false);
    await waitUntil(() => conversation.presence.members.get(users.at(-1)!)?.typing === false, { what: 'the typist to stop' });
    // A resume starts from a fresh snapshot (and pages again); meanwhile two more leave.
    await dropConnections(t, 'late');
    await Promise.all(clients.slice(5, 7).map((c) => c.close()));
    await modelIs(conversation, ['late', ...users.slice(7)], 'the model after a resume');
  });
});

describeWithRedis('presence batching in a cluster', () => {
  it('joins and leaves on two nodes end in the same, correct view on both', async () => {
    await using cluster = await startCluster({ nodes: 2, label: 'presence-batch', env: { PRESENCE_BATCH_MS: '50', CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '3000' } });
    const [n1, n2] = cluster.nodes as [ClusterNode, ClusterNode];
    const clients: ChatClient[] = [];
    const connect = async (userId: string, url: string) => {
      const c = createChatClient({ url, token: await cluster.token(userId), retryDelayMs: () => 50 });
      clients.push(c);
      return c;
    };
    try {
      const logged1 = joinLogged(await connect('watch-1', n1.wsUrl), 'room');
      const watcher1 = logged1.conversation;
      const watcher2 = (await connect('watch-2', n2.wsUrl)).join('room');
      await Promise.all([watcher1.started, watcher2.started]);
      // 40 users, half on each node, some with a tab on both; joining at once.
      const users = Array.from({ length: 40 }, (_, i) => `u-${String(i).padStart(2, '0')}`);
      const joins = await Promise.all(
        users.map(async (u, i) => {
          const c = await connect(u, i % 2 === 0 ? n1.wsUrl : n2.wsUrl);
          const j = c.join('room');
          await j.started;
          return { user: u, client: c, join: j };
        }),
      );
      const both = await Promise.all(users.slice(0, 10).map(async (u, i) => (await connect(u, i % 2 === 0 ? n2.wsUrl : n1.wsUrl)).join('room')));
      await Promise.all(both.map((j) => j.started));
      // Then a quarter leave again (their only tab), a few while their other tab stays.
      for (const { join } of joins.slice(30)) join.leave();
      for (const { join } of joins.slice(0, 4)) join.leave(); // still present through their other tab
      const expected = ['watch-1', 'watch-2', ...users.slice(0, 30)].sort();
      const truth = async () => (await (await connect('reader', n1.wsUrl)).presence('room')).map((m) => m.userId).sort();
      await waitUntil(() => sameMembers(watcher1.presence, expected) && sameMembers(watcher2.presence, expected), { timeoutMs: 15_000, what: 'both watchers to see the 32 members' });
      expect(await truth()).toEqual(expected);
      // A member joining late on either node gets the same view (snapshot + pages).
      const late = (await connect('late', n2.wsUrl)).join('room');
      await modelIs(late, [...expected, 'late'].sort(), 'a late member on node 2');
      // Pages from the cluster's presence store, on either node: ordered by user id, complete.
      const reader2 = await connect('reader-2', n2.wsUrl);
      const pages: string[] = [];
      for (let after: string | undefined; ; ) {
        const page = await reader2.trpc.conversation.presence.query({ conversationId: 'room', limit: 7, ...(after !== undefined && { after }) });
        expect(page.memberCount).toBe(expected.length + 1);
        pages.push(...page.members.map((m) => m.userId));
        if (page.next === null) break;
        after = page.next;
      }
      expect(pages).toEqual([...expected, 'late'].sort());

      // Members who join on node 2 and send at once: on node 1 each join (single or in a diff,
      // re-checked against Redis first) comes before the member's message.
      const talkers = ['t-1', 't-2', 't-3', 't-4', 't-5'];
      await Promise.all(
        talkers.map(async (u) => {
          const c = await connect(u, n2.wsUrl);
          await c.join('room').started;
          await c.send('room', `hi from ${u}`);
        }),
      );
      await waitUntil(() => talkers.every((u) => logged1.log.some((e) => e.event.type === 'message' && e.event.message.senderId === u)), { timeoutMs: 10_000, what: 'the talkers\' messages on node 1' });
      for (const u of talkers) {
        const joinedAt = logged1.log.findIndex(({ event }) => (event.type === 'user_joined' && event.userId === u) || (event.type === 'presence_diff' && event.joins.some((j) => j.userId === u)));
        const saidAt = logged1.log.findIndex(({ event }) => event.type === 'message' && event.message.senderId === u);
        expect(joinedAt, `${u}'s join`).toBeGreaterThanOrEqual(0);
        expect(joinedAt, `${u}'s join before its message`).toBeLessThan(saidAt);
      }
    } finally {
      await Promise.allSettled(clients.map((c) => c.close()));
    }
  }, 60_000);
});
