import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import type { Config } from '../config.ts';
import { authenticateOrThrow, type Authenticate } from './authenticate.ts';
import { refuseOversizedBatch } from './http-edge.ts';
import type { AppRouter } from './router.ts';
import type { Context } from './trpc.ts';

export interface TrpcHttpOptions {
  router: AppRouter;
  config: Pick<Config, 'maxFrameBytes' | 'maxHttpBatch'>;
  authenticate: Authenticate;
  /** Every refused or failed call (the server's request reporter). */
  onError: (call: { error: { code: string; message: string; cause?: unknown }; path?: string | undefined; type: string; ctx?: unknown; req?: unknown }) => void;
}

/**
 * tRPC queries and mutations over HTTP (tRPC's standalone handler), the token in the
 * Authorization header. Bodies are bounded like one WebSocket frame (MAX_FRAME_BYTES), and a
 * batch over MAX_HTTP_BATCH is refused whole, naming the limit, before the token is checked or
 * any call runs.
 */
export function createTrpcHttp({ router, config, authenticate, onError }: TrpcHttpOptions): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  const handler = createHTTPHandler<AppRouter>({
    router,
    basePath: '/trpc/',
    // Unlimited by default in tRPC: the same budget as one WebSocket frame.
    maxBodySize: config.maxFrameBytes,
    // Unlimited by default too; refuseOversizedBatch answers first, naming the limit — this is the backstop.
    maxBatchSize: config.maxHttpBatch,
    createContext: async ({ req }): Promise<Context> => {
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
      return { principal: await authenticateOrThrow(authenticate, token, req), connection: null };
    },
    onError,
  });
  return async (req, res) => {
    const refused = refuseOversizedBatch(req, res, { router, basePath: '/trpc/', max: config.maxHttpBatch });
    if (refused) onError({ error: refused, type: 'unknown', req });
    else await handler(req, res);
  };
}
