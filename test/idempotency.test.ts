import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../src/domain/types.ts';
import { joined, record, trpcHttp } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';

type MessageEvent = Extract<RoomEvent, { type: 'message' }>;
const messages = (seen: Array<{ event: RoomEvent }>) => seen.flatMap((s) => (s.event.type === 'message' ? [s.event.message] : []));

describe('idempotent message.send (clientMessageId)', () => {
  it('answers a retried send with the first result and broadcasts it once', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    await joined(alice, 'idem');
    const b = await joined(bob, 'idem');
    const seen = record(b);

    const first = await alice.send('idem', 'hello', { clientMessageId: 'c-1' });
    const retry = await alice.send('idem', 'hello', { clientMessageId: 'c-1' });
    expect(retry).toEqual(first);
    // Two retries racing each other get the same answer too.
    const [r1, r2] = await Promise.all([
      alice.trpc.message.send.mutate({ conversationId: 'idem', body: 'hello', clientMessageId: 'c-1' }),
      alice.trpc.message.send.mutate({ conversationId: 'idem', body: 'hello', clientMessageId: 'c-1' }),
    ]);
    expect(r1.messageId).toBe(first.messageId);
    expect(r2.eventId).toBe(first.eventId);
    // Over HTTP, the same user and key: still the first message.
    const http = await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'idem', body: 'hello', clientMessageId: 'c-1' }, { token: await t.token('alice') });
    expect(http.status).toBe(200);
    expect(http.result).toMatchObject({ messageId: first.messageId, eventId: first.eventId });

    const marker = b.next('message', (e) => e.message.body === 'marker');
    await alice.send('idem', 'marker', { clientMessageId: 'c-2' });
    await marker;
    expect(messages(seen).map((m) => [m.body, m.clientMessageId])).toEqual([
      ['hello', 'c-1'],
      ['marker', 'c-2'],
    ]);
    expect(messages(seen)[0]!.id).toBe(first.messageId);
    expect(t.app.service.stats.messagesBroadcast).toBe(2);
  });

  it('keys by user (and conversation): another user with the same clientMessageId gets a new message', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol');
    await joined(alice, 'idem');
    await joined(bob, 'idem');
    const c = await joined(carol, 'idem');
    await joined(alice, 'idem-2');
    const seen = record(c);

    const fromAlice = await alice.send('idem', 'same key', { clientMessageId: 'shared' });
    const fromBob = await bob.send('idem', 'same key', { clientMessageId: 'shared' });
    expect(fromBob.messageId).not.toBe(fromAlice.messageId);
    expect(fromBob.eventId).not.toBe(fromAlice.eventId);
    const otherRoom = await alice.send('idem-2', 'same key', { clientMessageId: 'shared' });
    expect(otherRoom.messageId).not.toBe(fromAlice.messageId);

    const marker = c.next('message', (e) => e.message.body === 'marker');
    await alice.send('idem', 'marker');
    await marker;
    expect(messages(seen).map((m: MessageEvent['message']) => [m.senderId, m.body])).toEqual([
      ['alice', 'same key'],
      ['bob', 'same key'],
      ['alice', 'marker'],
    ]);
  });

  it('does not spend the rate limit or track a second ack on a retry', async () => {
    await using t = await startTestApp({ messageRatePerSec: 1, messageRateBurst: 2, ackTimeoutMs: 3000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    await joined(alice, 'idem');
    const b = await joined(bob, 'idem');
    const seen = record(b);

    // The server's answer, without the client's `report` promise (a new one per call).
    const answer = async () => {
      const { report, ...sent } = await alice.send('idem', 'ack me', { clientMessageId: 'k', ack: true });
      report.catch(() => undefined);
      return sent;
    };
    const first = await answer();
    for (let i = 0; i < 3; i += 1) expect(await answer()).toEqual(first);
    expect(t.app.service.acks.pendingCount).toBe(1);
    // The second token of the burst is still there.
    const marker = b.next('message', (e) => e.message.body === 'second');
    await alice.send('idem', 'second', { clientMessageId: 'k2' });
    await marker;
    expect(messages(seen).map((m) => m.body)).toEqual(['ack me', 'second']);
    const delivered = await alice.deliveryStatus(first.messageId);
    expect(delivered).toMatchObject({ status: 'pending', expected: ['bob'] });
    await bob.ack('idem', first.messageId);
    expect(t.app.service.acks.pendingCount).toBe(0);
  });
});
