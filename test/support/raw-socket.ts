import superjson from 'superjson';
import { WebSocket } from 'ws';
import type { TestApp } from './start-test-app.ts';
import { waitUntil } from './wait.ts';

/**
 * A bare `ws` client speaking the tRPC wire protocol by hand, subscribed to one conversation.
 * Unlike the stock client it never reconnects and never sends `subscription.stop`, so
 * `terminate()` is what a dropped network or a killed browser tab looks like to the server.
 */
export interface RawSocket {
  /** The server-side connection id of this socket. */
  readonly connectionId: string;
  /** Parsed frames the server sent, in order. */
  readonly frames: unknown[];
  /** Calls a mutation over this socket; resolves with the server's response frame. */
  mutate(path: string, input: unknown): Promise<{ id: number; result?: unknown; error?: unknown }>;
  /** Destroys the TCP socket without a close frame; resolves once the server has dropped it. */
  terminate(): Promise<void>;
}

export async function openRawSubscription(t: TestApp, userId: string, conversationId: string): Promise<RawSocket> {
  const { registry } = t.app.service;
  const before = new Set(registry.userConnections(userId));
  const token = await t.token(userId);
  const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
  const frames: unknown[] = [];
  let started = false;
  ws.on('message', (data) => {
    const text = String(data);
    if (text === 'PING') return ws.send('PONG');
    const frame = JSON.parse(text) as { id?: unknown; result?: { type?: string } };
    frames.push(frame);
    if (frame.id === 1 && frame.result?.type === 'started') started = true;
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
  ws.send(JSON.stringify({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: superjson.serialize({ conversationId }) } }));
  await waitUntil(() => started, { what: `raw subscription of ${userId} to ${conversationId}` });
  const connectionId = [...registry.userConnections(userId)].find((id) => !before.has(id));
  if (!connectionId) throw new Error('raw socket has no server-side connection');
  let nextId = 1;
  return {
    connectionId,
    frames,
    async mutate(path, input) {
      const id = ++nextId;
      const from = frames.length;
      ws.send(JSON.stringify({ id, method: 'mutation', params: { path, input: superjson.serialize(input) } }));
      let response: { id: number } | undefined;
      await waitUntil(() => (response = frames.slice(from).find((f) => (f as { id?: unknown }).id === id) as { id: number } | undefined) !== undefined, {
        what: `the response to ${path}`,
      });
      return response!;
    },
    async terminate() {
      ws.terminate();
      await waitUntil(() => t.app.service.connection(connectionId) === undefined, { what: 'the server to drop the raw socket' });
    },
  };
}
