import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { canAccess, createTokenVerifier } from './auth/tokens.ts';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import { createCluster } from './cluster/cluster.ts';
import { loadConfig, type Config } from './config.ts';
import { DomainError } from './domain/errors.ts';
import type { DeliveryReport, MemberPresence, Principal, RoomId, SendResult, UserId } from './domain/types.ts';
import { createLogger, type Logger } from './logger.ts';
import { LogLimiter } from './util/log-limiter.ts';
import { createLocalAdminOperations, localBroadcastStats, NODE_ID, type AdminOperations, type BroadcastStatsView, type RoomView } from './admin/admin-operations.ts';
import { createAdminPlane } from './admin/admin-plane.ts';
import { dashboardRoutes } from './admin/dashboard-routes.ts';
import { createMetrics } from './metrics/metrics.ts';
import { RealtimeService } from './service/realtime-service.ts';
import { authenticateOrThrow, type Authenticate } from './transport/authenticate.ts';
import { CloseCodes } from './transport/close-codes.ts';
import { createAppRouter, createHotCalls, eventsInputSchema, type AppRouter } from './transport/router.ts';
import type { Authorize, Context } from './transport/trpc.ts';
import { clip, protocolErrorKind, refuseOversizedBatch } from './transport/http-edge.ts';
import { createWsTransport } from './transport/ws/transport.ts';

export interface RealtimeServerOptions extends Partial<Config> {
  /** Replaces the built-in JWT check. Receives the bearer token (null when none was sent). */
  authenticate?: Authenticate;
  /** Replaces the built-in `conversations` claim check (join, send, type, ack, presence). */
  authorizeJoin?: Authorize;
  /** Attach to this existing HTTP server instead of creating one. */
  server?: Server;
  logger?: Logger;
  /** The fan-out seam; defaults to the in-process broker. */
  broker?: Broker;
  /** Environment to read configuration from (defaults to process.env). */
  env?: NodeJS.ProcessEnv;
}

/** A handler for one of the routes later issues fill (/graphql, /dashboard, /metrics). */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Totals of this node (CONTRACT §5 BroadcastStats, plus ack latency and slow-consumer closes). */
export type BroadcastStats = BroadcastStatsView;

/** One active room (CONTRACT §5 Room). */
export type RoomStats = RoomView;

export interface ServerSend {
  body: string;
  /** Shown as the sender; defaults to "system". */
  senderId?: UserId;
  senderName?: string;
  clientMessageId?: string;
}

export type RealtimeServer = ReturnType<typeof createRealtimeServer>;

/**
 * The composition root: builds the service, the tRPC router (ws + http) and the one HTTP server
 * that serves everything on one port (CONTRACT §1). `npm start` is a thin shell over this.
 */
