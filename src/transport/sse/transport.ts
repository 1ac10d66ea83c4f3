import type { IncomingMessage, ServerResponse } from 'node:http';
import { getTRPCErrorFromUnknown, getTRPCErrorShape, type AnyTRPCRouter, type TRPCError } from '@trpc/server';
import type { z } from 'zod';
import type { Config } from '../../config.ts';
import { DomainError } from '../../domain/errors.ts';
import type { Logger } from '../../logger.ts';
import { clientKey, type CloseReason, type RealtimeService } from '../../service/realtime-service.ts';
import { authenticateOrThrow, type Authenticate } from '../authenticate.ts';
import { describeZodError, toTRPCError, trpcErrorOf } from '../trpc-errors.ts';
import { assertNotExpired, requireAccess, type Authorize, type Context } from '../trpc.ts';
import { readInput } from '../ws/protocol.ts';
import { FrameWriter } from '../writer.ts';
import { errorChunk, RETURN_CHUNK, SseEvents } from './events.ts';
import { SseStream, type StreamShared } from './stream.ts';

export interface SseTransportOptions {
  service: RealtimeService;
  router: AnyTRPCRouter;
  authenticate: Authenticate;
  authorize: Authorize;
  eventsInput: z.ZodType<{ conversationId: string; lastEventId?: string | null | undefined; clientId?: string | undefined }>;
  config: Pick<Config, 'ssePingMs' | 'sseRetryMs' | 'sseMaxDurationMs'>;
  log: Logger;
  /** Every refused stream, for stats and logs (the server's request reporter). */
  report(info: { error: TRPCError; type: 'subscription'; path: string; input: unknown; ctx: Context | null; transport: 'sse' }): void;
}

export type SseTransport = ReturnType<typeof createSseTransport>;

/** The one path served over SSE. */
const EVENTS_PATH = 'conversation.events';
/** A refused stream asks a plain EventSource to wait this long before it tries again (not when the server is going away: SSE_RETRY_MS then). */
const REFUSED_RETRY_MS = 5000;

/**
 * `conversation.events` over Server-Sent Events, in tRPC's SSE protocol (the stock
 * `httpSubscriptionLink` reads it unchanged): `GET /trpc/conversation.events?input=…`. Served
 * here rather than by tRPC's HTTP handler, for the same reasons as the WebSocket transport: an
 * event's text is built once for every stream, writes are coalesced per loop turn, a stream is a
 * connection the service can measure (slow consumers) and end (drain, kick, expiry), and one
 * sweep does everything timed for all streams.
 *
 * Authentication: `Authorization: Bearer` only. A token in the URL (`connectionParams`) is
 * refused — proxies and servers log URLs (docs/security.md has the trade-off).
 */
