import superjson from 'superjson';
import { beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import type { TRPCClientError } from '@trpc/client';
import type { RealtimeServerOptions } from '../../src/server.ts';
import type { RoomEvent } from '../../src/domain/types.ts';
import type { AppRouter } from '../../src/transport/router.ts';
import { startTestApp, type TestApp } from '../support/start-test-app.ts';
import { dropConnections, firstOutOfOrder, waitUntil } from '../support/wait.ts';
import { compatFolders, loadClient, type LoadedClient, type TrpcClientModule } from './matrix.ts';

/**
 * Issue #10 "compatibility proven, not assumed": the acceptance tests of the stock client, run
 * once per published `@trpc/client` version of the matrix (test/compat/trpc-client-<version>/,
 * each with its own equal `@trpc/server`) against our real server on the root's `@trpc/server`.
 * Only the stock pieces an application would use: `createWSClient` + `wsLink` +
 * `createTRPCClient`, superjson on the link, `ws` as the WebSocket, the token in connectionParams.
 */

const folders = compatFolders();

it('the matrix spans the oldest supported @trpc/client 11.x and a newer one', () => {
  expect(folders.length).toBeGreaterThanOrEqual(2);
  expect(folders[0]!.version).toMatch(/^11\./);
});

describe.each(folders)('stock @trpc/client $version', (folder) => {
  let loaded: LoadedClient;
  beforeAll(() => {
    loaded = loadClient(folder);
  });

  /** The real server plus the stock clients of this version connected to it; all closed on dispose. */
  async function start(options: RealtimeServerOptions = {}) {
    const t = await startTestApp(options);
    const opened: Harness['opened'] = [];
    return {
      t,
      connect(token: string | (() => string), clientOptions: { retryDelayMs?: number } = {}) {
        return connect({ module: loaded.module, t, opened }, token, clientOptions);
      },
      async [Symbol.asyncDispose]() {
        await Promise.allSettled(opened.map(async (c) => c.close()));
        await t.close();
      },
    };
  }

  it(`is ${folder.version} on its own @trpc/server ${folder.version}`, () => {
    expect(loaded.clientVersion).toBe(folder.version);
    expect(loaded.serverVersion).toBe(folder.version);
    expect(loaded.serverCorePath.startsWith(folder.dir)).toBe(true);
  });

  it('query and mutations: presence, send (with ack) and ack, the delivery report', async () => {
    await using m = await start();
    const alice = m.connect(await m.t.token('alice'));
    const bob = m.connect(await m.t.token('bob'));
    const a = record(alice, 'room');
    const b = record(bob, 'room');
    await Promise.all([a.positioned(), b.positioned()]);

    const { members } = await alice.trpc.conversation.presence.query({ conversationId: 'room' });
    expect(members.map((member) => member.userId).sort()).toEqual(['alice', 'bob']);
    expect(members[0]!.joinedAt).toBeInstanceOf(Date);

    const sent = await bob.trpc.message.send.mutate({ conversationId: 'room', body: 'hello', ack: true });
    expect(sent).toMatchObject({ messageId: expect.any(String), eventId: expect.any(String), expected: ['alice'] });
    expect(sent.sentAt).toBeInstanceOf(Date);

    const arrived = await a.until((e) => e.type === 'message' && e.message.id === sent.messageId);
    expect(arrived.id).toBe(sent.eventId);
    const acked = await alice.trpc.message.ack.mutate({ conversationId: 'room', messageId: sent.messageId });
    expect(acked).toEqual({ accepted: true, duplicate: false, late: false });
    const report = await b.until((e) => e.type === 'message_delivered');
    expect(report.event).toMatchObject({ report: { messageId: sent.messageId, status: 'delivered', acked: ['alice'], missing: [] } });
  });

  it('subscription: `subscribed` first with a tracked id, then messages with their Dates revived', async () => {
    await using m = await start();
    const alice = m.connect(await m.t.token('alice'));
    const bob = m.connect(await m.t.token('bob'));
    const a = record(alice, 'room');
    await a.positioned();
    expect(a.all[0]!.event).toMatchObject({ type: 'subscribed', conversationId: 'room', resumed: false, memberCount: 1 });
    expect(a.all[0]!.id).toMatch(/^.+:.+$/);
    expect(a.all[0]!.event.at).toBeInstanceOf(Date);

    await bob.trpc.message.send.mutate({ conversationId: 'room', body: 'first' });
    await bob.trpc.message.send.mutate({ conversationId: 'room', body: 'second' });
    await a.until((e) => e.type === 'message' && e.message.body === 'second');
    const messages = a.messages();
    expect(messages.map((e) => e.body)).toEqual(['first', 'second']);
    expect(messages.every((e) => e.sentAt instanceof Date && e.senderId === 'bob')).toBe(true);
    expect(firstOutOfOrder(a.all.map((e) => e.id))).toBeNull();
  });

  it('resume: after a server-side drop the client re-sends its last tracked id and gets exactly the missed messages, then live ones', async () => {
    // A long presence grace: the drop causes no presence events, so the stream is just messages.
    await using m = await start({ presenceGraceMs: 5000 });
    const alice = m.connect(await m.t.token('alice'));
    // bob comes back only after 300 ms: everything alice sends meanwhile is in the gap.
    const bob = m.connect(await m.t.token('bob'), { retryDelayMs: 300 });
    const b = record(bob, 'room');
    await b.positioned();
    await alice.trpc.message.send.mutate({ conversationId: 'room', body: 'before' });
    await b.until((e) => e.type === 'message' && e.message.body === 'before');

    await dropConnections(m.t, 'bob');
    for (const body of ['gap-1', 'gap-2', 'gap-3']) await alice.trpc.message.send.mutate({ conversationId: 'room', body });
    expect(m.t.app.service.registry.userConnections('bob').size).toBe(0); // they were missed, not received
    await b.positioned(2);
    await alice.trpc.message.send.mutate({ conversationId: 'room', body: 'live' });
    await b.until((e) => e.type === 'message' && e.message.body === 'live');

    expect(bodiesOf(b)).toEqual(['before', 'gap-1', 'gap-2', 'gap-3', 'live']);
    expect(b.all.map((e) => e.event.type)).toEqual(['subscribed', 'message', 'subscribed', 'message', 'message', 'message', 'message']);
    // The resumed stream's position is the id the client re-sent: the last event it had.
    expect(b.all[2]).toMatchObject({ id: b.all[1]!.id, event: { type: 'subscribed', resumed: true } });
    const messageIds = b.all.filter((e) => e.event.type === 'message').map((e) => e.id);
    expect(new Set(messageIds).size).toBe(messageIds.length);
    expect(firstOutOfOrder(messageIds)).toBeNull();
  });

  it('a burst: 20 sends of 8 KB in one tick (one batched frame) all succeed, in order', async () => {
    await using m = await start();
    const alice = m.connect(await m.t.token('alice'));
    const bob = m.connect(await m.t.token('bob'));
    const b = record(bob, 'burst');
    await b.positioned();
    const body = (i: number) => `${i}:`.padEnd(8 * 1024, 'x');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => alice.trpc.message.send.mutate({ conversationId: 'burst', body: body(i) })));
    expect(new Set(results.map((r) => r.messageId)).size).toBe(20);
    await waitUntil(() => b.messages().length === 20, { what: 'bob to get all 20' });
    expect(b.messages().map((e) => e.body)).toEqual(Array.from({ length: 20 }, (_, i) => body(i)));
  });

  it('a bad token: the subscription errors and the query rejects, both UNAUTHORIZED', async () => {
    await using m = await start({ rejectLingerMs: 100 });
    const mallory = m.connect(await m.t.token('mallory', { expiresIn: -60 }), { retryDelayMs: 1000 });
    const errors: unknown[] = [];
    mallory.trpc.conversation.events.subscribe({ conversationId: 'room' }, { onData: () => errors.push('data'), onError: (error) => errors.push(error) });
    const query = await mallory.trpc.conversation.presence.query({ conversationId: 'room' }).then(
      () => null,
      (error: unknown) => error,
    );
    expect((query as TRPCClientError<AppRouter>).data?.code).toBe('UNAUTHORIZED');
    await waitUntil(() => errors.length > 0, { what: 'the subscription to fail' });
    expect(errors).toHaveLength(1);
    expect((errors[0] as TRPCClientError<AppRouter>).data?.code).toBe('UNAUTHORIZED');
    expect(m.t.app.service.stats.messagesBroadcast).toBe(0);
  });

  it("the server's reconnect notice at token expiry: the client moves to a new socket with fresh connectionParams and resumes", async () => {
    // The server would close the old socket (4001) only 10 s after the notice: a new socket
    // before that is the client acting on the notice.
    await using m = await start({ presenceGraceMs: 5000, tokenRefreshGraceMs: 10_000 });
    const alice = m.connect(await m.t.token('alice'));
    // bob's first token expires in 1–2 s (whole seconds: never too soon to connect with it);
    // connectionParams is asked again on reconnect and gives a fresh one.
    const tokens = [await m.t.token('bob', { expiresIn: 2 }), await m.t.token('bob')];
    let asked = 0;
    const bob = m.connect(() => tokens[Math.min(asked++, 1)]!);
    const b = record(bob, 'room');
    await b.positioned();
    await alice.trpc.message.send.mutate({ conversationId: 'room', body: 'before' });
    await b.positioned(2, 5000);
    expect(asked).toBe(2);
    await alice.trpc.message.send.mutate({ conversationId: 'room', body: 'after' });
    await b.until((e) => e.type === 'message' && e.message.body === 'after');
    expect(bodiesOf(b)).toEqual(['before', 'after']);
    expect(b.all[b.all.length - 2]!.event).toMatchObject({ type: 'subscribed', resumed: true });
  });
});