export function createRealtimeServer(options: RealtimeServerOptions = {}) {
  const { authenticate: customAuth, authorizeJoin, server: existing, logger, broker: customBroker, env, ...overrides } = options;
  const config = loadConfig(env ?? process.env, overrides);
  const log = logger ?? createLogger(config.logLevel);
  // REDIS_URL set: this node joins the cluster that shares that Redis (unless a broker is given).
  const cluster = config.redisUrl && !customBroker ? createCluster(config, NODE_ID, log) : null;
  const broker = customBroker ?? cluster?.broker ?? new MemoryBroker({ historySize: config.historySize, historyTtlMs: config.historyTtlMs, maxIdleRooms: config.maxRetainedRooms, maxIdleBytes: config.maxRetainedHistoryBytes });
  const service = new RealtimeService(config, broker, log, cluster?.seams);
  // Production refuses tokens that live longer than TOKEN_MAX_LIFETIME_SEC (or never expire)
  // unless ALLOW_LONG_LIVED_TOKENS; a custom `authenticate` hook replaces this check entirely.
  const verify = createTokenVerifier(config.authSecret, {
    ...(config.production && !config.allowLongLivedTokens && { maxLifetimeSec: config.tokenMaxLifetimeSec }),
    generatedSecret: config.generatedSecret,
  });
  const authenticate: Authenticate =
    customAuth ??
    (async ({ token }) => {
      if (!token) throw new DomainError('UNAUTHENTICATED', 'missing token: pass { token } as connectionParams or an Authorization: Bearer header');
      return verify(token);
    });
  const authorize: Authorize = authorizeJoin ?? ((principal, conversationId) => canAccess(principal, conversationId));
  const router = createAppRouter({ service, config, authorize });

  // Refused tokens and refused subscriptions at info, one line per kind a minute at most, with
  // the count held back since the last (a client can trigger them; the token is never logged).
  const refusals = new LogLimiter();
  const onError = ({ error, path, type, ctx, req }: { error: { code: string; message: string; cause?: unknown }; path?: string | undefined; type: string; ctx?: unknown; req?: unknown }) => {
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      log.error({ err: error.cause ?? error, path, type }, 'procedure failed');
      return;
    }
    service.stats.rejected(error.code);
    log.debug({ code: error.code, path, type, message: error.message }, 'request rejected');
    logProtocolError(error, path, req);
    const token = error.code === 'UNAUTHORIZED';
    // A malformed subscription request is a protocol error (logged as such), not a refusal.
    if (!token && (path !== 'conversation.events' || protocolErrorKind(error) !== null)) return;
    // tRPC's HTTP handler passes the request; the WebSocket transport's `report` does not.
    const transport = req === undefined ? 'ws' : 'http';
    const allowed = refusals.allow(token ? `token:${transport}` : `subscription:${error.code}`);
    if (!allowed) return;
    const userId = (ctx as Partial<Context> | null | undefined)?.principal?.userId;
    log.info(
      { transport, code: error.code, reason: clip(error.message, 300), ...(path !== undefined && { path }), ...(userId !== undefined && { userId }), heldBack: allowed.suppressed },
      token ? 'token refused' : 'subscription refused',
    );
  };

  // Malformed requests (bad JSON, unknown paths, oversized bodies and batches…) at warn without a
  // stack, one line per kind a minute at most with the count held back: any client can send them.
  const protocolErrors = new LogLimiter();
  const logProtocolError = (error: { code: string; message: string; cause?: unknown }, path: string | undefined, req: unknown) => {
    const kind = protocolErrorKind(error);
    if (!kind) return;
    const transport = req === undefined ? 'ws' : 'http';
    const allowed = protocolErrors.allow(`${transport}:${kind}`);
    if (!allowed) return;
    log.warn({ transport, code: kind, message: clip(error.message), ...(path !== undefined && { path: clip(path, 100) }), heldBack: allowed.suppressed }, 'malformed request refused');
  };

  // Connection counts at info every minute, when they changed since the last line (listen() starts it).
  let countsTimer: NodeJS.Timeout | null = null;
  let lastCounts = '0/0/0';
  const logCounts = () => {
    const { connections, users, rooms } = service.registry.counts();
    const counts = `${connections}/${users}/${rooms}`;
    if (counts === lastCounts) return;
    lastCounts = counts;
    log.info({ connections, users, rooms }, 'connection counts');
  };

  // ---- WebSocket: tRPC's protocol, owned by transport/ws from the upgrade to the close.
  const ws = createWsTransport({
    service,
    router,
    authenticate,
    authorize,
    hotCalls: createHotCalls({ service, config, authorize }),
    eventsInput: eventsInputSchema,
    config,
    log,
    report: onError,
  });

  // ---- HTTP: tRPC queries and mutations, with the token in the Authorization header.
  const trpcHandler = createHTTPHandler<AppRouter>({
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
  // A batch over MAX_HTTP_BATCH is refused whole before any call runs, token or not.
  const trpcHttp = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refused = refuseOversizedBatch(req, res, { router, basePath: '/trpc/', max: config.maxHttpBatch });
    if (refused) onError({ error: refused, type: 'unknown', req });
    else await trpcHandler(req, res);
  };

  // Ready when the cluster store answers (always, on a single node).
  const isReady = () => cluster?.available ?? true;
  let draining = false;
  const routes = new Map<string, RouteHandler>();

  /** Serves one request if it is ours; returns false to let a host server handle it. */
  function handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const pathname = pathOf(req);
    if (pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return true;
    }
    if (pathname === '/readyz') {
      const ok = isReady() && !draining;
      sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : draining ? 'draining' : cluster ? 'redis_unavailable' : 'starting' });
      return true;
    }
    if (pathname === '/trpc' || pathname.startsWith('/trpc/')) {
      void trpcHttp(req, res);
      return true;
    }
    const route = routes.get(pathname);
    if (route) {
      route(req, res);
      return true;
    }
    return false;
  }

  function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    if (pathOf(req) !== '/trpc') return false;
    if (draining) {
      rejectUpgrade(socket, 503, 'Service Unavailable');
      return true;
    }
    const origin = req.headers.origin;
    if (origin !== undefined && config.wsAllowedOrigins.length > 0 && !config.wsAllowedOrigins.includes(origin)) {
      log.warn({ origin }, 'WebSocket upgrade from an origin not in WS_ALLOWED_ORIGINS refused');
      rejectUpgrade(socket, 403, 'Forbidden');
      return true;
    }
    ws.handleUpgrade(req, socket, head);
    return true;
  }

  // Our own server gets its timeouts and connection cap from configuration; a host server
  // passed as `server` keeps its own settings (the host owns them).
  const httpServer =
    existing ??
    createServer(
      {
        headersTimeout: config.httpHeadersTimeoutMs,
        requestTimeout: config.httpRequestTimeoutMs,
        // Node enforces both timeouts on this timer (every 30 s by default, which would let a
        // trickling client stay up to 30 s longer than HTTP_HEADERS_TIMEOUT_MS).
        connectionsCheckingInterval: Math.min(1000, Math.max(100, Math.floor(config.httpHeadersTimeoutMs / 4))),
      },
      (req, res) => {
        if (!handleRequest(req, res)) sendJson(res, 404, { error: 'not found' });
      },
    );
  if (!existing) {
    httpServer.keepAliveTimeout = config.httpKeepAliveTimeoutMs;
    // Beyond this many open TCP connections (WebSockets included) new ones are closed at once.
    httpServer.maxConnections = config.maxConnections;
  }
  const hostListeners = (existing?.listeners('request') ?? []) as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  if (existing) {
    // Like engine.io's attach: our paths first, everything else to the host's own listeners.
    existing.removeAllListeners('request');
    existing.on('request', dispatch);
  }
  function dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (handleRequest(req, res)) return;
    if (hostListeners.length === 0) sendJson(res, 404, { error: 'not found' });
    for (const listener of hostListeners) listener.call(existing, req, res);
  }
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!handleUpgrade(req, socket, head) && httpServer.listenerCount('upgrade') === 1) rejectUpgrade(socket, 404, 'Not Found');
  };
  httpServer.on('upgrade', onUpgrade);

  const systemPrincipal = (send: ServerSend): Principal => ({
    userId: send.senderId ?? 'system',
    ...(send.senderName !== undefined && { name: send.senderName }),
    role: 'service',
    conversations: '*',
  });

  // ---- Admin plane (GraphQL), dashboard and metrics, on the same port.
  let boundAddress = `${config.host}:${config.port}`;
  const localOps = createLocalAdminOperations(service, () => config.nodeAddress ?? boundAddress);
  const ops: AdminOperations = cluster ? cluster.bind(service, localOps, () => config.nodeAddress ?? boundAddress) : localOps;
  const adminPlane = createAdminPlane({
    config,
    ops,
    log,
    verify: (token, req) => authenticate({ token, req: req ?? (undefined as unknown as IncomingMessage) }),
  });
  routes.set('/graphql', (req, res) => adminPlane.handle(req, res));
  const metrics = createMetrics(service, cluster ?? undefined, {
    unauthenticatedSockets: () => ws.unauthenticatedCount,
    ...(broker instanceof MemoryBroker && { retainedHistories: () => broker.history.counts() }),
  });
  // /metrics: behind METRICS_TOKEN when set; else open when METRICS_PUBLIC (the default outside
  // production); else off (production without either), saying how to turn it on.
  const metricsMode = config.metricsToken ? 'token' : config.metricsPublic ? 'public' : 'off';
  const metricsBearer = config.metricsToken ? sha256(`Bearer ${config.metricsToken}`) : null;
  routes.set('/metrics', (req, res) => {
    if (metricsMode === 'off') {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }).end('/metrics is off: set METRICS_TOKEN (then scrape with Authorization: Bearer <token>) or METRICS_PUBLIC=true\n');
      return;
    }
    if (metricsBearer && !timingSafeEqual(sha256(req.headers.authorization ?? ''), metricsBearer)) {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' }).end('metrics token required\n');
      return;
    }
    metrics.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' }).end(text),
      (error: unknown) => {
        log.error({ err: error }, 'metrics failed');
        res.writeHead(500).end();
      },
    );
  });
  log.info(
    { metrics: metricsMode },
    metricsMode === 'token' ? '/metrics needs Authorization: Bearer <METRICS_TOKEN>' : metricsMode === 'public' ? '/metrics is public (no token)' : '/metrics is off: set METRICS_TOKEN or METRICS_PUBLIC=true',
  );
  for (const [path, handler] of dashboardRoutes()) routes.set(path, handler);

  let closed: Promise<void> | null = null;

  return {
    config,
    service,
    router,
    httpServer,
    log,
    /** The admin plane's operations (what GraphQL resolves from). */
    admin: ops,
    /** The per-app Prometheus registry behind /metrics. */
    metrics,

    /** Starts listening (standalone mode); resolves with the bound address. */
    async listen(port = config.port, host = config.host): Promise<{ port: number; host: string; url: string }> {
      await new Promise<void>((resolve, reject) => {
        // The usual start failures become one actionable line (what `npm start` prints), the
        // original as `cause`; anything else is passed on as it is.
        const failed = (error: NodeJS.ErrnoException) => {
          const advice: Record<string, string> = {
            EADDRINUSE: `port ${port} is already in use (EADDRINUSE): stop the other process or set PORT`,
            EACCES: `port ${port} needs privileges this process lacks (EACCES): use a port above 1023 or set PORT`,
            EADDRNOTAVAIL: `HOST ${host} is not an address of this machine (EADDRNOTAVAIL): set HOST`,
            ENOTFOUND: `HOST ${host} does not resolve (ENOTFOUND): set HOST`,
          };
          const line = error.code !== undefined && Object.hasOwn(advice, error.code) ? advice[error.code] : undefined;
          reject(line ? Object.assign(new Error(line, { cause: error }), { code: error.code, listenError: true }) : error);
        };
        httpServer.once('error', failed);
        httpServer.listen(port, host, () => {
          httpServer.off('error', failed);
          resolve();
        });
      });
      countsTimer ??= setInterval(logCounts, 60_000);
      countsTimer.unref();
      const address = httpServer.address() as AddressInfo;
      // Other operators need a name they can reach, not the wildcard it listens on.
      boundAddress = `${host === '0.0.0.0' || host === '::' ? hostname() : host}:${address.port}`;
      const shownHost = host === '0.0.0.0' || host === '::' ? 'localhost' : host;
      const url = `http://${shownHost}:${address.port}`;
      log.info({ port: address.port, host, url, trpc: `${url.replace('http', 'ws')}/trpc` }, 'listening');
      return { port: address.port, host, url };
    },

    /** Serves `/graphql`, `/dashboard`, `/metrics` and other exact paths on the same port. */
    setRoute(pathname: string, handler: RouteHandler): void {
      routes.set(pathname, handler);
    },

    handleRequest,
    handleUpgrade,

    /**
     * Graceful close (SIGTERM/SIGINT in `npm start`), within SHUTDOWN_DRAIN_MS:
     * 1. at once: readiness 503, new upgrades refused, no new connections;
     * 2. up to half the drain: pending acks keep their deadlines while the clients are still
     *    here to ack, then what is left is reported as it stands (senders still connected get
     *    their reports live);
     * 3. the rest of the drain: clients get the tRPC reconnect notice, staggered over that time
     *    so they do not all land on the other nodes at once, and move (resuming by event id);
     * 4. whoever is still connected is closed with code 4000 (reconnect).
     */
    close(): Promise<void> {
      closed ??= (async () => {
        draining = true;
        if (countsTimer) clearInterval(countsTimer);
        service.beginShutdown();
        const started = Date.now();
        log.info({ connections: ws.connectionCount, pendingAcks: service.acks.pendingCount, drainMs: config.shutdownDrainMs }, 'draining');
        await waitFor(() => service.acks.pendingCount === 0, config.shutdownDrainMs / 2);
        service.flushAcks();
        const left = Math.max(0, config.shutdownDrainMs - (Date.now() - started));
        const notices = ws.staggerReconnectNotices(left / 2);
        await waitFor(() => ws.connectionCount === 0, left);
        notices.cancel();
        ws.closeAll(CloseCodes.SHUTDOWN, 'server shutting down');
        await waitFor(() => ws.connectionCount === 0, 1000);
        ws.terminateAll();
        await service.close();
        await cluster?.close();
        await ws.close();
        await adminPlane.dispose();
        httpServer.off('upgrade', onUpgrade);
        if (existing) {
          // Give the host server back as it was.
          existing.off('request', dispatch);
          for (const listener of hostListeners) existing.on('request', listener);
        }
        if (!existing && httpServer.listening) {
          httpServer.closeAllConnections();
          await new Promise<void>((resolve) => httpServer.close(() => resolve()));
        }
        log.info('closed');
      })();
      return closed;
    },

    // ---- Embedding API (CONTRACT §6): server-side operations, no token checks.

    broadcastMessage(conversationId: RoomId, send: ServerSend): Promise<SendResult> {
      return service.sendMessage({
        principal: systemPrincipal(send),
        connectionId: null,
        conversationId,
        body: send.body,
        ...(send.clientMessageId !== undefined && { clientMessageId: send.clientMessageId }),
      });
    },
    async broadcastSystemEvent(conversationId: RoomId, event: string, data?: unknown): Promise<{ eventId: string }> {
      return { eventId: (await service.broadcastSystemEvent(conversationId, event, data ?? null)).id };
    },
    async updateConversation(conversationId: RoomId, changes: Record<string, unknown>): Promise<{ eventId: string }> {
      return { eventId: (await service.updateConversation(conversationId, changes)).id };
    },
    broadcastTyping(conversationId: RoomId, userId: UserId, isTyping: boolean): void {
      service.broadcastTyping(conversationId, userId, isTyping);
    },
    broadcastWithAck(conversationId: RoomId, send: ServerSend & { timeoutMs?: number }): Promise<DeliveryReport> {
      return service.broadcastWithAck({
        principal: systemPrincipal(send),
        conversationId,
        body: send.body,
        ...(send.timeoutMs !== undefined && { timeoutMs: send.timeoutMs }),
      });
    },
    getRoomUsers(conversationId: RoomId): Promise<MemberPresence[]> {
      return service.presence(conversationId);
    },
    getUserRooms(userId: UserId): Promise<RoomId[]> {
      return service.userRooms(userId);
    },
    /** One room's figures (what the admin plane's `room` resolves from); null when nobody is in it. */
    getRoomStats(conversationId: RoomId): Promise<RoomStats | null> {
      return ops.room(conversationId);
    },
    /** This node's totals, as the admin plane's `stats`. */
    getBroadcastStats(): BroadcastStats {
      return localBroadcastStats(service);
    },
  };
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
