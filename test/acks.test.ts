import { describe, expect, it, vi } from 'vitest';
import type { DeliveryReport, RoomEvent } from '../src/domain/types.ts';
import { errorOf, joined, record } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';

const sorted = (xs: readonly string[]) => [...xs].sort();

describe('acknowledged broadcast (CONTRACT §4)', () => {
  it('expects each present user once (multi-tab counted once, sender excluded) and reports delivered to the sender only', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000 });
    const alice1 = await t.client('alice');
    const alice2 = await t.client('alice');
    const bob1 = await t.client('bob');
    const bob2 = await t.client('bob');
    const carol = await t.client('carol');
    const a1 = await joined(alice1, 'acks');
    const a2 = await joined(alice2, 'acks');
    const b1 = await joined(bob1, 'acks');
    const b2 = await joined(bob2, 'acks');
    const c = await joined(carol, 'acks');
    const seenA2 = record(a2);
    const seenB1 = record(b1);
    const seenC = record(c);

    const deliveredA1 = a1.next('message_delivered');
    const deliveredA2 = a2.next('message_delivered');
    const sent = await alice1.send('acks', 'please ack', { ack: true });
    expect(sorted(sent.expected ?? [])).toEqual(['bob', 'carol']);

    const report = (await deliveredA1).report;
    expect(report).toMatchObject({ messageId: sent.messageId, conversationId: 'acks', status: 'delivered', missing: [] });
    expect(sorted(report.expected)).toEqual(['bob', 'carol']);
    expect(sorted(report.acked)).toEqual(['bob', 'carol']);
    expect(report.completedAt).toBeInstanceOf(Date);
    expect(report.latencyMs).toBeGreaterThanOrEqual(0);
    expect(report.latencyMs).toBeLessThan(3000);
    // Every connection of the sender gets the report.
    expect((await deliveredA2).report.messageId).toBe(sent.messageId);

    const status = await alice2.deliveryStatus(sent.messageId);
    expect(status.status).toBe('delivered');
    expect(sorted(status.acked)).toEqual(['bob', 'carol']);

    // Recipients never see the report: a marker sent after it reaches them, the report did not.
    const markerB = b1.next('message', (e) => e.message.body === 'marker');
    const markerC = c.next('message', (e) => e.message.body === 'marker');
    const markerB2 = b2.next('message', (e) => e.message.body === 'marker');
    await alice1.send('acks', 'marker');
    await Promise.all([markerB, markerC, markerB2]);
    for (const seen of [seenB1, seenC]) {
      expect(seen.filter((s) => s.event.type === 'message_delivered')).toEqual([]);
      expect(seen.filter((s) => s.event.type === 'message').map((s) => (s.event as Extract<RoomEvent, { type: 'message' }>).message.body)).toEqual(['please ack', 'marker']);
    }
    // The sender's other tab saw the message itself, marked ackRequired, then the report.
    const a2Types = seenA2.map((s) => s.event.type);
    expect(a2Types.indexOf('message')).toBeLessThan(a2Types.indexOf('message_delivered'));
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('reports partial at the timeout, naming the recipient that never acked', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 400, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'partial');
    await joined(bob, 'partial');
    const c = await joined(carol, 'partial');

    const delivered = a.next('message_delivered', undefined, 3000);
    const carolGot = c.next('message');
    const sent = await alice.send('partial', 'hello', { ack: true });
    expect((await carolGot).message.ackRequired).toBe(true);
    const { report } = await delivered;
    expect(report.status).toBe('partial');
    expect(sorted(report.expected)).toEqual(['bob', 'carol']);
    expect(report.acked).toEqual(['bob']);
    expect(report.missing).toEqual(['carol']);
    expect(report.latencyMs).toBeGreaterThanOrEqual(390);
    expect(await alice.deliveryStatus(sent.messageId)).toMatchObject({ status: 'partial', missing: ['carol'] });
    expect(t.app.service.acks.pendingCount).toBe(0);
    expect(t.app.getBroadcastStats().acksPartial).toBe(1);
  });

  it('reports failed when nobody acks', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 300, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const a = await joined(alice, 'failed');
    await joined(bob, 'failed');
    const delivered = a.next('message_delivered', undefined, 3000);
    const sent = await alice.send('failed', 'anyone?', { ack: true });
    expect(sent.expected).toEqual(['bob']);
    const { report } = await delivered;
    expect(report).toMatchObject({ messageId: sent.messageId, status: 'failed', expected: ['bob'], acked: [], missing: ['bob'] });
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('reports failed at once when no one but the sender (in any number of tabs) is in the room', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const alice1 = await t.client('alice');
    const alice2 = await t.client('alice');
    const a1 = await joined(alice1, 'alone');
    await joined(alice2, 'alone');
    const delivered = a1.next('message_delivered', undefined, 1000);
    const sent = await alice2.send('alone', 'echo?', { ack: true });
    expect(sent.expected).toEqual([]);
    // No waiting for the 5 s timeout: the report exists as soon as the send returns.
    expect(await alice2.deliveryStatus(sent.messageId)).toMatchObject({ status: 'failed', expected: [], acked: [], missing: [] });
    expect((await delivered).report.status).toBe('failed');
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('counts a duplicate ack once, and refuses acks from users who were not expected (FORBIDDEN)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'dup');
    const b = await joined(bob, 'dup');
    await joined(carol, 'dup');
    const bobGot = b.next('message');
    const sent = await alice.send('dup', 'x', { ack: true });
    await bobGot;

    expect(await bob.ack('dup', sent.messageId)).toEqual({ accepted: true, duplicate: false, late: false });
    expect(await bob.ack('dup', sent.messageId)).toEqual({ accepted: true, duplicate: true, late: false });
    const pending = await alice.deliveryStatus(sent.messageId);
    expect(pending).toMatchObject({ status: 'pending', acked: ['bob'], missing: ['carol'] });

    // dave joins after the send: present now, but not expected.
    const dave = await t.client('dave');
    await joined(dave, 'dup');
    const forged = await errorOf(dave.ack('dup', sent.messageId));
    expect(forged.code).toBe('FORBIDDEN');
    // The sender is never an expected recipient of its own message.
    expect((await errorOf(alice.ack('dup', sent.messageId))).code).toBe('FORBIDDEN');
    expect(await alice.deliveryStatus(sent.messageId)).toMatchObject({ status: 'pending', acked: ['bob'] });

    const delivered = a.next('message_delivered');
    expect(await carol.ack('dup', sent.messageId)).toEqual({ accepted: true, duplicate: false, late: false });
    const { report } = await delivered;
    expect(report.status).toBe('delivered');
    expect(report.acked).toEqual(['bob', 'carol']);
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('answers an ack after the report with late: true, accepted: false', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 250, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'late');
    const b = await joined(bob, 'late');
    await joined(carol, 'late');
    const bobGot = b.next('message');
    const delivered = a.next('message_delivered', undefined, 3000);
    const sent = await alice.send('late', 'x', { ack: true });
    await bobGot;
    await bob.ack('late', sent.messageId);
    const { report } = await delivered;
    expect(report).toMatchObject({ status: 'partial', acked: ['bob'], missing: ['carol'] });

    expect(await carol.ack('late', sent.messageId)).toEqual({ accepted: false, duplicate: false, late: true });
    expect(await bob.ack('late', sent.messageId)).toEqual({ accepted: false, duplicate: true, late: true });
    // The report does not change after the fact.
    expect(await alice.deliveryStatus(sent.messageId)).toMatchObject({ status: 'partial', missing: ['carol'] });
  });

  it('answers NOT_FOUND for an unknown message (or one acked in the wrong conversation)', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 2000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    await joined(alice, 'nf');
    const b = await joined(bob, 'nf');
    expect((await errorOf(bob.ack('nf', 'no-such-message'))).code).toBe('NOT_FOUND');
    expect((await errorOf(alice.deliveryStatus('no-such-message'))).code).toBe('NOT_FOUND');
    const bobGot = b.next('message');
    const sent = await alice.send('nf', 'x', { ack: true });
    await bobGot;
    expect((await errorOf(bob.ack('other-room', sent.messageId))).code).toBe('NOT_FOUND');
    expect(await alice.deliveryStatus(sent.messageId)).toMatchObject({ status: 'pending', acked: [] });
    await bob.ack('nf', sent.messageId);
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('re-sends the message every ACK_RETRY_MS to recipients that have not acked, and only to them: same message, resendOf its first id, ids that only move forward', async () => {
    await using t = await startTestApp({ ackRetryMs: 100, ackTimeoutMs: 600 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const bobTab = await t.client('bob', { autoAck: false });
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'retry');
    const bobApp = record(await joined(bobTab, 'retry'));

    type Copy = { id: string; event: RoomEvent };
    const rawSubscribe = (client: typeof bob, sink: Copy[], onCopy?: (copy: Copy) => void) =>
      new Promise<() => void>((resolve) => {
        const sub = client.trpc.conversation.events.subscribe(
          { conversationId: 'retry' },
          {
            onStarted: () => resolve(() => sub.unsubscribe()),
            onData: ({ id, data }) => {
              const copy = { id, event: data };
              sink.push(copy);
              onCopy?.(copy);
            },
          },
        );
      });
    const bobCopies: Copy[] = [];
    const carolCopies: Copy[] = [];
    let carolAcked!: Promise<unknown>;
    await rawSubscribe(bob, bobCopies);
    await rawSubscribe(carol, carolCopies, (copy) => {
      if (copy.event.type === 'message' && copy.event.message.ackRequired) carolAcked = carol.ack('retry', copy.event.message.id);
    });

    const delivered = a.next('message_delivered', undefined, 3000);
    const sent = await alice.send('retry', 'ack me', { ack: true });
    expect(sorted(sent.expected ?? [])).toEqual(['bob', 'carol']);
    await vi.waitFor(() => expect(carolCopies.some((c) => c.event.type === 'message')).toBe(true));
    await carolAcked;
    const carolCountAtAck = carolCopies.filter((c) => c.event.type === 'message').length;
    const bobCountAtCarolAck = bobCopies.filter((c) => c.event.type === 'message').length;

    // bob keeps getting the same message: first under its event id, then as re-sends naming it,
    // each under an id after everything bob's stream had (so its resume point never moves back)...
    await vi.waitFor(() => expect(bobCopies.filter((c) => c.event.type === 'message').length).toBeGreaterThanOrEqual(bobCountAtCarolAck + 2), { timeout: 2000 });
    const bobMessages = bobCopies.filter((c) => c.event.type === 'message');
    expect(bobMessages[0]!.id).toBe(sent.eventId);
    expect(bobMessages[0]!.event).not.toHaveProperty('resendOf');
    for (const copy of bobMessages.slice(1)) {
      expect((copy.event as Extract<RoomEvent, { type: 'message' }>).resendOf).toBe(sent.eventId);
      expect(copy.id > sent.eventId).toBe(true);
    }
    for (const copy of bobMessages) expect((copy.event as Extract<RoomEvent, { type: 'message' }>).message.id).toBe(sent.messageId);
    const ids = bobCopies.map((c) => c.id);
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    // ...while carol, who acked, gets no more copies.
    expect(carolCopies.filter((c) => c.event.type === 'message').length).toBe(carolCountAtAck);

    // bob acks: the report is delivered and the re-sends stop.
    await bob.ack('retry', sent.messageId);
    const { report } = await delivered;
    expect(report.status).toBe('delivered');
    const bobCountAfterReport = bobCopies.filter((c) => c.event.type === 'message').length;
    // Wait past several retry intervals, bounded by events: two markers 250 ms apart would
    // straddle at least two retry ticks had the re-sends continued.
    const marker1 = bobCopies.length;
    await alice.send('retry', 'marker-1');
    await vi.waitFor(() => expect(bobCopies.length).toBeGreaterThan(marker1));
    await vi.waitFor(() => expect(Date.now() - report.completedAt.getTime()).toBeGreaterThanOrEqual(250), { timeout: 1000, interval: 25 });
    await alice.send('retry', 'marker-2');
    await vi.waitFor(() => expect(bobCopies.some((c) => c.event.type === 'message' && c.event.message.body === 'marker-2')).toBe(true));
    expect(bobCopies.filter((c) => c.event.type === 'message' && c.event.message.id === sent.messageId).length).toBe(bobCountAfterReport);

    // The chat client de-duplicates by event id: the application saw the message once.
    expect(bobApp.filter((s) => s.event.type === 'message' && s.event.message.id === sent.messageId)).toHaveLength(1);
    expect(t.app.service.acks.pendingCount).toBe(0);
  });

  it('honours a per-message ack timeout over the default', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const a = await joined(alice, 'override');
    await joined(bob, 'override');
    const delivered = a.next('message_delivered', undefined, 3000);
    const sent = await alice.send('override', 'quick', { ack: { timeoutMs: 200 } });
    const pending = await alice.deliveryStatus(sent.messageId);
    expect(pending.status).toBe('pending');
    if (pending.status !== 'pending') throw new Error('unreachable');
    expect(pending.expiresAt.getTime() - pending.createdAt.getTime()).toBe(200);
    const { report } = await delivered;
    expect(report.status).toBe('failed');
    expect(report.latencyMs).toBeGreaterThanOrEqual(190);
    expect(report.latencyMs).toBeLessThan(2000);
  });

  it('lets only the sender read the delivery status, which is pending while waiting', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 2000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const carol = await t.client('carol');
    await joined(alice, 'status');
    const b = await joined(bob, 'status');
    const bobGot = b.next('message');
    const sent = await alice.send('status', 'x', { ack: true });
    await bobGot;
    const pending = await alice.deliveryStatus(sent.messageId);
    expect(pending).toMatchObject({ messageId: sent.messageId, conversationId: 'status', status: 'pending', expected: ['bob'], acked: [], missing: ['bob'], completedAt: null, latencyMs: null });
    expect((await errorOf(bob.deliveryStatus(sent.messageId))).code).toBe('FORBIDDEN');
    expect((await errorOf(carol.deliveryStatus(sent.messageId))).code).toBe('FORBIDDEN');
    await bob.ack('status', sent.messageId);
    expect((await alice.deliveryStatus(sent.messageId)).status).toBe('delivered');
    expect((await errorOf(bob.deliveryStatus(sent.messageId))).code).toBe('FORBIDDEN');
  });

  describe('EC-1: a recipient disconnects mid-delivery', () => {
    it('stays in missing when it does not come back', async () => {
      await using t = await startTestApp({ ackTimeoutMs: 500, ackRetryMs: 100, presenceGraceMs: 2000 });
      const alice = await t.client('alice');
      const bob = await t.client('bob', { autoAck: false });
      const carol = await t.client('carol');
      const a = await joined(alice, 'ec1');
      const b = await joined(bob, 'ec1');
      await joined(carol, 'ec1');
      const bobGot = b.next('message');
      const delivered = a.next('message_delivered', undefined, 3000);
      const sent = await alice.send('ec1', 'x', { ack: true });
      expect(sorted(sent.expected ?? [])).toEqual(['bob', 'carol']);
      await bobGot;
      await bob.close();
      await vi.waitFor(() => expect(t.app.service.registry.userConnections('bob').size).toBe(0));
      const { report } = await delivered;
      expect(report).toMatchObject({ status: 'partial', acked: ['carol'], missing: ['bob'] });
      expect(t.app.service.acks.pendingCount).toBe(0);
    });

    it('is acked when the recipient reconnects, resumes and acks before the timeout', async () => {
      // No re-sends: the message must reach the reconnected client through resume alone.
      await using t = await startTestApp({ ackTimeoutMs: 3000, ackRetryMs: 0, presenceGraceMs: 2000 });
      const alice = await t.client('alice');
      const bob = await t.client('bob', { retryDelayMs: () => 300 });
      const a = await joined(alice, 'ec1b');
      const b = await joined(bob, 'ec1b');
      const warm = b.next('message');
      await alice.send('ec1b', 'before');
      await warm;

      // The server drops bob's socket (reconnect-range close code); bob is gone but in grace.
      expect(t.app.service.disconnectUser('bob', 'shutdown')).toBe(1);
      await vi.waitFor(() => expect(t.app.service.registry.userConnections('bob').size).toBe(0));
      const delivered = a.next('message_delivered', undefined, 3000);
      const resumed = b.next('message', (e) => e.message.body === 'while away', 3000);
      const sent = await alice.send('ec1b', 'while away', { ack: true });
      expect(sent.expected).toEqual(['bob']);

      // bob's client reconnects by itself, resumes from its last event id and auto-acks the replay.
      expect((await resumed).message.id).toBe(sent.messageId);
      const { report } = await delivered;
      expect(report).toMatchObject({ status: 'delivered', acked: ['bob'], missing: [] });
      expect(report.latencyMs).toBeLessThan(3000);
      expect(t.app.service.acks.pendingCount).toBe(0);
    });
  });

  it('drains pending acks to zero whatever the recipients do', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 300, ackRetryMs: 50 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const carol = await t.client('carol', { autoAck: false });
    const a = await joined(alice, 'drain');
    await joined(bob, 'drain');
    await joined(carol, 'drain');
    const reports: DeliveryReport[] = [];
    a.on('message_delivered', (e) => reports.push(e.report));
    const sends = await Promise.all(Array.from({ length: 10 }, (_, i) => alice.send('drain', `m${i}`, { ack: true })));
    expect(t.app.service.acks.pendingCount).toBeGreaterThan(0);
    await vi.waitFor(() => expect(reports).toHaveLength(10), { timeout: 3000 });
    expect(new Set(reports.map((r) => r.messageId))).toEqual(new Set(sends.map((s) => s.messageId)));
    expect(reports.every((r) => r.status === 'partial' && r.missing[0] === 'carol')).toBe(true);
    expect(t.app.service.acks.pendingCount).toBe(0);
    expect(t.app.service.internals()).toMatchObject({ awaitingAck: 0, reportWaiters: 0, pendingAcks: 0 });
  });
});
