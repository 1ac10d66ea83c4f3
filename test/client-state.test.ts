import { createServer, type AddressInfo } from 'node:net';
import type { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import { createChatClient, NotConnectedError, type AppRouter, type ChatClient, type ConnectionState, type WebSocketClass } from '../clients/chat/index.ts';
import { joined } from './support/helpers.ts';
import { startTestApp, TEST_SECRET } from './support/start-test-app.ts';
import { dropConnections, waitUntil } from './support/wait.ts';
import { mintToken } from '../src/auth/tokens.ts';

/**
 * The typed client as a UI sees it (issue 14): a connection state with the last error, calls
 * that fail when the server stays out of reach, TypeErrors for URLs that cannot work, and each
 * acked send's final report. Real server on port 0, real clients.
 */

/** Resolves with the first state (the current one included) that matches; rejects after `timeoutMs`. */
function stateWhere(client: ChatClient, predicate: (state: ConnectionState) => boolean, timeoutMs = 5000): Promise<ConnectionState> {
  return new Promise((resolve, reject) => {
    if (predicate(client.state)) return resolve(client.state);
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no matching state within ${timeoutMs} ms; last: ${JSON.stringify({ ...client.state, error: client.state.error?.message })}`));
    }, timeoutMs);
    const off = client.onState((state) => {
      if (!predicate(state)) return;
      clearTimeout(timer);
      off();
      resolve(state);
    });
  });
}

describe('connection state', () => {
  it('an unreachable port: connecting with ECONNREFUSED, and a send fails after callTimeoutMs naming the URL, the status and the error', async () => {
    const token = await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'] });
    const chat = createChatClient({ url: 'ws://127.0.0.1:1/trpc', token, callTimeoutMs: 300, retryDelayMs: () => 50 });
    try {
      expect(chat.state).toEqual({ status: 'connecting', transport: 'websocket', error: null });
      const seen: ConnectionState[] = [];
      chat.onState((state) => seen.push(state));
      const refused = await stateWhere(chat, (s) => s.error !== null);
      expect(refused.status).toBe('connecting');
      expect(refused.error?.message).toMatch(/ECONNREFUSED/);
      expect(seen.at(-1)).toBe(refused);

      const room = chat.join('lobby'); // joins wait, they do not fail
      let joinFailed = false;
      room.started.catch(() => (joinFailed = true));

      const started = Date.now();
      const error = await chat.send('lobby', 'hello?').then(() => null, (e: unknown) => e);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      expect(error).toBeInstanceOf(NotConnectedError);
      expect((error as Error).message).toBe('not connected to ws://127.0.0.1:1/trpc after 300 ms (connecting): connect ECONNREFUSED 127.0.0.1:1');
      await expect(chat.presence('lobby')).rejects.toThrow(/^not connected to ws:\/\/127\.0\.0\.1:1\/trpc after 300 ms \(connecting\)/);
      expect(joinFailed).toBe(false);
    } finally {
      await chat.close();
    }
    expect(chat.state.status).toBe('closed');
  });

  it('throws a TypeError at once for a URL without a scheme, with another scheme, or without /trpc', () => {
    for (const [url, says] of [
      ['localhost:3000/trpc', /no ws\/wss\/http\/https scheme/],
      ['127.0.0.1:3000/trpc', /not a URL/],
      ['ftp://localhost:3000/trpc', /no ws\/wss\/http\/https scheme/],
      ['ws://localhost:3000', /has the path "\/", not \/trpc/],
      ['http://localhost:3000/api', /has the path "\/api", not \/trpc/],
    ] as const) {
      expect(() => createChatClient({ url, token: 'x' }), url).toThrow(TypeError);
      expect(() => createChatClient({ url, token: 'x' }), url).toThrow(says);
      expect(() => createChatClient({ url, token: 'x' }), url).toThrow(/like ws:\/\/localhost:3000\/trpc/);
    }
  });

  it('a dropped socket: reconnecting (with the close as the error), then connected again', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    await joined(alice, 'drop');
    await stateWhere(alice, (s) => s.status === 'connected');
    expect(alice.state).toEqual({ status: 'connected', transport: 'websocket', error: null });
    const statuses: string[] = [];
    alice.onState((s) => statuses.push(s.status));
    const down = stateWhere(alice, (s) => s.status === 'reconnecting');
    await dropConnections(t, 'alice');
    expect((await down).error?.message).toMatch(/4008/);
    await stateWhere(alice, (s) => s.status === 'connected'); // asked in the same turn: the reconnect needs I/O
    expect(statuses).toEqual(['reconnecting', 'connected']);
    await alice.close();
    expect(alice.state.status).toBe('closed');
  });

  it('over SSE: connected, transport sse', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { transport: 'sse' });
    await joined(alice, 'sse-state');
    const state = await stateWhere(alice, (s) => s.status === 'connected');
    expect(state).toEqual({ status: 'connected', transport: 'sse', error: null });
  });

  it("auto: connecting with no transport until decided, then the WebSocket's state", async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { transport: 'auto' });
    expect(alice.state).toEqual({ status: 'connecting', transport: undefined, error: null });
    expect(await stateWhere(alice, (s) => s.status === 'connected')).toEqual({ status: 'connected', transport: 'websocket', error: null });
  });

  for (const transport of ['websocket', 'sse'] as const) {
    it(`an UNAUTHORIZED refusal closes the client with the error — ${transport}`, async () => {
      await using t = await startTestApp();
      const chat = createChatClient({ url: t.wsUrl, token: 'not-a-token', transport });
      try {
        chat.join('lobby'); // over SSE nothing is asked before a stream or a call
        const closed = await stateWhere(chat, (s) => s.status === 'closed');
        expect(closed).toMatchObject({ transport });
        expect(closed.error?.message).toMatch(/invalid token/);
      } finally {
        await chat.close();
      }
    });
  }
});

describe("connected means the server accepted the token (WebSocket)", () => {
  /** Every state the client goes through, from its first. */
  function recordStates(chat: ChatClient): ConnectionState[] {
    const seen = [chat.state];
    chat.onState((state) => seen.push(state));
    return seen;
  }

  it.each([
    ['signed with another secret', () => mintToken('another-secret-that-is-at-least-32-characters', { userId: 'mallory', conversations: ['*'] })],
    ['expired', () => mintToken(TEST_SECRET, { userId: 'mallory', conversations: ['*'], expiresIn: -60 })],
  ] as const)('a token %s: never connected, closed with the UNAUTHORIZED error', async (_, token) => {
    await using t = await startTestApp();
    const chat = createChatClient({ url: t.wsUrl, token: await token(), retryDelayMs: () => 20 });
    const seen = recordStates(chat);
    try {
      const closed = await stateWhere(chat, (s) => s.status === 'closed');
      expect(seen.map((s) => s.status)).not.toContain('connected');
      expect((closed.error as TRPCClientError<AppRouter> | null)?.data?.code).toBe('UNAUTHORIZED');
      expect(closed.transport).toBe('websocket');
    } finally {
      await chat.close();
    }
  });

  it('a good token: connected once per socket, each time after the server authenticated it, across a drop and a reconnect', async () => {
    await using t = await startTestApp();
    const { registry } = t.app.service;
    const chat = await t.client('alice');
    const seen = recordStates(chat);
    /** At each `connected`: the server's connections of alice then, and a call made right then. */
    const atConnected: Array<{ connections: string[]; call: Promise<unknown> }> = [];
    chat.onState((state) => {
      if (state.status !== 'connected') return;
      atConnected.push({ connections: [...registry.userConnections('alice')], call: chat.trpc.conversation.mine.query().then((rooms) => rooms, (error: unknown) => error) });
    });
    await stateWhere(chat, (s) => s.status === 'connected');
    expect(atConnected).toHaveLength(1);
    const [first] = atConnected[0]!.connections;
    expect(first).toBeDefined(); // the server had authenticated the socket when the client said connected
    expect(await atConnected[0]!.call).toEqual([]);

    const dropped = await dropConnections(t, 'alice');
    expect(dropped).toEqual([first]);
    await stateWhere(chat, (s) => s.status === 'reconnecting');
    await stateWhere(chat, (s) => s.status === 'connected');
    expect(atConnected).toHaveLength(2);
    expect(atConnected[1]!.connections).toHaveLength(1);
    expect(atConnected[1]!.connections).not.toContain(first); // the new socket's, authenticated
    expect(await atConnected[1]!.call).toEqual([]);
    // One `connected` per socket: none between the drop and the new socket's authentication.
    const statuses = seen.map((s) => s.status);
    expect(statuses.filter((s) => s === 'connected')).toHaveLength(2);
    expect(statuses.filter((s, i) => s !== statuses[i - 1])).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
  });

  it('a server-asked reconnect (token refresh) stays connected: the old socket closes once the new one serves', async () => {
    await using t = await startTestApp();
    const sockets: NodeWebSocket[] = [];
    const closedSockets = new Set<NodeWebSocket>();
    class RecordingWebSocket extends NodeWebSocket {
      constructor(...args: ConstructorParameters<typeof NodeWebSocket>) {
        super(...args);
        sockets.push(this);
        this.addEventListener('close', () => closedSockets.add(this));
      }
    }
    // Each token lives 2 s: at its expiry the server asks for a new socket with a fresh one.
    const chat = createChatClient({
      url: t.wsUrl,
      token: () => mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'], expiresIn: 2 }),
      WebSocket: RecordingWebSocket as unknown as WebSocketClass,
    });
    try {
      const seen = recordStates(chat);
      await stateWhere(chat, (s) => s.status === 'connected');
      // The move is over once the client has seen its first socket close.
      await waitUntil(() => sockets[0] !== undefined && closedSockets.has(sockets[0]), { timeoutMs: 10_000, what: 'the first socket to close' });
      expect(sockets.length).toBeGreaterThanOrEqual(2);
      expect(await chat.trpc.conversation.mine.query()).toEqual([]);
      expect(seen.map((s) => s.status)).toEqual(['connecting', 'connected']);
    } finally {
      await chat.close();
    }
  });
});

describe('send with ack: report', () => {
  for (const transport of ['websocket', 'sse'] as const) {
    it(`resolves for a sender alone in the room (failed, 0 recipients) — ${transport}`, async () => {
      await using t = await startTestApp();
      const alice = await t.client('alice', { transport });
      await joined(alice, 'alone');
      const { messageId, report } = await alice.send('alone', 'anyone?', { ack: true });
      expect(await report).toMatchObject({ messageId, status: 'failed', expected: [], acked: [] });
    });
  }

  it('resolves with delivered for a real recipient', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 3000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    await joined(alice, 'pair');
    await joined(bob, 'pair');
    const { messageId, report } = await alice.send('pair', 'hi bob', { ack: true });
    expect(await report).toMatchObject({ messageId, status: 'delivered', expected: ['bob'], acked: ['bob'], missing: [] });
  });

  it('resolves for a sender that never joined, through deliveryStatus after the deadline', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 300 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    const b = await joined(bob, 'outside');
    const bobGot = b.next('message');
    const { messageId, report } = await alice.send('outside', 'from outside', { ack: true });
    await bobGot;
    expect(await report).toMatchObject({ messageId, status: 'failed', expected: ['bob'], missing: ['bob'] });
  });

  it('a send without ack has no report; close() rejects a report still waiting', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const alice = await t.client('alice');
    const bob = await t.client('bob', { autoAck: false });
    await joined(alice, 'wait');
    const b = await joined(bob, 'wait');
    expect('report' in (await alice.send('wait', 'plain'))).toBe(false);
    const bobGot = b.next('message', (e) => e.message.body === 'acked');
    const { report } = await alice.send('wait', 'acked', { ack: true });
    await bobGot;
    await alice.close();
    await expect(report).rejects.toThrow(/closed before the delivery report/);
  });
});

describe('connection state over SSE', () => {
  it('an unreachable port: connecting with the fetch error and its cause', async () => {
    const token = await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'] });
    // A port that was just free (fetch refuses port 1 itself: "bad port").
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    const chat = createChatClient({ url: `http://127.0.0.1:${port}/trpc`, token, transport: 'sse', callTimeoutMs: 300 });
    try {
      chat.join('lobby');
      const refused = await stateWhere(chat, (s) => s.error !== null);
      expect(refused).toMatchObject({ status: 'connecting', transport: 'sse' });
      expect(refused.error?.message).toBe(`fetch failed: connect ECONNREFUSED 127.0.0.1:${port}`);
      // Over HTTP a call fails by itself (fetch failed), or — when its retries outlast callTimeoutMs — with NotConnectedError quoting that.
      await expect(chat.send('lobby', 'hello?')).rejects.toThrow(/fetch failed/);
    } finally {
      await chat.close();
    }
  });
});

describe('send with ack: report, racing the join', () => {
  it.each(['websocket', 'sse'] as const)('resolves for a send made before its join has started (then the report is also asked for) — %s', async (transport) => {
    await using t = await startTestApp({ ackTimeoutMs: 300 });
    const alice = await t.client('alice', { transport });
    alice.join('racing'); // not awaited: the send may overtake the subscription
    const { messageId, report } = await alice.send('racing', 'first words', { ack: true });
    expect(await report).toMatchObject({ messageId, status: 'failed', expected: [] });
  });
});
