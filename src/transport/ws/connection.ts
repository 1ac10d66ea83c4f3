import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { callTRPCProcedure, getTRPCErrorFromUnknown, type AnyTRPCRouter, type TRPCError } from '@trpc/server';
import { WebSocket } from 'ws';
import type { z } from 'zod';
import { DomainError } from '../../domain/errors.ts';
import type { Logger } from '../../logger.ts';
import type { Principal } from '../../domain/types.ts';
import type { CloseReason, ConnectionHandle, RealtimeService, SubscriberSink, SubscriptionHandle } from '../../service/realtime-service.ts';
import type { RoomEnvelope } from '../../domain/types.ts';
import { authenticateOrThrow, type Authenticate } from '../authenticate.ts';
import { closeFrameFor } from '../close-codes.ts';
import type { HotCalls } from '../router.ts';
import { describeZodError, toTRPCError, trpcErrorOf } from '../trpc-errors.ts';
import { assertNotExpired, requireAccess, type Authorize, type Context } from '../trpc.ts';
import { PONG_FRAME, type EventFrames, type FrameTarget } from './frames.ts';
import { parseConnectionParams, parseRequest, readInput, type CallMethod, type Replies, type Request } from './protocol.ts';
import type { FrameWriter } from '../writer.ts';
import { flatRandomId } from '../../util/flat-id.ts';

/** Input that fails its schema: BAD_REQUEST whose issues the error formatter lists. */
const invalidInput = (error: z.ZodError) => new DomainError('INVALID_INPUT', `Invalid input: ${describeZodError(error)}`, undefined, error);

/** What every connection of one server shares (one per server: two servers share nothing). */
export interface WsShared {
  service: RealtimeService;
  router: AnyTRPCRouter;
  authenticate: Authenticate;
  authorize: Authorize;
  hotCalls: HotCalls;
  eventsInput: z.ZodType<{ conversationId: string; lastEventId?: string | null | undefined }>;
  replies: Replies;
  frames: EventFrames;
  writer: FrameWriter;
  log: Logger;
  /** Every refused call and failure, for stats and logs (the server's onError). */
  report(info: { error: TRPCError; type: CallMethod | 'unknown'; path: string | undefined; input: unknown; ctx: Context | null }): void;
  forget(connection: WsConnection): void;
  /** Sockets of this server without a user (see `unauthenticated` on the connection). */
  unauthenticated: { count: number };
  /** Most calls one frame may carry (MAX_WS_BATCH). */
  maxBatch: number;
  /** A frame `ws` refused (the socket is being closed): logged, rate-limited. */
  protocolError(error: Error & { code?: string }): void;
}

/** The path served directly: a subscription is a small record, its frames built once per event. */
export const EVENTS_PATH = 'conversation.events';

/** Calls one connection may have running; later requests wait (and the socket is not read). */
export const MAX_CALLS_IN_FLIGHT = 256;
/** Requests one connection may have waiting before its calls run; beyond, TOO_MANY_REQUESTS. */
export const MAX_WAITING_REQUESTS = 10_000;

type Phase = 'awaiting_params' | 'authenticating' | 'open' | 'rejected' | 'closed';

/**
 * One `conversation.events` subscription of a connection: its request id and the service's
 * handle, and the sink the service writes to — methods, not closures, and no async function
 * left waiting for its end, so an idle subscription is this record (issue 16).
 */
class EventsStream implements SubscriberSink {
  cancelled = false;
  handle: SubscriptionHandle | null = null;
  /** Counted in the connection's calls in flight until it is live or over. */
  starting = true;
  /** Its parsed input, for the report of a failed start. */
  input: unknown = undefined;

  constructor(
    readonly connection: WsConnection,
    readonly target: FrameTarget,
  ) {}

  write(envelope: RoomEnvelope, sharedEnvelope: boolean): void {
    this.connection.writeEvent(this.target, envelope, sharedEnvelope);
  }

  live(): void {
    this.connection.streamLive(this);
  }

  ended(error?: unknown): void {
    this.connection.streamEnded(this, error);
  }
}

