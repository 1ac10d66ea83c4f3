import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { CloseCodes } from '../../src/transport/close-codes.ts';
import { startTestApp } from '../support/start-test-app.ts';
import { aboutUser, bodies, firstOutOfOrder, joinLogged, recordRaw, waitUntil, type RecordedEvent } from '../support/wait.ts';

/**
 * Issue #4, seed edge case EC-2: during a flood one client stops reading its socket. The server
 * must close it as a slow consumer (4008) without holding more than MAX_BUFFERED_BYTES (plus the
 * frames of one loop turn) for it, drop typing for it first, leave every other subscriber of the
 * room untouched, and let it resume to a complete stream.
 *
 * The stalled client is the stock chat client (stock @trpc/client over `ws`): it reconnects and
 * resumes by itself. Its socket is reached by handing it a recording `WebSocket` class (the chat
 * client uses the platform's WebSocket when there is one) and paused with ws's own `pause()`.
 * Loopback TCP buffers take a few MB before the server's socket starts to queue, so the flood
 * runs until the server closes the stalled connection (bounded) and then goes on for a fixed tail.
 */
describe('issue #4: a slow consumer during a flood', () => {
  const MAX = 256 * 1024;
  const ROOM = 'flood';
  const HEALTHY = 20;
  /** Messages per loop turn: the server's writes are corked per turn and leave when it ends. */
  const PER_TURN = 20;
  const PAD = 'x'.repeat(2000);
  /** Loopback kernel buffers absorb ~3-4 MB of a paused reader first; give up well beyond that. */
  const MAX_MESSAGES = 12_000;
  /** Messages published after the close (the resume covers them, and the replay/live hand-off). */
  const TAIL = 500;

  it('closes it with 4008 at a bounded backlog, drops typing first, spares the others, and it resumes complete', async () => {
    await using t = await startTestApp({
      maxBufferedBytes: MAX,
      historySize: 16_384, // covers the whole flood: the resume is a replay, not a resync
      presenceGraceMs: 5000, // the reconnect is a blip: no presence change for the room
      // broadcastMessage goes through the per-user rate limit (as user "system"): lift it.
      messageRatePerSec: 1_000_000,
      messageRateBurst: 1_000_000,
    });
    const { service } = t.app;
    const serverSockets: Socket[] = [];
    t.app.httpServer.on('connection', (socket) => serverSockets.push(socket));

    const healthy = await Promise.all(Array.from({ length: HEALTHY }, (_, i) => t.client(`healthy-${i}`)));
    const healthyStreams = healthy.map((client) => recordRaw(client, ROOM));
    await Promise.all(healthyStreams.map((s) => s.started()));

    // The stalled user: a stock chat client whose sockets we can see.
    const stalledSockets: WebSocket[] = [];
    class RecordingWebSocket extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        stalledSockets.push(this);
      }
    }
    const platform = globalThis as { WebSocket?: unknown };
    platform.WebSocket = RecordingWebSocket;
    const stalled = await t.client('stalled').finally(() => delete platform.WebSocket);
    // Two subscriptions on the one stalled connection: the wire view (no de-duplication) and
    // what the chat client's join() hands the application.
    const stalledWire = recordRaw(stalled, ROOM);
    const stalledApp = joinLogged(stalled, ROOM);
    await Promise.all([stalledWire.started(), stalledApp.conversation.started]);
    expect(stalledSockets).toHaveLength(1);
    const stalledWs = stalledSockets[0]!;
    const clientClose = new Promise<{ code: number; reason: string }>((resolve) => stalledWs.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    const [stalledId, ...others] = service.registry.userConnections('stalled');
    expect(others).toEqual([]);
    const handle = service.connection(stalledId!)!;
    const clientPort = (stalledWs as unknown as { _socket: Socket })._socket.localPort;
    const serverSocket = serverSockets.find((s) => s.remotePort === clientPort)!;
    expect(serverSocket).toBeDefined();
    expect(service.internals()).toMatchObject({ connections: HEALTHY + 1, 'registry.connections': HEALTHY + 1 });

    stalledWs.pause(); // stops reading: what the server writes piles up in the kernel, then in the server

    const published: string[] = [];
    const publish = () => {
      const body = `m${published.length} ${PAD}`;
      published.push(body);
      return t.app.broadcastMessage(ROOM, { body });
    };
    let peak = 0; // the most the server held for the stalled socket (bytes not yet taken by the kernel)
    let largestTurn = 0; // the most it wrote to it in one loop turn
    let closedAt = -1; // messages published when the server closed it
    let heldAtClose = 0;
    let typingProbed = false;
    let typingAround: { before: string; after: string } | null = null;

    while (closedAt === -1 ? published.length < MAX_MESSAGES : published.length < closedAt + TAIL) {
      const startOfTurn = serverSocket.writableLength;
      const batch = Array.from({ length: PER_TURN }, publish);
      await Promise.all(batch);
      await written(); // this turn's frames leave as one write when the turn ends
      const behind = handle.bufferedBytes();
      if (!typingProbed && closedAt === -1 && behind > MAX / 4 && behind <= MAX) {
        // More than a quarter behind, not yet closed: typing is dropped for it, messages are not.
        typingProbed = true;
        const dropped = service.stats.typingDropped;
        const held = serverSocket.writableLength;
        const before = published.at(-1)!;
        t.app.broadcastTyping(ROOM, 'typist', true);
        expect(service.stats.typingDropped - dropped).toBe(2); // one per subscription of the stalled connection
        expect(serverSocket.writableLength).toBe(held);
        await publish();
        await written();
        expect(serverSocket.writableLength).toBeGreaterThan(held);
        t.app.broadcastTyping(ROOM, 'typist', false);
        expect(service.stats.typingDropped - dropped).toBe(4);
        expect(service.stats.slowConsumerCloses).toBe(0);
        typingAround = { before, after: published.at(-1)! };
      }

      if (closedAt === -1 && service.stats.slowConsumerCloses > 0) {
        closedAt = published.length;
        heldAtClose = serverSocket.writableLength;
        // Gone from the service at once, although the paused client has not read the close frame yet.
        expect(service.connection(stalledId!)).toBeUndefined();
        expect(service.registry.userConnections('stalled').size).toBe(0);
        expect(service.internals()).toMatchObject({ connections: HEALTHY, 'registry.connections': HEALTHY });
        expect(serverSocket.destroyed).toBe(false);
        stalledWs.resume(); // it reads what it was sent, then the close frame, then reconnects
      }
      // Nothing more is written to it but the close frame (a control frame: at most 127 bytes).
      if (closedAt !== -1) expect(serverSocket.writableLength).toBeLessThanOrEqual(heldAtClose + 127);
      // Everything of this turn is written by now: this is the turn's peak.
      peak = Math.max(peak, serverSocket.writableLength);
      largestTurn = Math.max(largestTurn, serverSocket.writableLength - startOfTurn);
      await nextTurn(); // clients read
    }
    const total = published.length;
    expect(closedAt, `the stalled connection was never closed after ${total} messages`).toBeGreaterThan(0);
    expect(typingProbed).toBe(true);

    // 1. Closed by the server with 4008, once.
    expect(await clientClose).toEqual({ code: CloseCodes.SLOW_CONSUMER, reason: 'slow consumer' });
    expect(service.stats.slowConsumerCloses).toBe(1);

    // 2. Bounded: never more than MAX_BUFFERED_BYTES plus one turn's frames held for it.
    expect(largestTurn).toBeGreaterThan(0);
    expect(largestTurn).toBeLessThan((PER_TURN + 1) * 2 * (PAD.length + 1024)); // one turn's messages, for its two subscriptions
    expect(peak).toBeGreaterThan(MAX);
    expect(peak).toBeLessThanOrEqual(MAX + largestTurn);
    expect(heldAtClose).toBeLessThanOrEqual(MAX + largestTurn);

    // 3 and 4. Everyone ends up with every message exactly once, in order.
    const last = published.at(-1)!;
    const hasAll = (events: readonly RecordedEvent[]) => events.at(-1)?.event.type === 'message' && bodies(events).at(-1) === last;
    await waitUntil(() => healthyStreams.every((s) => hasAll(s.events)) && hasAll(stalledWire.events) && hasAll(stalledApp.log), {
      timeoutMs: 15_000,
      what: 'every client to receive the whole flood',
    });

    const ids = (events: readonly RecordedEvent[]) => events.map((e) => e.id);
    const typingOf = (events: readonly RecordedEvent[]) => events.flatMap(({ event }) => (event.type === 'typing' ? [`${event.userId}:${event.isTyping}`] : []));
    for (const stream of healthyStreams) {
      expect(stream.starts).toBe(1); // never dropped
      expect(stream.errors).toEqual([]);
      expect(bodies(stream.events)).toEqual(published);
      expect(firstOutOfOrder(ids(stream.events))).toBeNull();
      // The typing the stalled connection did not get, they did, where it happened.
      expect(typingOf(stream.events)).toEqual(['typist:true', 'typist:false']);
      const order = stream.events.map((e) => (e.event.type === 'typing' ? `typing:${e.event.isTyping}` : e.event.type === 'message' ? e.event.message.body : e.event.type));
      const at = order.indexOf(typingAround!.before);
      expect(order.slice(at, at + 4)).toEqual([typingAround!.before, 'typing:true', typingAround!.after, 'typing:false']);
      // The stalled user joined once and never left: its drop and return were inside the grace.
      expect(aboutUser(stream.events, 'stalled')).toEqual(['user_joined']);
    }

    expect(stalledWire.starts).toBe(2); // one reconnect: the first socket and the resumed one
    expect(stalledWire.errors).toEqual([]);
    expect(bodies(stalledWire.events)).toEqual(published); // the wire: no gap, no duplicate
    expect(stalledWire.events.every((e) => e.event.type === 'message')).toBe(true); // no resync, no typing
    expect(firstOutOfOrder(ids(stalledWire.events))).toBeNull();
    expect(bodies(stalledApp.log)).toEqual(published);
    expect(ids(stalledApp.log)).toEqual(ids(stalledWire.events));
    expect(stalledSockets).toHaveLength(2);

    // After the close the stalled socket is gone for good, and the reconnected one is an ordinary member.
    await waitUntil(() => serverSocket.destroyed, { what: 'the stalled server socket to close' });
    expect(service.registry.userConnections('stalled').size).toBe(1);
    expect(service.internals()).toMatchObject({ connections: HEALTHY + 1, 'registry.connections': HEALTHY + 1, graceTimers: 0 });
    expect(service.stats.slowConsumerCloses).toBe(1);
  });
});

/** Resolves after the frames queued in this loop turn have been written (src/transport/writer.ts flushes on setImmediate). */
function written(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
