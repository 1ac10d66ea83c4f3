import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import type { RoomEvent } from '../src/domain/types.ts';
import { errorOf, joined, rawClient, record, trpcHttp } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';

const bodies = (seen: Array<{ event: RoomEvent }>) =>
  seen.flatMap((s) => (s.event.type === 'message' ? [s.event.message.body] : []));

describe('input validation (BAD_REQUEST naming the field, nothing changed)', () => {
  it('rejects every bad input and broadcasts nothing', async () => {
    await using t = await startTestApp({ maxMessageBytes: 100, ackTimeoutMs: 2000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    await joined(alice, 'room');
    const b = await joined(bob, 'room');
    const seenByBob = record(b);

    // A message to ack (and its pending state, which must not change either).
    const bobGot = b.next('message');
    const ackable = await alice.send('room', 'ack me', { ack: true });
    await bobGot;
    seenByBob.length = 0;
    const broadcastBefore = t.app.service.stats.messagesBroadcast;
    const eventsBefore = t.app.service.stats.eventsPublished;

    const send = (input: Record<string, unknown>) => alice.trpc.message.send.mutate({ conversationId: 'room', body: 'x', ...input } as never);
    const cases: Array<[label: string, call: () => Promise<unknown>, field: string]> = [
      ['send: conversationId empty', () => send({ conversationId: '' }), 'conversationId'],
      ['send: conversationId 129 chars', () => send({ conversationId: 'a'.repeat(129) }), 'conversationId'],
      ['send: conversationId with a space', () => send({ conversationId: 'bad room' }), 'conversationId'],
      ['send: conversationId with a slash', () => send({ conversationId: 'room/1' }), 'conversationId'],
      ['send: conversationId non-ASCII', () => send({ conversationId: 'räum' }), 'conversationId'],
      ['send: conversationId missing', () => alice.trpc.message.send.mutate({ body: 'x' } as never), 'conversationId'],
      ['send: body empty', () => send({ body: '' }), 'body'],
      ['send: body not a string', () => send({ body: 42 }), 'body'],
      ['send: clientMessageId 129 chars', () => send({ clientMessageId: 'c'.repeat(129) }), 'clientMessageId'],
      ['send: clientMessageId empty', () => send({ clientMessageId: '' }), 'clientMessageId'],
      ['send: ack timeoutMs not an integer', () => send({ ack: { timeoutMs: 1.5 } }), 'ack.timeoutMs'],
      ['send: ack timeoutMs zero', () => send({ ack: { timeoutMs: 0 } }), 'ack.timeoutMs'],
      ['send: ack timeoutMs a string', () => send({ ack: { timeoutMs: '100' } }), 'ack.timeoutMs'],
      ['send: ack neither boolean nor object', () => send({ ack: 'yes' }), 'ack'],
      ['send: echo not boolean', () => send({ echo: 'yes' }), 'echo'],
      ['typing: isTyping not boolean', () => alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: 'yes' } as never), 'isTyping'],
      ['typing: conversationId bad', () => alice.trpc.typing.set.mutate({ conversationId: '', isTyping: true }), 'conversationId'],
      ['ack: messageId empty', () => bob.trpc.message.ack.mutate({ conversationId: 'room', messageId: '' }), 'messageId'],
      ['ack: conversationId bad', () => bob.trpc.message.ack.mutate({ conversationId: 'x'.repeat(129), messageId: ackable.messageId }), 'conversationId'],
      ['deliveryStatus: messageId empty', () => alice.trpc.message.deliveryStatus.query({ messageId: '' }), 'messageId'],
      ['presence: conversationId bad', () => alice.trpc.conversation.presence.query({ conversationId: 'no spaces' }), 'conversationId'],
    ];
    for (const [label, call, field] of cases) {
      const error = await errorOf(call());
      expect(error.code, label).toBe('BAD_REQUEST');
      expect(error.message, label).toContain(field);
      expect(error.message, label).not.toMatch(/^\[|"code":/); // a sentence, not a JSON dump of zod issues
    }
    // A body over MAX_MESSAGE_BYTES is a limit, not a malformed input: PAYLOAD_TOO_LARGE, naming both.
    for (const [label, body] of [['body 101 ASCII bytes', 'a'.repeat(101)], ['body 34 × € = 102 UTF-8 bytes', '€'.repeat(34)]] as const) {
      const error = await errorOf(send({ body }));
      expect(error.code, label).toBe('PAYLOAD_TOO_LARGE');
      expect(error.message, label).toContain('body');
      expect(error.message, label).toContain('MAX_MESSAGE_BYTES');
    }

    // A subscription with a bad id is refused the same way and joins nothing.
    for (const conversationId of ['', 'a'.repeat(129), 'bad room']) {
      let subscriptionError: unknown;
      alice.join(conversationId, { onError: (e) => (subscriptionError = e) });
      await vi.waitFor(() => expect(subscriptionError).toBeDefined());
      const e = subscriptionError as { data?: { code?: string }; message: string };
      expect(e.data?.code).toBe('BAD_REQUEST');
      expect(e.message).toContain('conversationId');
    }

    // Nothing changed: no broadcast, no event, no typing, the ack still pending with nobody acked.
    expect(t.app.service.stats.messagesBroadcast).toBe(broadcastBefore);
    expect(t.app.service.stats.eventsPublished).toBe(eventsBefore);
    expect(t.app.service.typing.typingUsers('room')).toEqual([]);
    expect((await t.app.getUserRooms('alice'))).toEqual(['room']);
    expect(await alice.deliveryStatus(ackable.messageId)).toMatchObject({ status: 'pending', acked: [] });
    const marker = b.next('message', (e) => e.message.body === 'marker');
    await alice.send('room', 'marker');
    await marker;
    expect(seenByBob.map((s) => s.event.type)).toEqual(['message']);
    expect(bodies(seenByBob)).toEqual(['marker']);
    await bob.ack('room', ackable.messageId);
  });

  it('measures the body limit in UTF-8 bytes, inclusive', async () => {
    await using t = await startTestApp({ maxMessageBytes: 100 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    await joined(alice, 'bytes');
    const b = await joined(bob, 'bytes');
    const seen = record(b);
    // 100 ASCII bytes and 33 × '€' (99 bytes) fit; one more byte does not.
    await alice.send('bytes', 'a'.repeat(100));
    await alice.send('bytes', '€'.repeat(33));
    expect((await errorOf(alice.send('bytes', '€'.repeat(33) + 'ab'))).code).toBe('PAYLOAD_TOO_LARGE');
    expect((await errorOf(alice.send('bytes', '😀'.repeat(26)))).message).toContain('body'); // 104 bytes, 52 UTF-16 units
    const marker = b.next('message', (e) => e.message.body === 'end');
    await alice.send('bytes', 'end');
    await marker;
    expect(bodies(seen)).toEqual(['a'.repeat(100), '€'.repeat(33), 'end']);
  });

  it('answers BAD_REQUEST (400) over HTTP too, naming the field, and PAYLOAD_TOO_LARGE (413) for a body over the limit', async () => {
    await using t = await startTestApp({ maxMessageBytes: 100 });
    const token = await t.token('alice');
    const res = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'room', body: '€'.repeat(34) }, { token });
    expect(res.status).toBe(413);
    expect(res.error?.code).toBe('PAYLOAD_TOO_LARGE');
    expect(res.error?.message).toContain('body');
    const bad = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'bad room', body: 'x' }, { token });
    expect(bad.status).toBe(400);
    expect(bad.error?.message).toContain('conversationId');
    expect(t.app.service.stats.messagesBroadcast).toBe(0);
  });

  it('refuses an HTTP body over MAX_FRAME_BYTES with 413 PAYLOAD_TOO_LARGE, without reading it all', async () => {
    await using t = await startTestApp({ maxFrameBytes: 64 * 1024 });
    const token = await t.token('alice');
    const big = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'room', body: 'x'.repeat(100 * 1024) }, { token });
    expect(big.status).toBe(413);
    expect(big.error?.code).toBe('PAYLOAD_TOO_LARGE');
    expect(t.app.service.stats.messagesBroadcast).toBe(0);
    // The same server goes on answering normal requests.
    const ok = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'room', body: 'small' }, { token });
    expect(ok.status).toBe(200);
  });
});

