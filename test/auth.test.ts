import { TRPCClientError } from '@trpc/client';
import { SignJWT, UnsecuredJWT } from 'jose';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { createChatClient, type ChatClient } from '../clients/chat/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import type { RoomEvent } from '../src/domain/types.ts';
import { errorOf, frameErrorCode, joined, rawClient, record, trpcHttp } from './support/helpers.ts';
import { startTestApp, TEST_SECRET, type TestApp } from './support/start-test-app.ts';

const key = new TextEncoder().encode(TEST_SECRET);

/** Every kind of token the server must refuse, with the reason. */
async function badTokens(): Promise<Array<[string, string | null]>> {
  const past = Math.floor(Date.now() / 1000) - 60;
  return [
    ['no token', null],
    ['bad signature', await mintToken('another-secret-that-is-at-least-32-characters', { userId: 'mallory', conversations: ['*'] })],
    ['expired (expiresIn negative)', await mintToken(TEST_SECRET, { userId: 'mallory', conversations: ['*'], expiresIn: -60 })],
    ['expired (jose, past exp)', await new SignJWT({ conversations: ['*'] }).setProtectedHeader({ alg: 'HS256' }).setSubject('mallory').setExpirationTime(past).sign(key)],
    ['malformed', 'not-a-jwt'],
    ['alg none', new UnsecuredJWT({ conversations: ['*'] }).setSubject('mallory').encode()],
    ['no sub claim', await new SignJWT({ conversations: ['*'] }).setProtectedHeader({ alg: 'HS256' }).sign(key)],
  ];
}

/** A stock chat client that is refused: reconnect attempts are quick, and it is closed by the caller. */
function refusedClient(t: TestApp, token: string | null): ChatClient {
  return createChatClient({ url: t.wsUrl, token: token ?? '', retryDelayMs: () => 50 });
}

function codeOf(error: unknown): string | undefined {
  expect(error).toBeInstanceOf(TRPCClientError);
  return (error as { data?: { code?: string } | null }).data?.code;
}

