import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { createAdminPlane } from './admin/admin-plane.ts';
import { createLocalAdminOperations, type AdminOperations } from './admin/admin-operations.ts';
import { dashboardRoutes } from './admin/dashboard-routes.ts';
import { canAccess, createTokenVerifier } from './auth/tokens.ts';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker } from './broker/memory-broker.ts';
import { createCluster } from './cluster/cluster.ts';
import { loadConfig, type Config } from './config.ts';
import { DomainError } from './domain/errors.ts';
import { createLogger, type Logger } from './logger.ts';
import { createMetrics } from './metrics/metrics.ts';
import { createEmbeddingApi } from './server/embedding.ts';
import { createHttpFront, type RouteHandler } from './server/http-front.ts';
import { listenOn } from './server/listen.ts';
import { metricsRoute } from './server/metrics-route.ts';
import { webChatRoutes } from './server/web-chat-route.ts';
import { createCountsLog, createRequestReporter } from './server/request-log.ts';
import { drain } from './server/shutdown.ts';
import { RealtimeService } from './service/realtime-service.ts';
import type { Authenticate } from './transport/authenticate.ts';
import { createTrpcHttp } from './transport/http.ts';
import { createAppRouter, createHotCalls, eventsInputSchema } from './transport/router.ts';
import type { Authorize } from './transport/trpc.ts';
import { createSseTransport } from './transport/sse/transport.ts';
import { createWsTransport } from './transport/ws/transport.ts';

export type { RouteHandler } from './server/http-front.ts';
export type { BroadcastStats, RoomStats, ServerSend } from './server/embedding.ts';

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

export type RealtimeServer = ReturnType<typeof createRealtimeServer>;

/**
 * The composition root: wires the parts and serves everything on one port (CONTRACT §1); each
 * part's behaviour lives in its own file (docs/architecture.md). `npm start` is a thin shell over it.
 */
export function createRealtimeServer(options: RealtimeServerOptions = {}) {
  const { authenticate: customAuth, authorizeJoin, server: existing, logger, broker: customBroker, env, ...overrides } = options;
  const config = loadConfig(env ?? process.env, overrides);
  const log = logger ?? createLogger(config.logLevel);
  // REDIS_URL set: this node joins the cluster that shares that Redis (unless a broker is given).
  const cluster = config.redisUrl && !customBroker ? createCluster(config, config.nodeId, log) : null;
  const broker = customBroker ?? cluster?.broker ?? new MemoryBroker({ historySize: config.historySize, historyTtlMs: config.historyTtlMs, maxIdleRooms: config.maxRetainedRooms, maxIdleBytes: config.maxRetainedHistoryBytes });
  const service = new RealtimeService(config, broker, log, cluster?.seams);

  // Production refuses tokens that live longer than TOKEN_MAX_LIFETIME_SEC (or never expire)
  // unless ALLOW_LONG_LIVED_TOKENS; a custom `authenticate` hook replaces this check entirely.
  const verify = createTokenVerifier(config.authSecret, { ...(config.production && !config.allowLongLivedTokens && { maxLifetimeSec: config.tokenMaxLifetimeSec }), generatedSecret: config.generatedSecret });
  const authenticate: Authenticate =
    customAuth ??
    (async ({ token }) => {
      if (!token) throw new DomainError('UNAUTHENTICATED', 'missing token: pass { token } as connectionParams or an Authorization: Bearer header');
      return verify(token);
    });
  const authorize: Authorize = authorizeJoin ?? ((principal, conversationId) => canAccess(principal, conversationId));
  const router = createAppRouter({ service, config, authorize });
  const report = createRequestReporter(log, (code) => service.countRejection(code));
  const countsLog = createCountsLog(log, () => service.figures.counts());

  const ws = createWsTransport({ service, router, authenticate, authorize, hotCalls: createHotCalls({ service, config, authorize }), eventsInput: eventsInputSchema, config, log, report });
  const sse = createSseTransport({ service, router, authenticate, authorize, eventsInput: eventsInputSchema, config, log, report });
  const trpcHttp = createTrpcHttp({ router, config, authenticate, onError: report });
  const trpc = (req: IncomingMessage, res: ServerResponse) => {
    if (!sse.handle(req, res)) void trpcHttp(req, res);
  };
  const front = createHttpFront({ config, log, existing, trpc, upgrade: (req, socket, head) => ws.handleUpgrade(req, socket, head), clusterAvailable: cluster ? () => cluster.available : null, upgradesRefused: () => ws.refusingUpgrades });

  // ---- Admin plane (GraphQL), dashboard and metrics, on the same port.
  let boundAddress = `${config.host}:${config.port}`;
  const address = () => config.nodeAddress ?? boundAddress;
  const localOps = createLocalAdminOperations(service, address, config.nodeId);
  const ops: AdminOperations = cluster ? cluster.bind(service, localOps, address) : localOps;
  const adminPlane = createAdminPlane({ config, ops, log, verify: (token, req) => authenticate({ token, req: req ?? (undefined as unknown as IncomingMessage) }) });
  front.setRoute('/graphql', (req, res) => adminPlane.handle(req, res));
  const metrics = createMetrics(service, cluster ?? undefined, {
    unauthenticatedSockets: () => ws.unauthenticatedCount,
    ...(broker instanceof MemoryBroker && { retainedHistories: () => broker.history.counts() }),
  });
  front.setRoute('/metrics', metricsRoute(metrics, config, log));
  for (const [path, handler] of dashboardRoutes()) front.setRoute(path, handler);
  // The web chat (clients/web/): on outside production, in it only with WEB_CHAT=true.
  if (config.webChat) for (const [path, handler] of webChatRoutes(config, log)) front.setRoute(path, handler);

  let closed: Promise<void> | null = null;
  return {
    config,
    service,
    router,
    httpServer: front.httpServer,
    log,
    /** The admin plane's operations (what GraphQL resolves from). */
    admin: ops,
    /** The per-app Prometheus registry behind /metrics. */
    metrics,

    /** Starts listening (standalone mode); resolves with the bound address. */
    async listen(port = config.port, host = config.host): Promise<{ port: number; host: string; url: string }> {
      const bound = await listenOn(front.httpServer, port, host);
      countsLog.start();
      // Other operators need a name they can reach, not the wildcard it listens on.
      const wildcard = host === '0.0.0.0' || host === '::';
      boundAddress = `${wildcard ? hostname() : host}:${bound.port}`;
      const url = `http://${wildcard ? 'localhost' : host}:${bound.port}`;
      log.info({ port: bound.port, host, url, trpc: `${url.replace('http', 'ws')}/trpc` }, 'listening');
      return { port: bound.port, host, url };
    },

    /** Serves `/graphql`, `/dashboard`, `/metrics` and other exact paths on the same port. */
    setRoute(pathname: string, handler: RouteHandler): void {
      front.setRoute(pathname, handler);
    },
    handleRequest: front.handleRequest,
    handleUpgrade: front.handleUpgrade,

    /** Graceful close within SHUTDOWN_DRAIN_MS (server/shutdown.ts). */
    close(): Promise<void> {
      closed ??= drain({
        config,
        log,
        service,
        transports: [ws, sse],
        startDraining: () => {
          front.startDraining();
          countsLog.stop();
        },
        release: [() => cluster?.close(), () => ws.close(), () => sse.close(), () => adminPlane.dispose(), () => front.detach()],
      });
      return closed;
    },

    // ---- Embedding API (CONTRACT §6): server-side operations, no token checks.
    ...createEmbeddingApi(service, ops),
  };
}
