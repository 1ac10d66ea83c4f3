import { describe, expect, it } from 'vitest';
import { openRawSubscription } from './support/raw-socket.ts';
import { startTestApp } from './support/start-test-app.ts';
import { aboutUser, connectionsOf, dropConnections, joinLogged, syncMarker, waitUntil, aliceWatchesBobJoin } from './support/wait.ts';

/** CONTRACT §4 "Membership": users (not connections) join, leave and disconnect. */
describe('membership and presence', () => {
  it('announces user_joined to the others on a first connection, never to the joining connection', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob', { name: 'Bob' });
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    const joined = a.conversation.next('user_joined', (e) => e.userId === 'bob');
    const b = joinLogged(bob, 'room');
    await b.conversation.started;
    expect(await joined).toMatchObject({ type: 'user_joined', conversationId: 'room', userId: 'bob', name: 'Bob' });

    await syncMarker(t, 'room', a.conversation, b.conversation);
    // Bob's own join is not sent back to him; alice's join happened before bob subscribed.
    expect(b.log.filter((e) => e.event.type === 'user_joined')).toEqual([]);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
    expect(aboutUser(a.log, 'alice')).toEqual([]);
  });

  it('counts several tabs of one user as one member with several connections', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bobTab1 = await t.client('bob');
    const bobTab2 = await t.client('bob');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    const b1 = joinLogged(bobTab1, 'room');
    await b1.conversation.started;
    const b2 = joinLogged(bobTab2, 'room');
    await b2.conversation.started;

    const members = await alice.presence('room');
    expect(members.map((m) => [m.userId, m.connections]).sort()).toEqual([
      ['alice', 1],
      ['bob', 2],
    ]);
    expect((await t.app.getRoomStats('room'))).toMatchObject({ memberCount: 2, connectionCount: 3 });

    await syncMarker(t, 'room', a.conversation, b1.conversation, b2.conversation);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']); // the second tab is not a new member
    expect(aboutUser(b1.log, 'bob')).toEqual([]); // nor announced to the first tab

    // Closing one tab's subscription leaves the user present through the other.
    b1.conversation.leave();
    await waitUntil(() => t.app.service.registry.userConnectionsInRoom('bob', 'room').size === 1);
    await syncMarker(t, 'room', a.conversation, b2.conversation);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
    expect((await alice.presence('room')).find((m) => m.userId === 'bob')?.connections).toBe(1);

    // The last one leaving is the user leaving.
    const left = a.conversation.next('user_left', (e) => e.userId === 'bob');
    b2.conversation.leave();
    await left;
    expect((await alice.presence('room')).map((m) => m.userId)).toEqual(['alice']);
  });

  it('counts two subscriptions of one socket to the same room as one presence', async () => {
    await using t = await startTestApp();
    const { bob, a, b: first } = await aliceWatchesBobJoin(t);
    const second = bob.join('room');
    await second.started;
    expect((await t.app.getRoomStats('room'))?.members.find((m) => m.userId === 'bob')?.connections).toBe(1);

    first.leave();
    await syncMarker(t, 'room', a.conversation, second);
    expect(t.app.service.registry.isMember('bob', 'room')).toBe(true);

    const left = a.conversation.next('user_left', (e) => e.userId === 'bob');
    second.leave();
    await left;
    await syncMarker(t, 'room', a.conversation);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'user_left']);
  });

  it('announces user_left when the last subscription stops while the socket stays open', async () => {
    await using t = await startTestApp();
    const { bob, a, b } = await aliceWatchesBobJoin(t);
    // Bob's `started` comes once he counts as present: alice has been told, or is being told.
    await waitUntil(() => aboutUser(a.log, 'bob').includes('user_joined'), { what: "alice to hear bob's join" });

    const left = a.conversation.next('user_left', (e) => e.userId === 'bob');
    b.leave();
    expect(await left).toMatchObject({ type: 'user_left', conversationId: 'room', userId: 'bob' });

    // The socket is still up and usable; the user is just not in the room any more.
    expect(t.app.service.registry.userConnections('bob').size).toBe(1);
    expect(await bob.trpc.conversation.mine.query()).toEqual([]);
    expect((await bob.presence('room')).map((m) => m.userId)).toEqual(['alice']);
    await syncMarker(t, 'room', a.conversation);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'user_left']); // no user_disconnected
  });

  describe('with presenceGraceMs: 0', () => {
    it('announces user_disconnected at once when the last connection drops', async () => {
      await using t = await startTestApp({ presenceGraceMs: 0 });
      const alice = await t.client('alice');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const joined = a.conversation.next('user_joined', (e) => e.userId === 'bob');
      const bob = await openRawSubscription(t, 'bob', 'room');
      await joined;

      const gone = a.conversation.next('user_disconnected', (e) => e.userId === 'bob');
      await bob.terminate();
      // Announced synchronously with the drop: presence no longer has bob, and no ghost either.
      expect((await t.app.getRoomUsers('room')).map((m) => m.userId)).toEqual(['alice']);
      expect(t.app.service.internals().graceTimers).toBe(0);
      expect(await gone).toMatchObject({ type: 'user_disconnected', userId: 'bob' });
      await syncMarker(t, 'room', a.conversation);
      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'user_disconnected']);
    });

    it('says nothing when one of two connections drops', async () => {
      await using t = await startTestApp({ presenceGraceMs: 0 });
      const { alice, a, b } = await aliceWatchesBobJoin(t);
      const bobRaw = await openRawSubscription(t, 'bob', 'room');

      await bobRaw.terminate();
      await syncMarker(t, 'room', a.conversation, b);
      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
      expect((await alice.presence('room')).find((m) => m.userId === 'bob')?.connections).toBe(1);
    });

    it('announces user_disconnected when the server closes the last connection', async () => {
      await using t = await startTestApp({ presenceGraceMs: 0 });
      const alice = await t.client('alice');
      const bob = await t.client('bob');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      await bob.join('room').started;

      const gone = a.conversation.next('user_disconnected', (e) => e.userId === 'bob');
      expect(t.app.service.disconnectUser('bob')).toBe(1); // terminal close: bob's client gives up
      await gone;
      await syncMarker(t, 'room', a.conversation);
      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'user_disconnected']);
      expect((await t.app.getRoomUsers('room')).map((m) => m.userId)).toEqual(['alice']);
    });
  });

  describe('with a presence grace of 300 ms', () => {
    const presenceGraceMs = 300;

    it('keeps a dropped user present until the grace ends, then announces user_disconnected', async () => {
      await using t = await startTestApp({ presenceGraceMs });
      const alice = await t.client('alice');
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const joined = a.conversation.next('user_joined', (e) => e.userId === 'bob');
      const bob = await openRawSubscription(t, 'bob', 'room');
      await joined;

      const gone = a.conversation.next('user_disconnected', (e) => e.userId === 'bob', 3000);
      const droppedAt = Date.now();
      await bob.terminate();
      // Inside the grace: still a member (with no connection), not announced yet.
      expect((await alice.presence('room')).find((m) => m.userId === 'bob')).toMatchObject({ connections: 0, typing: false });
      expect(t.app.service.internals().graceTimers).toBe(1);
      await syncMarker(t, 'room', a.conversation);
      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);

      await gone;
      expect(Date.now() - droppedAt).toBeGreaterThanOrEqual(presenceGraceMs - 5);
      expect((await alice.presence('room')).map((m) => m.userId)).toEqual(['alice']);
      expect(t.app.service.internals().graceTimers).toBe(0);
      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'user_disconnected']);
    });

    it('announces nothing when the user reconnects within the grace (no user_disconnected, no second user_joined)', async () => {
      await using t = await startTestApp({ presenceGraceMs });
      const { alice, a } = await aliceWatchesBobJoin(t);
      const carolJoined = a.conversation.next('user_joined', (e) => e.userId === 'carol');
      const carol = await openRawSubscription(t, 'carol', 'room');
      await carolJoined;

      // Bob's socket drops with a reconnect code; his client comes back and resumes by itself.
      await dropConnections(t, 'bob');
      // Carol drops after bob and does not come back: her grace timer, started after bob's with
      // the same length, fires after bob's would have. Her user_disconnected is the proof point.
      const carolGone = a.conversation.next('user_disconnected', (e) => e.userId === 'carol', 3000);
      await carol.terminate();
      await connectionsOf(t, 'bob', 1);
      await waitUntil(() => t.app.service.registry.isMember('bob', 'room'), { what: 'bob to resubscribe' });
      await carolGone;

      expect(aboutUser(a.log, 'bob')).toEqual(['user_joined']);
      expect((await alice.presence('room')).map((m) => [m.userId, m.connections]).sort()).toEqual([
        ['alice', 1],
        ['bob', 1],
      ]);
      expect(t.app.service.internals().graceTimers).toBe(0);
    });
  });

  it('lists the rooms the caller is present in with conversation.mine', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const aliceTab2 = await t.client('alice');
    const bob = await t.client('bob');
    const r1 = alice.join('r1');
    const r2 = alice.join('r2');
    await Promise.all([r1.started, r2.started]);
    await bob.join('r2').started;
    await aliceTab2.join('r2').started;

    const mine = await alice.trpc.conversation.mine.query();
    expect(mine.map((r) => [r.conversationId, r.connections]).sort()).toEqual([
      ['r1', 1],
      ['r2', 2],
    ]);
    expect(mine[0]?.joinedAt).toBeInstanceOf(Date);
    expect((await bob.trpc.conversation.mine.query()).map((r) => r.conversationId)).toEqual(['r2']);

    r1.leave();
    await waitUntil(() => !t.app.service.registry.isMember('alice', 'r1'));
    expect((await alice.trpc.conversation.mine.query()).map((r) => r.conversationId)).toEqual(['r2']);
    // Any connection of the user answers for the user, not for the socket.
    expect((await aliceTab2.trpc.conversation.mine.query()).map((r) => r.conversationId)).toEqual(['r2']);
  });

  it('shows who is typing in conversation.presence', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob');
    const a = alice.join('room');
    await a.started;
    await bob.join('room').started;

    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    const members = await alice.presence('room');
    expect(members.find((m) => m.userId === 'bob')).toMatchObject({ typing: true, connections: 1 });
    expect(members.find((m) => m.userId === 'alice')).toMatchObject({ name: 'Alice', typing: false, connections: 1 });
    expect(members.find((m) => m.userId === 'alice')?.joinedAt).toBeInstanceOf(Date);

    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: false });
    expect((await alice.presence('room')).find((m) => m.userId === 'bob')?.typing).toBe(false);
  });

  it('removes an empty room from memory at once, whether its members leave or drop', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const a = alice.join('room');
    await a.started;
    const bob = await openRawSubscription(t, 'bob', 'room');
    expect((await t.app.getRoomStats('room'))).toMatchObject({ conversationId: 'room', memberCount: 2 });
    expect(t.app.service.registry.counts().rooms).toBe(1);

    await bob.terminate();
    expect((await t.app.getRoomStats('room'))?.memberCount).toBe(1);
    a.leave();
    await waitUntil(() => t.app.service.registry.snapshot('room') === undefined, { what: 'the room to be removed' });
    expect(t.app.service.registry.counts().rooms).toBe(0);
    expect((await t.app.getRoomUsers('room'))).toEqual([]);
    expect(await alice.presence('room')).toEqual([]);
    const internals = t.app.service.internals();
    expect({ subscribedRooms: internals.subscribedRooms, brokerSubscriptions: internals.brokerSubscriptions }).toEqual({ subscribedRooms: 0, brokerSubscriptions: 0 });
  });
});
