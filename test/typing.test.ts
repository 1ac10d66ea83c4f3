import { setTimeout as sleep } from 'node:timers/promises';
import { TRPCClientError } from '@trpc/client';
import { describe, expect, it, vi } from 'vitest';
import type { RoomEvent } from '../clients/chat/index.ts';
import { openRawSubscription } from './support/raw-socket.ts';
import { startTestApp } from './support/start-test-app.ts';
import { aboutUser, joinLogged, recordRaw, syncMarker, type RecordedEvent, aliceWatchesBobJoin } from './support/wait.ts';

/** CONTRACT §4 "Typing" and the `typing` row of the RoomEvent table. */
describe('typing', () => {
  const typingOf = (log: readonly RecordedEvent[]) =>
    log.flatMap(({ event }) => (event.type === 'typing' ? [`${event.userId}:${event.isTyping}`] : []));

  it('is idempotent: the room sees changes of state, not every call', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const a = alice.join('room');
    await a.started;
    const b = joinLogged(bob, 'room');
    await b.conversation.started;

    const set = (isTyping: boolean) => alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping });
    expect(await set(true)).toEqual({ ok: true });
    expect(await set(true)).toEqual({ ok: true });
    expect((await t.app.getRoomStats('room'))?.typing).toEqual(['alice']);
    await set(false);
    await set(false);
    await syncMarker(t, 'room', b.conversation);
    expect(typingOf(b.log)).toEqual(['alice:true', 'alice:false']);
    const first = b.log.find((e) => e.event.type === 'typing')?.event;
    expect(first).toMatchObject({ type: 'typing', conversationId: 'room', userId: 'alice', isTyping: true });
    expect(first?.at).toBeInstanceOf(Date);
  });

  it("is not sent to any of the typing user's own connections", async () => {
    await using t = await startTestApp();
    const aliceTab1 = await t.client('alice');
    const aliceTab2 = await t.client('alice');
    const bob = await t.client('bob');
    const a1 = joinLogged(aliceTab1, 'room');
    const a2 = joinLogged(aliceTab2, 'room');
    const b = joinLogged(bob, 'room');
    await Promise.all([a1.conversation.started, a2.conversation.started, b.conversation.started]);

    await aliceTab1.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    await syncMarker(t, 'room', a1.conversation, a2.conversation, b.conversation);
    expect(typingOf(a1.log)).toEqual(['bob:true']);
    expect(typingOf(a2.log)).toEqual(['bob:true']);
    expect(typingOf(b.log)).toEqual(['alice:true']);
  });

  it('turns off by itself after TYPING_TIMEOUT_MS without a refresh', async () => {
    const typingTimeoutMs = 200;
    await using t = await startTestApp({ typingTimeoutMs });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    await bob.join('room').started;

    let off = a.conversation.next('typing', (e) => !e.isTyping, 3000);
    let setAt = Date.now();
    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    await off;
    expect(Date.now() - setAt).toBeGreaterThanOrEqual(typingTimeoutMs - 5);
    expect((await alice.presence('room')).find((m) => m.userId === 'bob')?.typing).toBe(false);
    expect(t.app.service.internals().typing).toBe(0);

    // A refresh restarts the timeout. Time has to pass between the two calls for that to show,
    // and there is no event to wait for (a refresh sends nothing), hence the bounded wait.
    off = a.conversation.next('typing', (e) => !e.isTyping, 3000);
    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    await sleep(typingTimeoutMs / 2);
    setAt = Date.now();
    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    await off;
    expect(Date.now() - setAt).toBeGreaterThanOrEqual(typingTimeoutMs - 5);
    expect(typingOf(a.log)).toEqual(['bob:true', 'bob:false', 'bob:true', 'bob:false']);
  });

  it('turns off at once when the typing user leaves the room', async () => {
    await using t = await startTestApp({ typingTimeoutMs: 60_000 });
    const { bob, a, b } = await aliceWatchesBobJoin(t);
    await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });

    const left = a.conversation.next('user_left');
    b.leave();
    await left;
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'typing:true', 'typing:false', 'user_left']);
    expect(t.app.service.internals().typing).toBe(0);
  });

  it('turns off at once when the typing connection drops, before any presence grace ends', async () => {
    await using t = await startTestApp({ typingTimeoutMs: 60_000, presenceGraceMs: 60_000 });
    const alice = await t.client('alice');
    const a = joinLogged(alice, 'room');
    await a.conversation.started;
    const joined = a.conversation.next('user_joined');
    const bob = await openRawSubscription(t, 'bob', 'room');
    await joined;
    expect(await bob.mutate('typing.set', { conversationId: 'room', isTyping: true })).toHaveProperty('result');

    const off = a.conversation.next('typing', (e) => !e.isTyping);
    await bob.terminate();
    await off;
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'typing:true', 'typing:false']); // bob is still within his grace
    expect((await alice.presence('room')).find((m) => m.userId === 'bob')).toMatchObject({ connections: 0, typing: false });
    expect(t.app.service.internals().typing).toBe(0);
  });

  it('turns off when the connection that set it drops, even if another tab stays', async () => {
    await using t = await startTestApp({ typingTimeoutMs: 60_000 });
    const { a, b } = await aliceWatchesBobJoin(t);
    const bobRaw = await openRawSubscription(t, 'bob', 'room');
    expect(await bobRaw.mutate('typing.set', { conversationId: 'room', isTyping: true })).toHaveProperty('result');

    await bobRaw.terminate();
    await syncMarker(t, 'room', a.conversation, b);
    expect(aboutUser(a.log, 'bob')).toEqual(['user_joined', 'typing:true', 'typing:false']);
    expect(t.app.service.registry.isMember('bob', 'room')).toBe(true);
  });

  it('is ephemeral: a resuming subscriber gets the stored events it missed, never typing', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    const a = alice.join('room');
    await a.started;
    const { eventId: before } = await t.app.broadcastSystemEvent('room', 'before');
    await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    const sent = await alice.send('room', 'while typing');
    await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: false });

    const c = recordRaw(carol, 'room', before);
    await c.until((e) => e.event.type === 'message');
    const { eventId: live } = await t.app.broadcastSystemEvent('room', 'live');
    await c.until((e) => e.id === live);
    expect(c.events.map((e) => e.event.type)).toEqual(['message', 'system']);
    expect(c.events[0]?.id).toBe(sent.eventId);

    // Typing after the join is live, and reaches the late subscriber like anyone else.
    await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
    const typing = await c.until((e) => e.event.type === 'typing');
    expect(typing.event).toMatchObject<Partial<RoomEvent>>({ type: 'typing', userId: 'alice', isTyping: true });
  });

  it('refuses typing.set(true) from a user who is not in the room with PRECONDITION_FAILED', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bob = await t.client('bob', { conversations: ['other'] });
    await alice.join('room').started;

    const notMember = await alice.trpc.typing.set.mutate({ conversationId: 'elsewhere', isTyping: true }).catch((e: unknown) => e);
    expect(notMember).toBeInstanceOf(TRPCClientError);
    expect((notMember as TRPCClientError<never>).data).toMatchObject({ code: 'PRECONDITION_FAILED' });
    const forbidden = await bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true }).catch((e: unknown) => e);
    expect((forbidden as TRPCClientError<never>).data).toMatchObject({ code: 'FORBIDDEN' });
    expect(t.app.service.internals().typing).toBe(0);
    expect((await t.app.getRoomStats('room'))?.typing).toEqual([]);
  });

  describe('chat client setTyping', () => {
    it('sends one typing.set for a burst of keystrokes and refreshes only after the throttle interval', async () => {
      const typingThrottleMs = 100;
      await using t = await startTestApp();
      const alice = await t.client('alice', { typingThrottleMs, typingIdleMs: 60_000 });
      const bob = await t.client('bob');
      await alice.join('room').started;
      const b = joinLogged(bob, 'room');
      await b.conversation.started;
      // A pass-through spy: counts what reaches the server, changes nothing.
      const calls = vi.spyOn(t.app.service, 'setTyping');

      const on = b.conversation.next('typing', (e) => e.isTyping);
      for (let i = 0; i < 25; i += 1) alice.setTyping('room', true);
      await on;
      // Mutations on one socket are handled in order: once this one is through, any extra
      // typing.set from the burst would have been too.
      await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true });
      expect(calls.mock.calls.map((c) => c[3])).toEqual([true, true]);

      // After the throttle interval, continued typing refreshes the server state once. Only the
      // passage of time makes the client send again, hence the bounded wait.
      await sleep(typingThrottleMs + 20);
      for (let i = 0; i < 5; i += 1) alice.setTyping('room', true);
      await vi.waitFor(() => expect(calls).toHaveBeenCalledTimes(3));

      const off = b.conversation.next('typing', (e) => !e.isTyping);
      alice.setTyping('room', false);
      alice.setTyping('room', false);
      await off;
      await alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: false });
      expect(calls.mock.calls.map((c) => c[3])).toEqual([true, true, true, false, false]);
      await syncMarker(t, 'room', b.conversation);
      expect(typingOf(b.log)).toEqual(['alice:true', 'alice:false']);
    });

    it('stops by itself after typingIdleMs without a new keystroke', async () => {
      const typingIdleMs = 150;
      await using t = await startTestApp({ typingTimeoutMs: 60_000 });
      const alice = await t.client('alice', { typingIdleMs });
      const bob = await t.client('bob');
      await alice.join('room').started;
      const b = joinLogged(bob, 'room');
      await b.conversation.started;

      const on = b.conversation.next('typing', (e) => e.isTyping);
      const off = b.conversation.next('typing', (e) => !e.isTyping, 3000);
      const typedAt = Date.now();
      alice.setTyping('room', true);
      await on;
      await off;
      // The server's own timeout is a minute: this stop came from the client.
      expect(Date.now() - typedAt).toBeGreaterThanOrEqual(typingIdleMs - 5);
      expect(typingOf(b.log)).toEqual(['alice:true', 'alice:false']);
    });
  });
});