describe('WebSocket authentication', () => {
  it('refuses every bad token with UNAUTHORIZED before any procedure runs, leaking nothing', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const a = await joined(alice, 'secret-room');
    const before = t.app.service.stats.messagesBroadcast;

    for (const [label, token] of await badTokens()) {
      const client = refusedClient(t, token);
      try {
        let subscriptionError: unknown;
        const conversation = client.join('secret-room', { onError: (e) => (subscriptionError = e) });
        const seen = record(conversation);
        await vi.waitFor(() => expect(subscriptionError, label).toBeDefined());
        expect(codeOf(subscriptionError), label).toBe('UNAUTHORIZED');
        expect((await errorOf(client.send('secret-room', 'intrusion'))).code, label).toBe('UNAUTHORIZED');
        expect((await errorOf(client.presence('secret-room'))).code, label).toBe('UNAUTHORIZED');
        expect(seen, label).toEqual([]);
      } finally {
        await client.close();
      }
    }
    // The room never saw the refused connections: only alice, and nothing was broadcast.
    expect((await t.app.getRoomUsers('secret-room')).map((m) => m.userId)).toEqual(['alice']);
    expect(t.app.service.stats.messagesBroadcast).toBe(before);
    await vi.waitFor(() => expect(t.app.service.internals().connections).toBe(1));
    // alice's stream is unaffected: a marker arrives and nothing from the refused clients precedes it.
    const seenA = record(a);
    const marker = a.next('message');
    await t.app.broadcastMessage('secret-room', { body: 'marker' });
    expect((await marker).message.body).toBe('marker');
    expect(seenA.map((s) => s.event.type)).toEqual(['message']);
  });

  it('sends only error frames to a raw socket with a bad token — no data, no started — then closes it (4501)', async () => {
    await using t = await startTestApp({ rejectLingerMs: 50 });
    const alice = await t.client('alice');
    await joined(alice, 'secret-room');
    const aliceToken = await t.token('alice');
    // Activity in the room while the intruder tries.
    await t.app.broadcastSystemEvent('secret-room', 'activity', { n: 1 });

    const subscribe = { id: 1, method: 'subscription', params: { input: superjson.serialize({ conversationId: 'secret-room' }), path: 'conversation.events' } };
    const presence = { id: 2, method: 'query', params: { input: superjson.serialize({ conversationId: 'secret-room' }), path: 'conversation.presence' } };
    const mine = { id: 3, method: 'query', params: { input: superjson.serialize(undefined), path: 'conversation.mine' } };
    const send = { id: 4, method: 'mutation', params: { input: superjson.serialize({ conversationId: 'secret-room', body: 'intrusion' }), path: 'message.send' } };

    for (const [label, token] of [...(await badTokens()), ['valid token of another user, but params frame malformed', aliceToken.slice(0, 20)] as [string, string]]) {
      const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
      await raw.opened;
      raw.send({ method: 'connectionParams', data: token === null ? {} : { token } });
      raw.send(subscribe);
      raw.send([presence, mine]);
      raw.send(send);
      const closed = await raw.closed;
      expect(raw.frames.length, label).toBeGreaterThan(0);
      for (const frame of raw.frames) {
        expect(frame, label).not.toHaveProperty('result');
        expect(frameErrorCode(frame), label).toBe('UNAUTHORIZED');
      }
      expect(raw.frames.some((f) => (f as { id: unknown }).id === null), label).toBe(true);
      expect(JSON.stringify(raw.frames), label).not.toContain('alice');
      expect(JSON.stringify(raw.frames), label).not.toContain('activity');
      expect(closed.code, label).toBe(4501);
      // Every call got its own answer, by id, besides the one `id: null` notice.
      expect(raw.frames.map((f) => (f as { id: unknown }).id).sort(), label).toEqual([1, 2, 3, 4, null]);
    }
    expect(t.app.service.stats.messagesBroadcast).toBe(0);

    // Without connectionParams at all (no `?connectionParams=1`): refused the same way.
    const bare = rawClient(t.wsUrl);
    await bare.opened;
    bare.send(subscribe);
    await bare.closed;
    for (const frame of bare.frames) {
      expect(frame).not.toHaveProperty('result');
      expect(frameErrorCode(frame)).toBe('UNAUTHORIZED');
    }
    expect((await t.app.getRoomUsers('secret-room')).map((m) => m.userId)).toEqual(['alice']);
    await vi.waitFor(() => expect(t.app.service.internals().connections).toBe(1));
  });
});