type Connected = ReturnType<typeof connect>;

interface Harness {
  module: TrpcClientModule;
  t: TestApp;
  /** Every client opened, to close them before the server. */
  opened: Array<{ close(): Promise<void> | void }>;
}

/** A stock client of the harness's version: one WebSocket, superjson on the link, the token in connectionParams. */
function connect({ module, t, opened }: Harness, token: string | (() => string), { retryDelayMs = 20 }: { retryDelayMs?: number } = {}) {
  const wsClient = module.createWSClient({
    url: t.wsUrl,
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    connectionParams: () => ({ token: typeof token === 'string' ? token : token() }),
    retryDelayMs: () => retryDelayMs,
  });
  opened.push(wsClient);
  const trpc = module.createTRPCClient<AppRouter>({ links: [module.wsLink({ client: wsClient, transformer: superjson })] });
  return { wsClient, trpc };
}

interface Recorded {
  id: string;
  event: RoomEvent;
}

/** Records a `conversation.events` subscription exactly as the stock client delivers it. */
function record(client: Connected, conversationId: string) {
  const all: Recorded[] = [];
  const errors: unknown[] = [];
  client.trpc.conversation.events.subscribe(
    { conversationId },
    {
      onData: ({ id, data }) => {
        all.push({ id, event: data });
      },
      onError: (error) => {
        errors.push(error);
      },
    },
  );
  const failed = () => (errors.length > 0 ? new Error(`subscription to ${conversationId} failed: ${String(errors[0])}`) : null);
  return {
    all,
    messages: () => all.flatMap((e) => (e.event.type === 'message' ? [e.event.message] : [])),
    /** Resolves once the stream has started `n` times (each start's first event is `subscribed`). */
    async positioned(n = 1, timeoutMs = 5000) {
      await waitUntil(() => all.filter((e) => e.event.type === 'subscribed').length >= n || failed() !== null, { timeoutMs, what: `start ${n} of ${conversationId}` });
      const error = failed();
      if (error) throw error;
    },
    async until(predicate: (event: RoomEvent) => boolean): Promise<Recorded> {
      let found: Recorded | undefined;
      await waitUntil(() => (found = all.find((e) => predicate(e.event))) !== undefined || failed() !== null, { what: `an event in ${conversationId}` });
      if (!found) throw failed();
      return found;
    },
  };
}

function bodiesOf(recorder: ReturnType<typeof record>): string[] {
  return recorder.messages().map((m) => m.body);
}
