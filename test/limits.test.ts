import { describe, expect, it } from 'vitest';
import type { ChatClient } from '../clients/chat/index.ts';
import { frameErrorCode, rawClient } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';
import { bodies, joinLogged, recordRaw, waitUntil } from './support/wait.ts';

/**
 * Per-user and per-connection limits: each answered with a clear TOO_MANY_REQUESTS naming the
 * limit, each harming nobody else (the connections and subscriptions within the limit go on).
 */
describe('limits on connections and subscriptions', () => {
  const errorText = (errors: unknown[]) => errors.map((e) => `${(e as { data?: { code?: string } }).data?.code}: ${(e as Error).message}`).join('\n');

  it('MAX_CONNECTIONS_PER_USER: one more connection is refused; the others keep working', async () => {
    await using t = await startTestApp({ maxConnectionsPerUser: 2 });
    const tabs: ChatClient[] = [await t.client('alice'), await t.client('alice')];
    const logs = tabs.map((c) => joinLogged(c, 'room'));
    await Promise.all(logs.map((l) => l.conversation.started));

    // The third socket: refused when its context is made, with the error frame, then closed.
    const third = rawClient(`${t.wsUrl}?connectionParams=1`);
    await third.opened;
    third.send({ method: 'connectionParams', data: { token: await t.token('alice') } });
    const refusal = await third.waitFor((f) => (f as { id?: unknown }).id === null);
    expect(frameErrorCode(refusal)).toBe('TOO_MANY_REQUESTS');
    expect(JSON.stringify(refusal)).toMatch(/too many connections for user alice on this node \(max 2\)/);
    await third.closed;
    expect(t.app.service.registry.userConnections('alice').size).toBe(2);

    // Another user is not limited by alice's count, and alice's two tabs still get everything.
    const bob = await t.client('bob');
    await bob.send('room', 'hello tabs');
    await waitUntil(() => logs.every((l) => bodies(l.log).includes('hello tabs')), { what: 'both tabs to get the message' });
  });

  it('MAX_ROOMS_PER_CONNECTION: one more room on the socket is refused; the rooms it has go on', async () => {
    await using t = await startTestApp({ maxRoomsPerConnection: 2 });
    const alice = await t.client('alice');
    const r1 = joinLogged(alice, 'r1');
    const r2 = joinLogged(alice, 'r2');
    await Promise.all([r1.conversation.started, r2.conversation.started]);
    const again = recordRaw(alice, 'r1'); // a second subscription to a room it is in: no new room
    await again.started();
    const r3 = recordRaw(alice, 'r3');
    await waitUntil(() => r3.errors.length > 0, { what: 'the third room to be refused' });
    expect(errorText(r3.errors)).toMatch(/TOO_MANY_REQUESTS: too many rooms on this connection \(max 2\)/);
    expect(t.app.service.registry.connectionRooms([...t.app.service.registry.userConnections('alice')][0]!).sort()).toEqual(['r1', 'r2']);

    const bob = await t.client('bob');
    await bob.send('r2', 'still here');
    await waitUntil(() => bodies(r2.log).includes('still here'), { what: 'r2 to keep working' });
  });

  it('MAX_SUBSCRIPTIONS_PER_CONNECTION: one more subscription is refused; the others go on', async () => {
    await using t = await startTestApp({ maxSubscriptionsPerConnection: 2 });
    const alice = await t.client('alice');
    const first = recordRaw(alice, 'room');
    const second = recordRaw(alice, 'room');
    await Promise.all([first.started(), second.started()]);
    const third = recordRaw(alice, 'other');
    await waitUntil(() => third.errors.length > 0, { what: 'the third subscription to be refused' });
    expect(errorText(third.errors)).toMatch(/TOO_MANY_REQUESTS: too many subscriptions on this connection \(max 2\)/);

    // Stopping one frees its place.
    first.stop();
    await waitUntil(() => t.app.service.internals().subscriptionCounts === 1 && t.app.service.registry.counts().rooms === 1, { what: 'the stop to be seen' });
    const fourth = recordRaw(alice, 'other');
    await fourth.started();
    const bob = await t.client('bob');
    await bob.send('room', 'for the second');
    await second.until((e) => e.event.type === 'message' && e.event.message.body === 'for the second');
  });

  it('MAX_PENDING_ACKS_PER_SENDER: one more acknowledged send is refused until a report frees a place; other senders are not limited', async () => {
    await using t = await startTestApp({ maxPendingAcksPerSender: 2, ackTimeoutMs: 60_000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const carol = await t.client('carol');
    const bob = await t.client('bob', { autoAck: false });
    await Promise.all([alice.join('room').started, bob.join('room').started, carol.join('room').started]);
    await expect.poll(async () => (await alice.presence('room')).length).toBe(3);
    const first = await alice.send('room', 'one', { ack: true });
    await alice.send('room', 'two', { ack: true });
    const refused = await alice.send('room', 'three', { ack: true }).catch((e: Error & { data?: { code?: string } }) => e);
    expect(refused).toBeInstanceOf(Error);
    expect((refused as { data?: { code?: string } }).data?.code).toBe('TOO_MANY_REQUESTS');
    expect((refused as Error).message).toMatch(/too many acknowledged messages pending \(2\)/);
    // Without ack, alice may still send; carol's acknowledged sends are hers to count.
    await alice.send('room', 'plain');
    await carol.send('room', 'carol needs acks', { ack: true });
    // A report frees a place.
    await bob.ack('room', first.messageId);
    await expect.poll(async () => (await alice.deliveryStatus(first.messageId)).status).not.toBe('pending');
    await expect(alice.send('room', 'three again', { ack: true })).resolves.toMatchObject({ messageId: expect.any(String) as unknown });
  });

  it('TYPING_RATE_PER_SEC: a typing flood is refused with a retry hint; other users type freely', async () => {
    await using t = await startTestApp({ typingRatePerSec: 2 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    await Promise.all([alice.join('room').started, bob.join('room').started]);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => alice.trpc.typing.set.mutate({ conversationId: 'room', isTyping: i % 2 === 0 })));
    const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(4); // the burst: twice the rate
    expect(rejected).toHaveLength(4);
    for (const r of rejected) {
      expect((r.reason as { data?: { code?: string } }).data?.code).toBe('TOO_MANY_REQUESTS');
      expect((r.reason as Error).message).toMatch(/too many typing updates; retry in \d+ ms/);
    }
    await expect(bob.trpc.typing.set.mutate({ conversationId: 'room', isTyping: true })).resolves.toBeDefined();
  });
});
