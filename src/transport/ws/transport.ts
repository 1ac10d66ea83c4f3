import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AnyTRPCRouter } from '@trpc/server';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Config } from '../../config.ts';
import type { CloseReason } from '../../service/realtime-service.ts';
import { closeFrameFor } from '../close-codes.ts';
import { WsConnection, type WsShared } from './connection.ts';
import { EventFrames, PING_FRAME, RECONNECT_FRAME } from './frames.ts';
import { safeSuperjson } from '../safe-superjson.ts';
import { Replies } from './protocol.ts';
import { FrameWriter } from '../writer.ts';
import { LogLimiter } from '../../util/log-limiter.ts';

export interface WsTransportOptions extends Omit<WsShared, 'router' | 'replies' | 'frames' | 'writer' | 'forget' | 'unauthenticated' | 'maxBatch' | 'protocolError'> {
  router: AnyTRPCRouter;
  /**
   * `authTimeoutMs`: how long a socket may stay open without sending its connectionParams;
   * `rejectLingerMs`: how long a refused connection keeps answering (every call: its error)
   * before it is closed.
   */
  config: Pick<Config, 'maxFrameBytes' | 'keepAlivePingMs' | 'tokenRefreshGraceMs' | 'authTimeoutMs' | 'rejectLingerMs' | 'maxUnauthenticatedSockets' | 'maxWsBatch'>;
}

/** Silence after a server PING before the socket is given up (the stock client answers at once). */
const PONG_WAIT_MS = 5000;

export type WsTransport = ReturnType<typeof createWsTransport>;

/**
 * tRPC over WebSocket, owned here from the upgrade to the close (protocol: protocol.ts; one
 * connection: connection.ts). This module keeps the server's set of connections and the one
 * sweep that does everything timed for all of them — keep-alive PINGs, the token-expiry
 * reconnect notice and its 4001, the wait for connectionParams, the end of a refused
 * connection's linger — so an idle connection costs no timer of its own.
 */
export function createWsTransport(options: WsTransportOptions) {
  const { config, router, ...rest } = options;
  const { authTimeoutMs, rejectLingerMs } = config;
  // permessage-deflate off: frames are built once and written whole (writer.ts).
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes, perMessageDeflate: false, clientTracking: false });
  const connections = new Set<WsConnection>();
  const shared: WsShared = {
    ...rest,
    router,
    replies: new Replies(router._def._config, router._def._config.transformer.output.serialize === safeSuperjson.serialize),
    frames: new EventFrames(),
    writer: new FrameWriter(),
    forget: (connection) => connections.delete(connection),
    unauthenticated: { count: 0 },
    maxBatch: config.maxWsBatch,
    protocolError: () => undefined,
  };
  const refusals = new LogLimiter();
  shared.protocolError = (error) => {
    const code = typeof error.code === 'string' ? error.code : 'WS_ERROR';
    const allowed = refusals.allow(`protocol:${code}`);
    if (allowed) options.log.warn({ transport: 'ws', code, message: error.message.slice(0, 200), heldBack: allowed.suppressed }, 'malformed WebSocket frame: socket closed');
  };

  const graceMs = config.tokenRefreshGraceMs;
  const shortest = Math.min(config.keepAlivePingMs, graceMs, authTimeoutMs, rejectLingerMs);
  const sweepTimer = setInterval(sweep, Math.max(20, Math.min(1000, Math.floor(shortest / 4))));
  sweepTimer.unref();

  function sweep(): void {
    const now = Date.now();
    for (const c of connections) {
      if (c.phase === 'awaiting_params' && now - c.since >= authTimeoutMs) c.refuseParamsWait(authTimeoutMs);
      else if (c.phase === 'rejected' && now - c.since >= rejectLingerMs) c.closeRejected();
      const exp = c.ctx?.principal.exp;
      if (c.phase === 'open' && exp !== undefined) {
        // At expiry, ask the client to reconnect with fresh connectionParams; close if it does not.
        if (c.expiryNoticeAt === 0 && now >= exp * 1000) {
          c.expiryNoticeAt = now;
          c.send(RECONNECT_FRAME);
        } else if (c.expiryNoticeAt !== 0 && now - c.expiryNoticeAt >= graceMs) {
          c.close('token_expired');
        }
      }
      if (c.pingSentAt === 0) {
        if (now - c.lastInbound >= config.keepAlivePingMs) {
          c.pingSentAt = now;
          c.send(PING_FRAME);
        }
      } else if (now - c.pingSentAt >= PONG_WAIT_MS) {
        c.ws.terminate();
      }
    }
  }

  const atCap = () => shared.unauthenticated.count >= config.maxUnauthenticatedSockets;

  return {
    /** Takes over an upgrade request for tRPC (path and Origin already checked by the caller). */
    handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      // Sockets without a user yet cost before anything is known of them: capped per node.
      if (atCap()) {
        const allowed = refusals.allow('unauthenticated_cap');
        if (allowed) options.log.warn({ max: config.maxUnauthenticatedSockets, heldBack: allowed.suppressed }, 'WebSocket upgrade refused: too many unauthenticated sockets (MAX_UNAUTHENTICATED_SOCKETS)');
        socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const awaitingParams = /[?&]connectionParams=1(&|$)/.test(req.url ?? '');
      wss.handleUpgrade(req, socket, head, (ws) => {
        const connection = new WsConnection(shared, { ws, socket, req, awaitingParams });
        connections.add(connection);
        // Listeners shared by every socket (no closures per connection): `this` is the socket.
        (ws as OwnedSocket)[OWNER] = connection;
        ws.on('message', onSocketMessage);
        ws.once('close', onSocketClose);
        ws.on('error', onSocketError);
      });
    },

    /** Open sockets, authenticated or not. */
    get connectionCount(): number {
      return connections.size;
    },

    /** Whether an upgrade now would be refused (MAX_UNAUTHENTICATED_SOCKETS reached). */
    get refusingUpgrades(): boolean {
      return atCap();
    },

    /** Open sockets without a user: waiting for or checking connectionParams, or refused and lingering. */
    get unauthenticatedCount(): number {
      return shared.unauthenticated.count;
    },

    /** Sends every socket the tRPC reconnect notice at a random moment within `windowMs`. */
    staggerReconnectNotices(windowMs: number): { cancel(): void } {
      const timers = [...connections].map((c) => setTimeout(() => c.send(RECONNECT_FRAME), Math.random() * windowMs));
      return { cancel: () => timers.forEach(clearTimeout) };
    },

    closeAll(reason: CloseReason): void {
      const frame = closeFrameFor(reason);
      shared.writer.flush();
      for (const c of connections) c.ws.close(frame.code, frame.reason);
    },

    terminateAll(): void {
      for (const c of connections) c.ws.terminate();
    },

    async close(): Promise<void> {
      clearInterval(sweepTimer);
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

const OWNER = Symbol('WsConnection');
type OwnedSocket = WebSocket & { [OWNER]?: WsConnection };

function onSocketMessage(this: OwnedSocket, data: Buffer, isBinary: boolean): void {
  this[OWNER]?.onMessage(data, isBinary);
}

function onSocketClose(this: OwnedSocket): void {
  this[OWNER]?.onClose();
  delete this[OWNER];
}

/**
 * Protocol errors (a frame over MAX_FRAME_BYTES, invalid UTF-8, a bad opcode…): `ws` closes the
 * socket itself (1009, 1007, 1002); the operator sees one warn line a minute per kind.
 */
function onSocketError(this: OwnedSocket, error: Error & { code?: string }): void {
  this[OWNER]?.protocolError(error);
}
