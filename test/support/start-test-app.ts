import { mintToken, type MintOptions } from '../../src/auth/tokens.ts';
import { createRealtimeServer, type RealtimeServerOptions } from '../../src/server.ts';
import { createChatClient, type ChatClient, type ChatClientOptions } from '../../clients/chat/index.ts';

export const TEST_SECRET = 'test-secret-that-is-at-least-32-characters-long';

export interface TestApp extends AsyncDisposable {
  app: ReturnType<typeof createRealtimeServer>;
  baseUrl: string;
  wsUrl: string;
  /** Mints a token for `userId` (all conversations unless given). */
  token(userId: string, options?: Omit<MintOptions, 'userId'>): Promise<string>;
  /** A real chat client (stock @trpc/client over ws) for `userId`; closed with the app. */
  client(userId: string, options?: Omit<MintOptions, 'userId'> & Partial<ChatClientOptions>): Promise<ChatClient>;
  close(): Promise<void>;
}

/**
 * The real server on 127.0.0.1:0 (or `listen.port`) with short timeouts, returned as an
 * AsyncDisposable: `await using t = await startTestApp({ ackTimeoutMs: 300 })`.
 */
export async function startTestApp(options: RealtimeServerOptions = {}, listen: { port?: number } = {}): Promise<TestApp> {
  const app = createRealtimeServer({
    authSecret: TEST_SECRET,
    presenceGraceMs: 0,
    // Single presence events, as before batching, so tests asserting exact event sequences stay
    // exact; the batching's own tests (presence-batch, presence-storm) set it.
    presenceBatchMs: 0,
    shutdownDrainMs: 200,
    env: { LOG_LEVEL: 'silent' },
    ...options,
  });
  const { port } = await app.listen(listen.port ?? 0, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${port}`;
  const wsUrl = `ws://127.0.0.1:${port}/trpc`;
  const clients: ChatClient[] = [];
  const token = (userId: string, opts: Omit<MintOptions, 'userId'> = {}) =>
    mintToken(TEST_SECRET, { conversations: ['*'], ...opts, userId });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await Promise.allSettled(clients.map((c) => c.close()));
    await app.close();
  };
  return {
    app,
    baseUrl,
    wsUrl,
    token,
    async client(userId, opts = {}) {
      const { name, role, conversations, expiresIn, ...clientOptions } = opts;
      const jwt = await token(userId, {
        ...(name !== undefined && { name }),
        ...(role !== undefined && { role }),
        ...(conversations !== undefined && { conversations }),
        ...(expiresIn !== undefined && { expiresIn }),
      });
      const client = createChatClient({ url: wsUrl, token: jwt, retryDelayMs: () => 20, ...clientOptions });
      clients.push(client);
      return client;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
