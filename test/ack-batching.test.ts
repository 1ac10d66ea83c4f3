import { WebSocket } from 'ws';
import { describe, expect, it, vi } from 'vitest';
import type { ChatClientOptions } from '../clients/chat/index.ts';
import { joined } from './support/helpers.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * The typed client's automatic acks, coalesced for `ackBatchMs` into one `message.ack` list call
 * (clients/chat/ack-batcher.ts): same reports as one call per ack, and no ack lost with a socket.
 */

const sorted = (xs: readonly string[]) => [...xs].sort();

/** A `ws` class that keeps every socket it makes and the text frames each one sends. */
function recordingSockets() {
  const sockets: WebSocket[] = [];
  const sent: string[] = [];
  class Recording extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      sockets.push(this);
    }
    override send(data: unknown, ...rest: unknown[]): void {
      if (typeof data === 'string') sent.push(data);
      (super.send as (...a: unknown[]) => void)(data, ...rest);
    }
  }
  return { Recording, sockets, sent, asOption: (cls: typeof Recording) => cls as unknown as ChatClientOptions['WebSocket'] };
}

/** The ack calls among recorded frames: each frame's items (a frame may be a batch) that call message.ack. */
function ackCalls(sent: readonly string[]): Array<{ input: unknown }> {
  const calls: Array<{ input: unknown }> = [];
  for (const text of sent) {
    if (!text.startsWith('{') && !text.startsWith('[')) continue;
    const parsed = JSON.parse(text) as unknown;
    for (const item of Array.isArray(parsed) ? parsed : [parsed]) {
      const call = item as { params?: { path?: string; input?: { json?: unknown } } };
      if (call.params?.path === 'message.ack') calls.push({ input: call.params.input?.json });
    }
  }
  return calls;
}

describe('the typed client coalesces its acks (ackBatchMs)', () => {
  it('sends a burst of acks as one list call, and every report ends exactly as with one call per ack', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const batched = recordingSockets();
    const single = recordingSockets();
    const bob = await t.client('bob', { WebSocket: batched.asOption(batched.Recording), ackBatchMs: 50 });
    const carol = await t.client('carol', { WebSocket: single.asOption(single.Recording), ackBatchMs: 0 });
    const a = await joined(alice, 'burst');
    await joined(bob, 'burst');
    await joined(carol, 'burst');

    const sends = await Promise.all(Array.from({ length: 6 }, (_, i) => alice.send('burst', `m${i}`, { ack: true })));
    const reports = await Promise.all(sends.map((s) => s.report));
    for (const report of reports) {
      expect(report.status).toBe('delivered');
      expect(sorted(report.expected)).toEqual(['bob', 'carol']);
      expect(sorted(report.acked)).toEqual(['bob', 'carol']);
      expect(report.missing).toEqual([]);
    }
    // bob's six acks left in one call with a list; carol's as six single acks.
    const bobCalls = ackCalls(batched.sent);
    expect(bobCalls).toHaveLength(1);
    expect(bobCalls[0]!.input).toEqual({ acks: sends.map((s) => ({ conversationId: 'burst', messageId: s.messageId })) });
    expect(ackCalls(single.sent)).toHaveLength(6);
    expect(ackCalls(single.sent).every((c) => !('acks' in (c.input as object)))).toBe(true);
    // One ack alone goes in the single form.
    const one = await alice.send('burst', 'alone', { ack: true });
    expect((await one.report).status).toBe('delivered');
    expect(ackCalls(batched.sent).at(-1)!.input).toEqual({ conversationId: 'burst', messageId: one.messageId });
    expect(t.app.service.acks.pendingCount).toBe(0);
    void a;
  });

  it('sends acks whose batch was lost with the socket again on the next connection (no server re-send needed)', async () => {
    // ACK_RETRY_MS=0: the server does not ask again, so a delivered report proves the client re-sent.
    await using t = await startTestApp({ ackTimeoutMs: 8000, ackRetryMs: 0 });
    const alice = await t.client('alice');
    const rec = recordingSockets();
    let dropNextAck = 0;
    class DroppingSocket extends rec.Recording {
      override send(data: unknown, ...rest: unknown[]): void {
        // The frame that carries the batch is lost with its socket: the call is in flight (the
        // link waits for its answer) and never gets one.
        if (dropNextAck > 0 && typeof data === 'string' && data.includes('"message.ack"')) {
          dropNextAck -= 1;
          this.terminate();
          return;
        }
        super.send(data, ...rest);
      }
    }
    const bob = await t.client('bob', { WebSocket: rec.asOption(DroppingSocket), ackBatchMs: 30 });
    const a = await joined(alice, 'dropped');
    const b = await joined(bob, 'dropped');

    // 1. The socket drops while acks wait in the window: they leave once connected again.
    const bobGotW2 = b.next('message', (e) => e.message.body === 'w2');
    const waiting = await Promise.all([alice.send('dropped', 'w1', { ack: true }), alice.send('dropped', 'w2', { ack: true })]);
    await bobGotW2;
    rec.sockets[0]!.terminate();
    for (const sent of waiting) expect(await sent.report).toMatchObject({ status: 'delivered', acked: ['bob'], missing: [] });
    await vi.waitFor(() => expect(rec.sockets[1]?.readyState).toBe(WebSocket.OPEN));
    // 2. The socket drops with the batch in flight (sent, never answered): sent again too.
    dropNextAck = 1;
    const inFlight = await Promise.all([alice.send('dropped', 'f1', { ack: true }), alice.send('dropped', 'f2', { ack: true })]);

    for (const sent of inFlight) {
      const report = await sent.report;
      expect(report).toMatchObject({ status: 'delivered', acked: ['bob'], missing: [] });
    }
    expect(dropNextAck).toBe(0);
    expect(rec.sockets.length).toBe(3); // reconnected after each drop
    // Each ack counted once on the server, whatever was repeated on the wire.
    const counted = await Promise.all([...waiting, ...inFlight].map((s) => alice.deliveryStatus(s.messageId)));
    for (const report of counted) expect(report.acked).toEqual(['bob']);
    expect(t.app.service.acks.pendingCount).toBe(0);
    void a;
  });
});