describe('conversation access (the conversations claim)', () => {
  it('refuses events, send, typing, ack and presence in a conversation the token does not allow (FORBIDDEN), changing nothing', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000 });
    const alice = await t.client('alice');
    const a = await joined(alice, 'secret');
    const eve = await t.client('eve', { conversations: ['public'] });
    // The token is otherwise fine: its allowed conversation works.
    await joined(eve, 'public');

    const sent = await alice.send('secret', 'for members only', { ack: true });
    expect(sent.expected).toEqual([]);
    const before = t.app.service.stats.messagesBroadcast;

    let subscriptionError: unknown;
    const refused = eve.join('secret', { onError: (e) => (subscriptionError = e) });
    const seen = record(refused);
    await vi.waitFor(() => expect(subscriptionError).toBeDefined());
    expect(codeOf(subscriptionError)).toBe('FORBIDDEN');
    expect((await errorOf(eve.send('secret', 'hi'))).code).toBe('FORBIDDEN');
    expect((await errorOf(eve.trpc.typing.set.mutate({ conversationId: 'secret', isTyping: true }))).code).toBe('FORBIDDEN');
    expect((await errorOf(eve.ack('secret', sent.messageId))).code).toBe('FORBIDDEN');
    expect((await errorOf(eve.presence('secret'))).code).toBe('FORBIDDEN');

    expect(seen).toEqual([]);
    expect((await t.app.getRoomUsers('secret')).map((m) => m.userId)).toEqual(['alice']);
    expect((await t.app.getUserRooms('eve'))).toEqual(['public']);
    expect(t.app.service.stats.messagesBroadcast).toBe(before);
    expect(t.app.service.typing.typingUsers('secret')).toEqual([]);
    // alice's stream got nothing from eve: the first event after the refusals is the marker.
    const seenA = record(a);
    const marker = a.next('message');
    await t.app.broadcastMessage('secret', { body: 'marker' });
    await marker;
    expect(seenA.map((s) => s.event.type)).toEqual(['message']);
  });

  it('allows no conversation at all when the claim is absent', async () => {
    await using t = await startTestApp();
    const token = await mintToken(TEST_SECRET, { userId: 'nobody' });
    const client = createChatClient({ url: t.wsUrl, token, retryDelayMs: () => 20 });
    try {
      let subscriptionError: unknown;
      client.join('lobby', { onError: (e) => (subscriptionError = e) });
      await vi.waitFor(() => expect(subscriptionError).toBeDefined());
      expect(codeOf(subscriptionError)).toBe('FORBIDDEN');
      expect((await errorOf(client.send('lobby', 'x'))).code).toBe('FORBIDDEN');
      expect((await errorOf(client.presence('lobby'))).code).toBe('FORBIDDEN');
      // Authenticated all the same: a call that needs no conversation works.
      expect(await client.trpc.conversation.mine.query()).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('refuses a forged ack from a user who was not an expected recipient (FORBIDDEN)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    await joined(alice, 'room');
    await joined(bob, 'room');
    const sent = await alice.send('room', 'x', { ack: true });
    const mallory = await t.client('mallory');
    await joined(mallory, 'room');
    expect((await errorOf(mallory.ack('room', sent.messageId))).code).toBe('FORBIDDEN');
    expect(await alice.deliveryStatus(sent.messageId)).toMatchObject({ status: 'pending', acked: [], missing: ['bob'] });
    await bob.ack('room', sent.messageId);
  });
});