export function createSseTransport(options: SseTransportOptions) {
  const { service, router, authenticate, authorize, eventsInput, config, log, report } = options;
  const streams = new Set<SseStream>();
  const events = new SseEvents();
  const config_ = router._def._config;
  const inactivityMs = config.ssePingMs * 3;
  const shared: StreamShared = {
    writer: new FrameWriter(),
    // A refusal asks a plain EventSource to wait; a server going away (retryable) does not.
    errorChunk: (error) => errorChunk(getTRPCErrorShape({ config: config_, error, type: 'subscription', path: EVENTS_PATH, input: undefined, ctx: undefined }), error.code === 'SERVICE_UNAVAILABLE' ? config.sseRetryMs : REFUSED_RETRY_MS),
    retryMs: config.sseRetryMs,
    inactivityMs,
  };

  const shortest = Math.min(config.ssePingMs, config.sseMaxDurationMs > 0 ? config.sseMaxDurationMs : Number.POSITIVE_INFINITY);
  const sweepTimer = setInterval(sweep, Math.max(50, Math.min(1000, Math.floor(shortest / 4))));
  sweepTimer.unref();
  function sweep(): void {
    const now = Date.now();
    for (const stream of streams) {
      const exp = stream.principal.exp;
      if (exp !== undefined && now >= exp * 1000) stream.close('token_expired');
      else if (now >= stream.endAt) stream.endForResume();
      else if (now - stream.lastWriteAt >= config.ssePingMs) stream.ping();
    }
  }

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let input: unknown;
    let stream: SseStream | null = null;
    let ctx: Context | null = null;
    try {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const params = url.searchParams.get('connectionParams');
      if (params !== null && params.includes('"token"')) {
        throw new DomainError('UNAUTHENTICATED', 'a token in the URL is refused (proxies and servers log URLs): send it as an Authorization: Bearer header (docs/security.md)');
      }
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
      const principal = await authenticateOrThrow(authenticate, token, req);
      ctx = { principal, connection: null };
      const raw = readInput(parseInputParam(url.searchParams.get('input')));
      // tRPC's rule: the id an EventSource sends back when it reconnects wins over the input's.
      const lastEventId = headerOf(req, 'last-event-id') ?? url.searchParams.get('lastEventId') ?? url.searchParams.get('Last-Event-Id');
      const merged = lastEventId === null ? raw : typeof raw === 'object' && raw !== null ? { ...raw, lastEventId } : (raw ?? { lastEventId });
      const parsed = eventsInput.safeParse(merged);
      if (!parsed.success) throw new DomainError('INVALID_INPUT', `Invalid input: ${describeZodError(parsed.error)}`, undefined, parsed.error);
      input = parsed.data;
      assertNotExpired(principal);
      const { conversationId, clientId } = parsed.data;
      await requireAccess(authorize, principal, conversationId);
      if (res.destroyed) return;

      stream = new SseStream(shared, { res, principal, clientKey: clientId === undefined ? undefined : clientKey(principal.userId, clientId), maxDurationMs: config.sseMaxDurationMs });
      service.openConnection(stream);
      ctx = { principal, connection: stream };
      streams.add(stream);
      const opened = stream;
      res.once('close', () => onGone(opened));
      opened.handle = service.openSubscription({
        connectionId: opened.id,
        conversationId,
        lastEventId: parsed.data.lastEventId ?? null,
        sink: { write: (envelope, sharedEnvelope) => opened.send(events.dataChunk(envelope, sharedEnvelope)), live: () => opened.goLive() },
      });
      await opened.handle.done;
      // Ended by the server (the room was closed): complete, the client stops.
      opened.finish(RETURN_CHUNK);
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(toTRPCError(cause));
      if (!res.destroyed && !res.writableEnded) {
        report({ error, type: 'subscription', path: EVENTS_PATH, input, ctx, transport: 'sse' });
        if (stream) stream.refuse(error);
        else refuseResponse(res, shared.errorChunk(error));
      }
    } finally {
      if (stream) onGone(stream);
    }
  }

  /** The response is over (the client went, or we ended it): the service hears of it once. */
  function onGone(stream: SseStream): void {
    if (!streams.delete(stream)) return;
    stream.handle?.cancel();
    // At once, like a closed socket: the subscription's own end then finds the connection gone
    // and does not count a leave — a stream that ends is a drop (presence grace), not a leave.
    service.closeConnection(stream.id);
  }

  return {
    /** Serves the request if it is an SSE stream of ours (GET /trpc/conversation.events); false otherwise. */
    handle(req: IncomingMessage, res: ServerResponse): boolean {
      if (req.method !== 'GET' || pathOf(req) !== `/trpc/${EVENTS_PATH}`) return false;
      serve(req, res).catch((error: unknown) => {
        log.error({ err: error }, 'SSE stream failed');
        res.destroy();
      });
      return true;
    },

    get connectionCount(): number {
      return streams.size;
    },

    /** Ends every stream at a random moment within `windowMs`, so clients move (and resume) spread out. */
    staggerReconnectNotices(windowMs: number): { cancel(): void } {
      const timers = [...streams].map((s) => setTimeout(() => s.close('shutdown'), Math.random() * windowMs));
      return { cancel: () => timers.forEach(clearTimeout) };
    },

    closeAll(reason: CloseReason): void {
      for (const s of streams) s.close(reason);
    },

    terminateAll(): void {
      for (const s of streams) s.reset();
    },

    close(): void {
      clearInterval(sweepTimer);
    },
  };
}

/** tRPC GET input: `?input=` JSON (superjson's `{ json, meta }`); absent: no input. */
function parseInputParam(text: string | null): unknown {
  if (text === null) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw trpcErrorOf(new DomainError('BAD_FRAME', 'input is not JSON'));
  }
}

function headerOf(req: IncomingMessage, name: string): string | null {
  const value = req.headers[name];
  return typeof value === 'string' && value !== '' ? value : null;
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

/** A stream refused before it opened: its error as the one event of a 200 event stream. */
function refuseResponse(res: ServerResponse, chunk: Buffer): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache, no-transform' });
  res.end(chunk);
}
