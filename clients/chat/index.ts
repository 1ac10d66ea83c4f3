/**
 * `realtime-broadcast/client` for Node (and tests): the typed chat client (client.ts) with the
 * `ws` package as its WebSocket — Node 20 has none of its own. Browsers get browser.ts through
 * the `browser` export condition: the same client on the platform's WebSocket, without `ws`.
 */
import { WebSocket as NodeWebSocket } from 'ws';
import { createChatClient as createClient, type ChatClient, type ChatClientOptions, type WebSocketClass } from './client.ts';

export * from './client.ts';

/**
 * The typed chat client (see client.ts). `options.WebSocket` defaults to the platform's
 * `globalThis.WebSocket` where there is one (Node ≥ 22; tests put a recording class there), else
 * the `ws` package's class — read when the client is created.
 */
export function createChatClient(options: ChatClientOptions): ChatClient {
  const platform = (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  return createClient({ ...options, WebSocket: options.WebSocket ?? platform ?? (NodeWebSocket as unknown as WebSocketClass) });
}