describe('HTTP authentication', () => {
  it('accepts Authorization: Bearer for mutations and queries; the sender is the token user whatever the input says', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const a = await joined(alice, 'http-room');
    const bobToken = await t.token('bob', { name: 'Bob' });

    const got = a.next('message');
    const res = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'http-room', body: 'over http', senderId: 'mallory', principal: { userId: 'mallory' } }, { token: bobToken });
    expect(res.status).toBe(200);
    const result = res.result as { messageId: string; eventId: string; sentAt: Date };
    expect(result.sentAt).toBeInstanceOf(Date);
    const message = (await got).message;
    expect(message).toMatchObject({ id: result.messageId, senderId: 'bob', senderName: 'Bob', body: 'over http' });

    const presence = await trpcHttp(t.baseUrl, 'conversation.presence', { conversationId: 'http-room' }, { kind: 'query', token: bobToken });
    expect(presence.status).toBe(200);
    expect((presence.result as { members: Array<{ userId: string }> }).members.map((m) => m.userId)).toEqual(['alice']);

    // Batched queries over HTTP.
    const aliceToken = await t.token('alice');
    const input = encodeURIComponent(JSON.stringify({ 0: superjson.serialize({ conversationId: 'http-room' }), 1: superjson.serialize(undefined) }));
    const batch = await fetch(`${t.baseUrl}/trpc/conversation.presence,conversation.mine?batch=1&input=${input}`, { headers: { authorization: `Bearer ${aliceToken}` } });
    expect(batch.status).toBe(200);
    const parts = (await batch.json()) as Array<{ result: { data: unknown } }>;
    expect(parts).toHaveLength(2);
    const mine = superjson.deserialize(parts[1]!.result.data as Parameters<typeof superjson.deserialize>[0]) as Array<{ conversationId: string }>;
    expect(mine.map((m) => m.conversationId)).toEqual(['http-room']);
  });

  it('session.me answers who the token says the caller is, over HTTP and over the WebSocket; without a token, UNAUTHORIZED', async () => {
    await using t = await startTestApp();
    const token = await t.token('carol', { name: 'Carol', conversations: ['b', 'a'], expiresIn: 600 });
    const me = await trpcHttp(t.baseUrl, 'session.me', undefined, { kind: 'query', token });
    expect(me.status).toBe(200);
    const answer = me.result as { userId: string; name: string | null; role: string; conversations: string[] | '*'; expiresAt: Date | null };
    expect(answer).toMatchObject({ userId: 'carol', name: 'Carol', role: 'user', conversations: ['a', 'b'] });
    expect(answer.expiresAt).toBeInstanceOf(Date);
    expect(Math.abs(answer.expiresAt!.getTime() - (Date.now() + 600_000))).toBeLessThan(5000);

    const alice = await t.client('alice', { conversations: ['*'] });
    expect(await alice.trpc.session.me.query()).toEqual({ userId: 'alice', name: null, role: 'user', conversations: '*', expiresAt: null });

    const anonymous = await trpcHttp(t.baseUrl, 'session.me', undefined, { kind: 'query' });
    expect(anonymous.status).toBe(401);
  });

  it('answers 401 for a missing, non-bearer or bad token, and changes nothing', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const a = await joined(alice, 'http-room');
    const seen = record(a);
    const input = { conversationId: 'http-room', body: 'intrusion' };

    const plain = await fetch(`${t.baseUrl}/trpc/message.send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ json: input }) });
    expect(plain.status).toBe(401);
    expect(await plain.text()).toContain('UNAUTHORIZED');
    const basic = await trpcHttp(t.baseUrl, 'message.send', input, { headers: { authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}` } });
    expect(basic.status).toBe(401);

    for (const [label, token] of await badTokens()) {
      const mutation = await trpcHttp(t.baseUrl, 'message.send', input, { token });
      expect(mutation.status, label).toBe(401);
      expect(mutation.error?.code, label).toBe('UNAUTHORIZED');
      const query = await trpcHttp(t.baseUrl, 'conversation.presence', { conversationId: 'http-room' }, { kind: 'query', token });
      expect(query.status, label).toBe(401);
      expect(JSON.stringify(query.body), label).not.toContain('alice');
    }
    expect(t.app.service.stats.messagesBroadcast).toBe(0);
    const marker = a.next('message');
    await t.app.broadcastMessage('http-room', { body: 'marker' });
    await marker;
    expect(seen.map((s) => (s.event as Extract<RoomEvent, { type: 'message' }>).message.body)).toEqual(['marker']);
  });

  it('answers 403 over HTTP for a conversation the token does not allow', async () => {
    await using t = await startTestApp();
    const eveToken = await t.token('eve', { conversations: ['public'] });
    const res = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'secret', body: 'x' }, { token: eveToken });
    expect(res.status).toBe(403);
    expect(res.error?.code).toBe('FORBIDDEN');
    const ok = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'public', body: 'x' }, { token: eveToken });
    expect(ok.status).toBe(200);
    expect(t.app.service.stats.messagesBroadcast).toBe(1);
  });

  it('conversation.events over HTTP: SSE with a Bearer header only (refused without one, no data, no membership); POST is not a subscription', async () => {
    await using t = await startTestApp();
    const token = await t.token('bob');
    const input = encodeURIComponent(JSON.stringify(superjson.serialize({ conversationId: 'http-room' })));

    // GET is the SSE transport (sse-edges.test.ts, sse.test.ts): without a token, one
    // serialized-error and the end — nothing about the room, no membership.
    const unauthenticated = await (await fetch(`${t.baseUrl}/trpc/conversation.events?input=${input}`, { signal: AbortSignal.timeout(3000) })).text();
    expect(unauthenticated).toMatch(/event: serialized-error/);
    expect(unauthenticated).toContain('UNAUTHORIZED');
    expect(unauthenticated).not.toMatch(/^data: \{"json":\{"type"/m);

    const post = await fetch(`${t.baseUrl}/trpc/conversation.events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(superjson.serialize({ conversationId: 'http-room' })),
      signal: AbortSignal.timeout(3000),
    });
    const postText = await post.text();
    expect(postText).toContain('METHOD_NOT_SUPPORTED');
    expect(postText).not.toMatch(/^data: \{"json":\{"id"/m);
    expect((await t.app.getUserRooms('bob'))).toEqual([]);
    expect((await t.app.getRoomStats('http-room'))).toBeNull();
  });
});