describe('limits', () => {
  it('rate-limits one user with TOO_MANY_REQUESTS, leaving other users unaffected', async () => {
    await using t = await startTestApp({ messageRatePerSec: 1, messageRateBurst: 2 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol');
    await joined(alice, 'rl');
    await joined(bob, 'rl');
    const c = await joined(carol, 'rl');
    const seen = record(c);

    await alice.send('rl', 'a1');
    await alice.send('rl', 'a2');
    const limited = await errorOf(alice.send('rl', 'a3'));
    expect(limited.code).toBe('TOO_MANY_REQUESTS');
    expect(limited.message).toMatch(/retry in \d+ ms/);
    // bob has his own bucket.
    const marker = c.next('message', (e) => e.message.body === 'b2');
    await bob.send('rl', 'b1');
    await bob.send('rl', 'b2');
    await marker;
    expect(bodies(seen)).toEqual(['a1', 'a2', 'b1', 'b2']);
    expect(t.app.service.stats.messagesBroadcast).toBe(4);
    // Over HTTP the same bucket applies, as 429.
    const res = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'rl', body: 'a4' }, { token: await t.token('alice') });
    expect(res.status).toBe(429);
    expect(res.error?.code).toBe('TOO_MANY_REQUESTS');
  });

  it('closes only the socket that sends a frame over the payload limit (1009); others keep working', async () => {
    await using t = await startTestApp({ maxFrameBytes: 2048 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    await joined(alice, 'frames');
    const b = await joined(bob, 'frames');

    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    raw.send({ method: 'connectionParams', data: { token: await t.token('mallory') } });
    raw.send({ id: 1, method: 'subscription', params: { input: superjson.serialize({ conversationId: 'frames' }), path: 'conversation.events' } });
    await raw.waitFor((f) => (f as { result?: { type?: string } }).result?.type === 'started');
    await vi.waitFor(async () => expect((await t.app.getRoomUsers('frames')).map((m) => m.userId).sort()).toEqual(['alice', 'bob', 'mallory']));

    raw.send({ id: 2, method: 'mutation', params: { input: superjson.serialize({ conversationId: 'frames', body: 'x'.repeat(3000) }), path: 'message.send' } });
    const closed = await raw.closed;
    expect(closed.code).toBe(1009);
    await vi.waitFor(async () => expect((await t.app.getRoomUsers('frames')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']));
    expect(raw.frames.some((f) => (f as { id?: unknown }).id === 2)).toBe(false);

    // The other connections were not harmed.
    const got = b.next('message', (e) => e.message.body === 'still here');
    await alice.send('frames', 'still here');
    expect((await got).message.senderId).toBe('alice');
    expect(t.app.service.stats.messagesBroadcast).toBe(1);
    expect(await bob.presence('frames')).toHaveLength(2);
  });
});
