import { setTimeout as sleep } from 'node:timers/promises';
import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { frameErrorCode, rawClient } from '../support/helpers.ts';
import { startTestApp, type TestApp } from '../support/start-test-app.ts';
import { waitUntil } from '../support/wait.ts';

/**
 * Issue #6 (hardening): what the protocol fuzzer (test/fuzz-protocol.test.ts) found. Two gaps were
 * in the path that then served `conversation.events` and the hot mutations beside tRPC's adapter
 * (since issue #10 the whole WebSocket transport is ours: src/transport/ws/); one is in superjson
 * itself, reachable through every path that reads a client's input. Each test states the behaviour
 * we want; each failed before the fix (today: MAX_WS_BATCH in src/transport/ws/connection.ts,
 * readInput in src/transport/ws/protocol.ts, src/transport/safe-superjson.ts).
 */
describe('issue #6: gaps found by the protocol fuzzer', () => {
  async function authenticated(t: TestApp, token?: string) {
    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    raw.send({ method: 'connectionParams', data: { token: token ?? (await t.token('mallory', { conversations: ['fz'] })) } });
    return raw;
  }

  /** The longest the event loop was blocked (ms) while `work` ran: the widest gap between ticks of a 5 ms timer. */
  async function longestStall(work: () => Promise<void>): Promise<number> {
    let last = performance.now();
    let longest = 0;
    const ticker = setInterval(() => {
      const now = performance.now();
      longest = Math.max(longest, now - last);
      last = now;
    }, 5);
    try {
      await work();
      await sleep(30); // the tick after a block measures it
    } finally {
      clearInterval(ticker);
    }
    return longest;
  }

  /**
   * superjson 2.2.6 (and 2.2.7) recurses without bound when `meta.values` has a string where an
   * annotation tree is expected, copying a growing path array at every level until the stack
   * overflows: ~10 ms of CPU and megabytes of garbage for a ~100-byte input.
   */
  const hostileInput = { json: { conversationId: 'fz', body: 'x' }, meta: { values: { body: 'x' } } };

  it('serves a batch of 1,001 message.send call by call (issue #10 replaced the batch limit): every one answered by id, every one sent', async () => {
    await using t = await startTestApp({ messageRateBurst: 5000 });
    const raw = await authenticated(t);
    const n = 1001;
    const batch = Array.from({ length: n }, (_, i) => ({
      id: i + 1,
      method: 'mutation',
      params: { path: 'message.send', input: superjson.serialize({ conversationId: 'fz', body: `m${i}` }) },
    }));
    raw.send(batch);
    await waitUntil(() => raw.frames.length >= n, { what: `${n} answers` });
    const ids = raw.frames.map((f) => (f as { id: number }).id).sort((a, b) => a - b);
    expect(ids).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    expect(raw.frames.map(frameErrorCode).filter(Boolean)).toEqual([]);
    expect(t.app.service.stats.messagesBroadcast).toBe(n);
  });

  it('answers input superjson cannot read, on a hot mutation, as a client error (PARSE_ERROR, as the HTTP handler does), not INTERNAL_SERVER_ERROR', async () => {
    await using t = await startTestApp();
    const raw = await authenticated(t);
    raw.send({ id: 1, method: 'mutation', params: { path: 'typing.set', input: null } });
    raw.send({ id: 2, method: 'mutation', params: { path: 'message.send', input: hostileInput } });
    const answers = await Promise.all([1, 2].map((id) => raw.waitFor((f) => (f as { id?: unknown }).id === id)));
    expect(answers.map(frameErrorCode)).toEqual(['PARSE_ERROR', 'PARSE_ERROR']);
  });

  it('one frame of hot calls with hostile superjson input does not stall the server (a 44 KB batch stalled it ~2 s before the fix)', async () => {
    await using t = await startTestApp();
    const raw = await authenticated(t);
    const batch = Array.from({ length: 300 }, (_, i) => ({ id: i + 1, method: 'mutation', params: { path: 'message.send', input: hostileInput } }));
    const stall = await longestStall(async () => {
      raw.send(batch);
      await waitUntil(() => raw.frames.length >= 300 || raw.ws.readyState !== WebSocket.OPEN, { timeoutMs: 30_000, what: 'the answers' });
    });
    expect(stall).toBeLessThan(250);
  });

  it('a socket with a bad token cannot stall the server with hostile superjson input before it is refused (~1.5 s before the fix)', async () => {
    await using t = await startTestApp({ rejectLingerMs: 200 });
    const raw = await authenticated(t, 'not-a-token');
    const stall = await longestStall(async () => {
      for (let i = 0; i < 300; i += 1) raw.send({ id: i + 1, method: 'query', params: { path: 'conversation.presence', input: hostileInput } });
      await raw.closed;
    });
    expect(stall).toBeLessThan(250);
  });
});