/**
 * One WebSocket connection, from the upgrade to the close: authentication, every call and
 * subscription on it, and its state for keep-alive and token expiry (read by the transport's
 * sweep). The only owner of the connection: its rules (auth failure, the start of a stream,
 * batches, limits) live here.
 *
 * Authentication failures: every call is answered with its own error (the stock client's
 * `onError` and rejected promises fire with the reason), the connection is told once with an
 * `id: null` error (the stock client then keeps its back-off), and the socket stays open,
 * answering, for the transport's linger time before it is closed with a terminal code — so a
 * client that retries at once cannot turn a bad token into a reconnect storm.
 */
export class WsConnection implements ConnectionHandle {
  /** The service's id for it; assigned once authenticated. */
  id = '';
  readonly transport = 'websocket' as const;
  principal!: Principal;
  phase: Phase;
  ctx: Context | null = null;
  rejection: TRPCError | null = null;
  /** When the phase last changed to what the sweep watches (params wait, rejection). */
  since: number;
  lastInbound: number;
  pingSentAt = 0;
  /** When the token-expiry reconnect notice went out (0: not yet). */
  expiryNoticeAt = 0;
  pendingFrames: Buffer[] | null = null;
  /**
   * Its `conversation.events` subscriptions (created with the first), found by request id: an
   * array, not a Map — nearly every connection holds one, and the service caps them
   * (MAX_SUBSCRIPTIONS_PER_CONNECTION).
   */
  private subscriptions: EventsStream[] | null = null;
  /** Requests waiting their turn (while authenticating, or beyond MAX_CALLS_IN_FLIGHT), from `waitingHead` on. */
  private waiting: Request[] = [];
  private waitingHead = 0;
  private inFlight = 0;
  private paused = false;
  /** Counted in `shared.unauthenticated` until it is open or closed. */
  private unauthenticated = true;

  readonly ws: WebSocket;
  /** The socket the upgrade came on (the writer's frames go to it). */
  readonly socket: Duplex;
  /** The upgrade request, for `authenticate` (cookies, say); let go once authenticated. */
  private req: IncomingMessage | null;

  constructor(
    private readonly shared: WsShared,
    upgrade: { ws: WebSocket; socket: Duplex; req: IncomingMessage; awaitingParams: boolean },
  ) {
    const { awaitingParams } = upgrade;
    this.ws = upgrade.ws;
    this.socket = upgrade.socket;
    this.req = upgrade.req;
    this.phase = awaitingParams ? 'awaiting_params' : 'authenticating';
    this.since = this.lastInbound = Date.now();
    shared.unauthenticated.count += 1;
    if (!awaitingParams) void this.authenticate(null);
  }

