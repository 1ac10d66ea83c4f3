import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { applyCors } from './cors.ts';

/** A handler for one exact path (/graphql, /dashboard, /metrics, or an embedder's own). */
export type RouteHandler = (req: IncomingMessage, res: ServerResponse) => void;

export interface HttpFrontOptions {
  config: Pick<Config, 'wsAllowedOrigins' | 'trpcCorsOrigins' | 'httpHeadersTimeoutMs' | 'httpRequestTimeoutMs' | 'httpKeepAliveTimeoutMs' | 'maxConnections'>;
  log: Logger;
  /** A host server to attach to instead of creating one (it keeps its own settings). */
  existing: Server | undefined;
  /** tRPC over HTTP, for /trpc and /trpc/*. */
  trpc: RouteHandler;
  /** Takes over a /trpc upgrade (path and Origin already checked). */
  upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
  /** Whether the node can serve (the cluster store answers); null on a single node. */
  clusterAvailable: (() => boolean) | null;
  /** Whether the WebSocket transport would refuse an upgrade now (besides draining). */
  upgradesRefused?: () => boolean;
}

export type HttpFront = ReturnType<typeof createHttpFront>;

/**
 * The one port (CONTRACT §1): health and readiness, tRPC over HTTP (with CORS for the origins
 * in TRPC_CORS_ORIGINS), exact-path routes, and the
 * WebSocket upgrade on /trpc (Origin checked against WS_ALLOWED_ORIGINS, refused while draining).
 * Creates the HTTP server with its timeouts and connection cap from configuration, or attaches to
 * a host server the way engine.io does: our paths first, every other request to the host's own
 * listeners, all given back by `detach()`.
 */
export function createHttpFront(options: HttpFrontOptions) {
  const { config, log, existing, trpc, upgrade, clusterAvailable, upgradesRefused = () => false } = options;
  const routes = new Map<string, RouteHandler>();
  const corsOrigins: ReadonlySet<string> = new Set(config.trpcCorsOrigins);
  let draining = false;

  /** Serves one request if it is ours; returns false to let a host server handle it. */
  function handleRequest(req: IncomingMessage, res: ServerResponse): boolean {
    const pathname = pathOf(req);
    if (pathname === '/healthz') {
      sendJson(res, 200, { status: 'ok' });
      return true;
    }
    if (pathname === '/readyz') {
      const ok = (clusterAvailable?.() ?? true) && !draining;
      sendJson(res, ok ? 200 : 503, { status: ok ? 'ready' : draining ? 'draining' : clusterAvailable ? 'redis_unavailable' : 'starting' });
      return true;
    }
    if (pathname === '/trpc' && req.method === 'HEAD') {
      // The typed client's `auto` asks this after a WebSocket failed: an answer means "HTTP
      // reaches the server, the WebSocket does not" (a blocking front: use SSE). While this
      // server itself refuses upgrades (draining, or its unauthenticated-socket cap) it says 503,
      // as a gateway without a server would: try the WebSocket again, do not settle on SSE.
      const refusing = draining || upgradesRefused();
      res.writeHead(refusing ? 503 : 204, { 'cache-control': 'no-store', ...(refusing && { 'retry-after': '1' }) });
      res.end();
      return true;
    }
    if (pathname === '/trpc' || pathname.startsWith('/trpc/')) {
      if (!applyCors(req, res, corsOrigins)) trpc(req, res);
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
    upgrade(req, socket, head);
    return true;
  }

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
  const hostListeners = (existing?.listeners('request') ?? []) as RouteHandler[];
  function dispatch(req: IncomingMessage, res: ServerResponse): void {
    if (handleRequest(req, res)) return;
    if (hostListeners.length === 0) sendJson(res, 404, { error: 'not found' });
    for (const listener of hostListeners) listener.call(existing, req, res);
  }
  if (existing) {
    existing.removeAllListeners('request');
    existing.on('request', dispatch);
  }
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (!handleUpgrade(req, socket, head) && httpServer.listenerCount('upgrade') === 1) rejectUpgrade(socket, 404, 'Not Found');
  };
  httpServer.on('upgrade', onUpgrade);

  return {
    httpServer,
    handleRequest,
    handleUpgrade,
    setRoute(pathname: string, handler: RouteHandler): void {
      routes.set(pathname, handler);
    },
    /** From now on: readiness 503 and upgrades refused. */
    startDraining(): void {
      draining = true;
    },
    /** Lets go of the server: a host server gets its listeners back; our own is closed. */
    async detach(): Promise<void> {
      httpServer.off('upgrade', onUpgrade);
      if (existing) {
        existing.off('request', dispatch);
        for (const listener of hostListeners) existing.on('request', listener);
        return;
      }
      if (httpServer.listening) {
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => httpServer.close(() => resolve()));
      }
    },
  };
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function rejectUpgrade(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
