import { WebSocket } from 'ws';
import { describe, expect, it } from 'vitest';
import { MAX_ACKS_PER_CALL } from '../src/transport/ack-calls.ts';
import { errorOf, joined, rawClient, trpcHttp } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * `message.ack` with a list (`{ acks: [...] }`)
 * on a real server with real clients.
 */

const sorted = (xs: readonly string[]) => [...xs].sort();
const ACCEPTED = { accepted: true, duplicate: false, late: false };
const DUPLICATE = { accepted: true, duplicate: true, late: false };

describe('message.ack with a list', () => {
  it('applies every ack of a list in order, one answer per item (stock client, over WebSocket and HTTP)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'lists');
    const b = await joined(bob, 'lists');
    await joined(carol, 'lists');

    const bobGotTwo = b.next('message', (e) => e.message.body === 'two');
    const first = await alice.send('lists', 'one', { ack: true });
    const second = await alice.send('lists', 'two', { ack: true });
    await bobGotTwo;
    const reports = [a.next('message_delivered', (e) => e.report.messageId === first.messageId), a.next('message_delivered', (e) => e.report.messageId === second.messageId)];

    // bob: both in one call through the stock client, the first one twice.
    const answer = await bob.trpc.message.ack.mutate({
      acks: [
        { conversationId: 'lists', messageId: first.messageId },
        { conversationId: 'lists', messageId: second.messageId },
        { conversationId: 'lists', messageId: first.messageId },
      ],
    });
    expect(answer).toEqual({ results: [ACCEPTED, ACCEPTED, DUPLICATE] });
    expect((await alice.deliveryStatus(first.messageId)).acked).toEqual(['bob']);

    // carol: the same list over HTTP (the router's procedure, not the WebSocket's hot path).
    const http = await trpcHttp(t.baseUrl, 'message.ack', { acks: [{ conversationId: 'lists', messageId: first.messageId }, { conversationId: 'lists', messageId: second.messageId }] }, { token: await t.token('carol') });
    expect(http.status).toBe(200);
    expect(http.result).toEqual({ results: [ACCEPTED, ACCEPTED] });

    for (const { report } of await Promise.all(reports)) {
      expect(report.status).toBe('delivered');
      expect(sorted(report.acked)).toEqual(['bob', 'carol']);
    }
    // After the report: late, and a duplicate of what the report counted.
    expect(await bob.trpc.message.ack.mutate({ acks: [{ conversationId: 'lists', messageId: first.messageId }] })).toEqual({ results: [{ accepted: false, duplicate: true, late: true }] });
    // The single form is answered as it always was.
    expect(await bob.ack('lists', second.messageId)).toEqual({ accepted: false, duplicate: true, late: true });
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('answers list and single acks batched in one frame call by call (raw frames)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const alice = await t.client('alice');
    const a = await joined(alice, 'frames');
    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    raw.send({ method: 'connectionParams', data: { token: await t.token('bob') } });
    raw.send({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: 'frames' } } } });
    await raw.waitFor((f) => (f as { id?: number; result?: { type?: string } }).id === 1 && (f as { result?: { type?: string } }).result?.type === 'started');
    const m1 = await alice.send('frames', 'one', { ack: true });
    const m2 = await alice.send('frames', 'two', { ack: true });
    const m3 = await alice.send('frames', 'three', { ack: true });
    const reported = a.next('message_delivered', (e) => e.report.messageId === m3.messageId);
    const ack = (id: number, input: unknown) => ({ id, method: 'mutation', params: { path: 'message.ack', input: { json: input } } });
    raw.send([
      ack(10, { acks: [{ conversationId: 'frames', messageId: m1.messageId }, { conversationId: 'frames', messageId: m2.messageId }] }),
      ack(11, { conversationId: 'frames', messageId: m3.messageId }),
      ack(12, { acks: [{ conversationId: 'frames', messageId: 'nope' }] }),
      ack(13, { acks: [] }),
    ]);
    const reply = async (id: number) => (await raw.waitFor((f) => (f as { id?: unknown }).id === id)) as { result?: { data: { json: unknown } }; error?: { json: { message: string; data: { code: string } } } };
    expect((await reply(10)).result?.data.json).toEqual({ results: [ACCEPTED, ACCEPTED] });
    expect((await reply(11)).result?.data.json).toEqual(ACCEPTED);
    expect((await reply(12)).result?.data.json).toEqual({ results: [{ error: { code: 'NOT_FOUND', message: 'no acknowledged message nope in conversation frames' } }] });
    const empty = await reply(13);
    expect(empty.error?.json.data.code).toBe('BAD_REQUEST');
    expect(empty.error?.json.message).toMatch(/acks: must hold at least one ack/);
    expect((await reported).report).toMatchObject({ status: 'delivered', acked: ['bob'] });
    expect(raw.ws.readyState).toBe(WebSocket.OPEN);
    raw.ws.close();
  });

  it('refuses a malformed list as a whole (nothing applied) and answers refused items on their own (the others counted)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false, conversations: ['mixed'] });
    const a = await joined(alice, 'mixed');
    await joined(bob, 'mixed');
    const sent = await alice.send('mixed', 'ack me', { ack: true });
    const aliceOwn = await alice.send('mixed', 'bob may not ack this one twice', { ack: true });
    const good = { conversationId: 'mixed', messageId: sent.messageId };

    // Malformed: the call is refused with BAD_REQUEST naming the item and field; nothing counted.
    const bad = await errorOf(bob.trpc.message.ack.mutate({ acks: [good, { conversationId: 'no spaces!', messageId: sent.messageId }] }));
    expect(bad.code).toBe('BAD_REQUEST');
    expect(bad.message).toMatch(/acks\.1\.conversationId/);
    const tooMany = await errorOf(bob.trpc.message.ack.mutate({ acks: Array.from({ length: MAX_ACKS_PER_CALL + 1 }, () => ({ ...good })) }));
    expect(tooMany.code).toBe('BAD_REQUEST');
    expect(tooMany.message).toMatch(/at most 256 acks/);
    expect((await alice.deliveryStatus(sent.messageId)).acked).toEqual([]);

    // Well-formed but partly refused: each refused item says why, the good ones count.
    const reported = a.next('message_delivered', (e) => e.report.messageId === sent.messageId);
    const answer = await bob.trpc.message.ack.mutate({
      acks: [
        { conversationId: 'elsewhere', messageId: sent.messageId }, // not in bob's token
        { conversationId: 'mixed', messageId: 'unknown-message' },
        good,
        { conversationId: 'mixed', messageId: aliceOwn.messageId },
      ],
    });
    expect(answer).toEqual({
      results: [
        { error: { code: 'FORBIDDEN', message: 'not allowed in conversation elsewhere' } },
        { error: { code: 'NOT_FOUND', message: 'no acknowledged message unknown-message in conversation mixed' } },
        ACCEPTED,
        ACCEPTED,
      ],
    });
    expect((await reported).report).toMatchObject({ status: 'delivered', acked: ['bob'] });
    // An item from a user who was not expected is refused as a single ack would be.
    const carol = await t.client('carol', { autoAck: false });
    const late = await carol.trpc.message.ack.mutate({ acks: [good] });
    expect(late).toEqual({ results: [{ error: { code: 'FORBIDDEN', message: `user carol is not an expected recipient of message ${sent.messageId}` } }] });
  });
});