  isOpen(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  send(frame: Buffer): void {
    this.shared.writer.write(this, frame);
  }

  /** The writer's way out: this turn's frames, to the upgrade's socket. */
  writeOut(data: Buffer): void {
    this.socket.write(data);
  }

  // ---------------------------------------------------------------- inbound

  onMessage(data: Buffer, isBinary: boolean): void {
    this.lastInbound = Date.now();
    this.pingSentAt = 0;
    if (isBinary) {
      this.send(this.shared.replies.error(null, trpcErrorOf(new DomainError('BAD_FRAME', 'binary frames are not accepted: tRPC frames are JSON text'))));
      return;
    }
    const text = data.toString('utf8');
    if (text === 'PING') return this.send(PONG_FRAME);
    if (text === 'PONG') return;
    if (this.phase === 'awaiting_params') {
      this.phase = 'authenticating';
      const params = parseConnectionParams(text);
      if ('error' in params) this.reject(trpcErrorOf(new DomainError('UNAUTHENTICATED', `invalid connectionParams: ${params.error}`)));
      else void this.authenticate(params.token);
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.send(this.shared.replies.error(null, trpcErrorOf(new DomainError('BAD_FRAME', 'the frame is not JSON'))));
      return;
    }
    // A batch is served call by call, in order: each request its own result or its own error.
    if (Array.isArray(message)) {
      if (message.length > this.shared.maxBatch) return this.refuseBatch(message);
      for (const item of message) this.accept(parseRequest(item));
    } else this.accept(parseRequest(message));
  }

  /** A frame with more calls than MAX_WS_BATCH: none runs, each is answered with the same error. */
  private refuseBatch(items: unknown[]): void {
    const error = trpcErrorOf(new DomainError('BATCH_TOO_LARGE', `a frame may carry at most ${this.shared.maxBatch} calls (MAX_WS_BATCH); this one has ${items.length}: split it`));
    this.shared.report({ error, type: 'unknown', path: undefined, input: undefined, ctx: this.ctx });
    for (const item of items) {
      const request = parseRequest(item);
      if (request.kind === 'call' || request.kind === 'invalid') {
        if (request.target) this.send(this.shared.replies.error(request.target, error, this.ctx ? { ctx: this.ctx } : {}));
      }
    }
  }

  protocolError(error: Error & { code?: string }): void {
    this.shared.protocolError(error);
  }

  /** Leaves the server's count of sockets without a user (once: on open or close). */
  private settleAuth(): void {
    if (!this.unauthenticated) return;
    this.unauthenticated = false;
    this.shared.unauthenticated.count -= 1;
  }

  private accept(request: Request): void {
    if (request.kind === 'invalid') {
      this.refuse(request.target, request.error);
      return;
    }
    if (this.phase === 'rejected') {
      if (request.kind === 'call') this.refuse(request.target, this.rejection!, request);
      return;
    }
    const waiting = this.waiting.length - this.waitingHead;
    if (this.phase !== 'open' || waiting > 0 || (request.kind === 'call' && this.inFlight >= MAX_CALLS_IN_FLIGHT)) {
      if (waiting >= MAX_WAITING_REQUESTS) {
        if (request.kind === 'call') this.refuse(request.target, trpcErrorOf(new DomainError('LIMIT_EXCEEDED', `too many requests waiting on this connection (max ${MAX_WAITING_REQUESTS})`)), request);
        return;
      }
      this.waiting.push(request);
      if (this.phase === 'open' && !this.paused) {
        this.paused = true;
        this.ws.pause();
      }
      return;
    }
    this.dispatch(request);
  }

  /** Runs waiting requests while there is room; reads the socket again once none wait. */
  private pump(): void {
    if (this.phase !== 'open') return;
    while (this.waitingHead < this.waiting.length) {
      const next = this.waiting[this.waitingHead]!;
      if (next.kind === 'call' && this.inFlight >= MAX_CALLS_IN_FLIGHT) return;
      this.waiting[this.waitingHead++] = undefined as never; // let it go
      this.dispatch(next);
    }
    if (this.waitingHead > 0) {
      this.waiting = [];
      this.waitingHead = 0;
    }
    if (this.paused) {
      this.paused = false;
      this.ws.resume();
    }
  }

  private dispatch(request: Request): void {
    if (request.kind === 'stop') {
      const sub = this.stream(request.id);
      if (sub) {
        sub.cancelled = true;
        sub.handle?.cancel();
      }
      return;
    }
    if (request.kind !== 'call') return;
    if (request.method === 'subscription' && request.path === EVENTS_PATH) {
      void this.subscribeEvents(request);
      return;
    }
    // Own keys only: a path such as "toString" is nobody's procedure.
    const hot = request.method === 'mutation' && Object.hasOwn(this.shared.hotCalls, request.path) ? this.shared.hotCalls[request.path as keyof HotCalls] : undefined;
    void this.call(request, hot);
  }

  private refuse(target: FrameTarget | null, error: TRPCError, call?: { method: CallMethod; path: string; input?: unknown }): void {
    this.shared.report({ error, type: call?.method ?? 'unknown', path: call?.path, input: call?.input, ctx: this.ctx });
    this.send(this.shared.replies.error(target, error, { ...(call && { type: call.method, path: call.path }), ctx: this.ctx }));
  }

  // ---------------------------------------------------------------- authentication

  private async authenticate(token: string | null): Promise<void> {
    const { service } = this.shared;
    try {
      const principal = await authenticateOrThrow(this.shared.authenticate, token, this.req!);
      this.req = null;
      if (this.phase === 'closed') return;
      this.id = flatRandomId();
      this.principal = principal;
      try {
        service.openConnection(this);
      } catch (error) {
        throw getTRPCErrorFromUnknown(toTRPCError(error));
      }
      this.ctx = { principal, connection: this };
      this.phase = 'open';
      this.settleAuth();
      this.shared.log.debug({ connectionId: this.id, userId: principal.userId }, 'connection opened');
      this.pump();
    } catch (error) {
      if (this.phase !== 'closed') this.reject(getTRPCErrorFromUnknown(error));
    }
  }

  // ---------------------------------------------------------------- ConnectionHandle (for the service)

  /** Bytes the network has not taken yet (this turn's frames, which leave when it ends, not counted). */
  bufferedBytes(): number {
    return this.socket.writableLength;
  }

  close(reason: CloseReason, detail?: string): void {
    const frame = closeFrameFor(reason, detail);
    // Deferred, after this turn's frames: closing inside a call would lose its reply.
    setImmediate(() => {
      this.shared.writer.flush();
      if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(frame.code, frame.reason);
    });
  }

  /** The connection cannot be served (bad token, per-user limit, shutting down): see the class comment. */
  private reject(error: TRPCError): void {
    this.req = null;
    this.phase = 'rejected';
    this.rejection = error;
    this.since = Date.now();
    this.shared.report({ error, type: 'unknown', path: undefined, input: undefined, ctx: null });
    this.send(this.shared.replies.error(null, error));
    const waiting = this.waiting.slice(this.waitingHead);
    this.waiting = [];
    this.waitingHead = 0;
    for (const request of waiting) if (request.kind === 'call') this.refuse(request.target, error, request);
    // Shutting down: nothing to wait for, the client should move now.
    if (error.code === 'SERVICE_UNAVAILABLE') this.closeRejected();
  }

  /** A `?connectionParams=1` socket that never sent them: refused like a missing token. */
  refuseParamsWait(waitedMs: number): void {
    this.reject(trpcErrorOf(new DomainError('UNAUTHENTICATED', `no connectionParams within ${waitedMs} ms`)));
  }

  /** Ends a rejected connection (after its linger), with the close code its error calls for. */
  closeRejected(): void {
    const frame = closeFrameFor({ refused: this.rejection?.code ?? 'UNAUTHORIZED', message: this.rejection?.message ?? '' });
    this.shared.writer.flush();
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(frame.code, frame.reason);
  }

  // ---------------------------------------------------------------- calls

  private async call(request: Extract<Request, { kind: 'call' }>, hot: HotCalls[keyof HotCalls] | undefined): Promise<void> {
    const ctx = this.ctx!;
    const { target, method, path } = request;
    this.inFlight += 1;
    let input: unknown;
    try {
      let data: unknown;
      if (hot) {
        const parsed = hot.input.safeParse(readInput(request.input));
        if (!parsed.success) throw invalidInput(parsed.error);
        input = parsed.data;
        assertNotExpired(ctx.principal);
        data = await hot.run(ctx, parsed.data as never);
        // A result the hot call can write as JSON text itself (acks: pre-serialized answers).
        if ('json' in hot) {
          this.send(this.shared.replies.resultJson(target, data, hot.json(data as never)));
          return;
        }
      } else {
        // Everything else through tRPC's public calling API: the router's own middlewares and schemas.
        if (method === 'subscription') throw new DomainError('METHOD_NOT_SUPPORTED', `no subscription "${path}" over WebSocket`);
        data = await callTRPCProcedure({ router: this.shared.router, path, type: method, ctx, signal: undefined, batchIndex: 0, getRawInput: async () => (input = readInput(request.input)) });
      }
      this.send(this.shared.replies.result(target, data));
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(toTRPCError(cause));
      this.shared.report({ error, type: method, path, input, ctx });
      this.send(this.shared.replies.error(target, error, { type: method, path, input, ctx }));
    } finally {
      this.inFlight -= 1;
      this.pump();
    }
  }

  private async subscribeEvents(request: Extract<Request, { kind: 'call' }>): Promise<void> {
    const { target } = request;
    if (this.stream(target.id)) {
      this.refuse(target, trpcErrorOf(new DomainError('INVALID_REQUEST', `Duplicate id ${target.id}`)), request);
      return;
    }
    const ctx = this.ctx!;
    const stream = new EventsStream(this, target);
    this.subscriptions = this.subscriptions ? [...this.subscriptions, stream] : [stream];
    this.inFlight += 1;
    try {
      const raw = readInput(request.input);
      // tRPC's rule: a `lastEventId` beside the input (the stock client's resume) wins over one in it.
      const merged = request.lastEventId === undefined ? raw : typeof raw === 'object' && raw !== null ? { ...raw, lastEventId: request.lastEventId } : (raw ?? { lastEventId: request.lastEventId });
      const parsed = this.shared.eventsInput.safeParse(merged);
      if (!parsed.success) throw invalidInput(parsed.error);
      stream.input = parsed.data;
      assertNotExpired(ctx.principal);
      const { conversationId, lastEventId } = parsed.data;
      await requireAccess(this.shared.authorize, ctx.principal, conversationId);
      if (this.phase === 'closed') return this.streamOver(stream);
      // Stopped before it started: still answered (tRPC's `stopped`), so the client can let it go.
      if (stream.cancelled) return this.streamEnded(stream);
      // From here the service tells the stream of its start and its end (EventsStream).
      stream.handle = this.shared.service.openSubscription({ connectionId: this.id, conversationId, lastEventId: lastEventId ?? null, sink: stream });
    } catch (cause) {
      this.streamEnded(stream, cause);
    }
  }

  private stream(id: string | number): EventsStream | undefined {
    return this.subscriptions?.find((s) => s.target.id === id);
  }

  /** An event of one of its streams: its frame built once per request id (frames.ts). */
  writeEvent(target: FrameTarget, envelope: RoomEnvelope, sharedEnvelope: boolean): void {
    this.shared.writer.write(this, this.shared.frames.dataFrame(envelope, target, sharedEnvelope));
  }

  /** The stream is live: tRPC's `started`, and it no longer counts as a call in flight. */
  streamLive(stream: EventsStream): void {
    stream.input = undefined; // only a failed start reports it
    this.send(this.shared.replies.started(stream.target));
    this.streamStarted(stream);
  }

  /**
   * The stream is over: ended by the server (room closed) or stopped by the client — tRPC's
   * `stopped` — or it could not start — its error.
   */
  streamEnded(stream: EventsStream, cause?: unknown): void {
    if (cause === undefined) this.send(this.shared.replies.stopped(stream.target));
    else if (this.phase !== 'closed') {
      const error = getTRPCErrorFromUnknown(toTRPCError(cause));
      const { target, input } = stream;
      this.shared.report({ error, type: 'subscription', path: EVENTS_PATH, input, ctx: this.ctx });
      this.send(this.shared.replies.error(target, error, { type: 'subscription', path: EVENTS_PATH, input, ctx: this.ctx! }));
    }
    this.streamOver(stream);
  }

  private streamStarted(stream: EventsStream): void {
    if (!stream.starting) return;
    stream.starting = false;
    this.inFlight -= 1;
    this.pump();
  }

  private streamOver(stream: EventsStream): void {
    this.streamStarted(stream);
    const at = this.subscriptions?.indexOf(stream) ?? -1;
    if (at !== -1) this.subscriptions!.splice(at, 1);
  }

  // ---------------------------------------------------------------- close

  onClose(): void {
    if (this.phase === 'closed') return;
    this.phase = 'closed';
    this.settleAuth();
    this.waiting = [];
    this.waitingHead = 0;
    this.pendingFrames = null;
    for (const sub of this.subscriptions ?? []) {
      sub.cancelled = true;
      sub.handle?.cancel();
    }
    this.subscriptions = null;
    this.req = null;
    if (this.ctx) this.shared.service.closeConnection(this.id);
    this.shared.forget(this);
  }
}
