import type { IncomingMessage } from 'node:http';
import { TRPCError } from '@trpc/server';
import type { Encoder } from '@trpc/server/adapters/ws';
import { getErrorShape, getTRPCErrorFromUnknown, transformTRPCResponse, type AnyRootTypes, type RootConfig } from '@trpc/server/unstable-core-do-not-import';
import type { WebSocket } from 'ws';
import type { z } from 'zod';
import { isExpired } from '../auth/tokens.ts';
import type { RealtimeService, SubscriptionHandle } from '../service/realtime-service.ts';
import { dataFrame, frameTarget, textFrame, writeFrame, type FrameTarget } from './direct-frames.ts';
import { safeDeserialize, UnsafeInputError } from './safe-superjson.ts';
import type { Authorize, Context } from './trpc.ts';
import type { HotCalls } from './router.ts';
import { toTRPCError } from './trpc-errors.ts';

/**
 * The hot procedures over WebSocket — `conversation.events` and the mutations every client
 * calls all the time (`message.send`, `message.ack`, `typing.set`) — served beside the tRPC
 * adapter instead of through it. PINNED to @trpc/server 11.25.2 with the rest of the wire code
 * (direct-frames.ts).
 *
 * Through the adapter, every subscription costs an async-generator chain, an AbortController
 * and the adapter's iteration machinery (~13 KB of heap per idle subscriber, measured), every
 * event a trip through them, and every call its generic middleware and promise plumbing
 * (an ack cost ~40 µs of server CPU, measured). Here a subscription is a small record whose
 * frames are built once per event (direct-frames.ts), and a call is parse, validate, run, reply.
 *
 * How: `attach(ws)` runs before the adapter attaches its own 'message' listener. It takes those
 * requests (and the `subscription.stop` of its subscriptions) out of each frame and serves them;
 * `wireEncoder.decode`, the adapter's encoder, then hands the adapter only what is left. The
 * wire is exactly the adapter's: the same `started`, data, `stopped`, result and error frames
 * (errors go through the router's own error formatter and transformer), the same input schemas
 * and the same token-expiry and access checks — the router's procedures are thin over the very
 * same handlers (router.ts createHotCalls) and stay the typed definitions, serving HTTP and
 * callers without a socket.
 */

const PATH = 'conversation.events';

/** How many subscriptions and calls this module has served (tests read it to prove the path is used). */
export const directSubscriptionStats = { started: 0, calls: 0 };

type RequestId = string | number;

interface SocketState {
  /** The first frame of a `?connectionParams=1` socket carries the token: the adapter's. */
  awaitingParams: boolean;
  subscriptions: Map<RequestId, DirectSubscription>;
}

interface SocketRef {
  ws: WebSocket;
  req: IncomingMessage;
  state: SocketState;
}

interface DirectSubscription {
  cancelled: boolean;
  handle: SubscriptionHandle | null;
}

export interface DirectSubscriptionsOptions {
  service: RealtimeService;
  authorize: Authorize;
  /** The router's root config: error formatter and transformer. */
  trpcConfig: RootConfig<AnyRootTypes>;
  /** The connection's context, as the adapter's createContext produced it. */
  contextOf: (ws: WebSocket) => Promise<Context> | undefined;
  /** The input schema of the procedure (router.ts), so both paths validate alike. */
  inputSchema: z.ZodType<{ conversationId: string; lastEventId?: string | null | undefined }>;
  /** The hot mutations, as the router defines them. */
  hotCalls: HotCalls;
  onError: (info: { error: TRPCError; type: 'subscription' | 'mutation'; path: string; input: unknown; ctx: Context | undefined; req: IncomingMessage }) => void;
}

let pendingOverride: { socket: WebSocket; text: string; items: unknown[] } | null = null;
let decodingFor: WebSocket | null = null;

/** The adapter's encoder: JSON, except that frames this module served arrive without its parts. */
export const wireEncoder: Encoder = {
  encode: (data) => JSON.stringify(data),
  decode(data) {
    const socket = decodingFor;
    decodingFor = null;
    if (typeof data !== 'string') throw new Error('binary frames are not accepted: tRPC frames are JSON text');
    const override = pendingOverride;
    pendingOverride = null;
    if (override && override.socket === socket && override.text === data) return override.items;
    return JSON.parse(data) as unknown;
  },
};

export function createDirectSubscriptions(options: DirectSubscriptionsOptions) {
  const { service, authorize, trpcConfig, contextOf, inputSchema, hotCalls, onError } = options;
  const mutations = new Map<string, { input: z.ZodType; run: (ctx: Context, input: never) => Promise<unknown> }>(Object.entries(hotCalls));

  /** A reply frame, written like the data frames: coalesced with this turn's other writes to the socket. */
  function send(ws: WebSocket, message: Parameters<typeof transformTRPCResponse>[1]): void {
    if (ws.readyState === 1) writeFrame(ws, textFrame(Buffer.from(JSON.stringify(transformTRPCResponse(trpcConfig, message)))));
  }

  function sendError(ws: WebSocket, target: FrameTarget, error: TRPCError, call: { input?: unknown; ctx?: Context | undefined; path?: string } = {}): void {
    const type = call.path && call.path !== PATH ? 'mutation' : 'subscription';
    const shape = getErrorShape({ config: trpcConfig, error, type, path: call.path ?? PATH, input: call.input, ctx: call.ctx });
    send(ws, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), error: shape });
  }

  function parseInput(params: { input?: unknown; lastEventId?: unknown }): { conversationId: string; lastEventId: string | null } {
    if (params.lastEventId !== undefined && typeof params.lastEventId !== 'string') {
      throw new TRPCError({ code: 'PARSE_ERROR', message: '"lastEventId" must be a string' });
    }
    let raw: unknown = readInput(params.input);
    if (params.lastEventId !== undefined) {
      raw = typeof raw === 'object' && raw !== null ? { ...raw, lastEventId: params.lastEventId } : (raw ?? { lastEventId: params.lastEventId });
    }
    const parsed = inputSchema.safeParse(raw);
    if (!parsed.success) throw new TRPCError({ code: 'BAD_REQUEST', cause: parsed.error });
    return { conversationId: parsed.data.conversationId, lastEventId: parsed.data.lastEventId ?? null };
  }

  async function serve(socket: SocketRef, target: FrameTarget, params: { input?: unknown; lastEventId?: unknown }): Promise<void> {
    const { ws, req, state } = socket;
    const sub: DirectSubscription = { cancelled: false, handle: null };
    state.subscriptions.set(target.id, sub);
    let ctx: Context | undefined;
    let input: unknown;
    try {
      const contextPromise = contextOf(ws);
      if (!contextPromise) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'connection not authenticated' });
      ctx = await contextPromise;
      if (sub.cancelled) return;
      const parsed = parseInput(params);
      input = parsed;
      if (isExpired(ctx.principal)) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'token expired' });
      if (!ctx.connection) throw new TRPCError({ code: 'METHOD_NOT_SUPPORTED', message: `${PATH} is served over WebSocket at /trpc` });
      if (!(await authorize(ctx.principal, parsed.conversationId))) {
        throw new TRPCError({ code: 'FORBIDDEN', message: `not allowed in conversation ${parsed.conversationId}` });
      }
      if (sub.cancelled) return;
      sub.handle = service.openSubscription({
        connectionId: ctx.connection.id,
        conversationId: parsed.conversationId,
        lastEventId: parsed.lastEventId,
        sink: { write: (envelope) => writeFrame(ws, dataFrame(envelope, target)) },
        onLive: () => {
          send(ws, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'started' } });
          directSubscriptionStats.started += 1;
        },
      });
      await sub.handle.done;
      // Ended by the server (room closed) or stopped by the client: either way, as the adapter does.
      send(ws, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'stopped' } });
    } catch (cause) {
      if (ws.readyState !== 1) return;
      const error = getTRPCErrorFromUnknown(toTRPCError(cause));
      onError({ error, type: 'subscription', path: PATH, input, ctx, req });
      sendError(ws, target, error, { input, ctx });
    } finally {
      if (state.subscriptions.get(target.id) === sub) state.subscriptions.delete(target.id);
    }
  }

  async function call(socket: SocketRef, target: FrameTarget, path: string, params: { input?: unknown }): Promise<void> {
    const { ws, req } = socket;
    const hot = mutations.get(path)!;
    let ctx: Context | undefined;
    let input: unknown;
    try {
      const contextPromise = contextOf(ws);
      if (!contextPromise) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'connection not authenticated' });
      ctx = await contextPromise;
      const raw = readInput(params.input);
      const parsed = hot.input.safeParse(raw);
      if (!parsed.success) throw new TRPCError({ code: 'BAD_REQUEST', cause: parsed.error });
      input = parsed.data;
      if (isExpired(ctx.principal)) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'token expired' });
      const data = await hot.run(ctx, parsed.data as never);
      directSubscriptionStats.calls += 1;
      send(ws, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'data', data } });
    } catch (cause) {
      const error = getTRPCErrorFromUnknown(toTRPCError(cause));
      onError({ error, type: 'mutation', path, input, ctx, req });
      sendError(ws, target, error, { input, ctx, path });
    }
  }

  function take(socket: SocketRef, item: unknown): boolean {
    const { ws, req, state } = socket;
    if (typeof item !== 'object' || item === null) return false;
    const { id, method, params, jsonrpc } = item as { id?: unknown; method?: unknown; params?: unknown; jsonrpc?: unknown };
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    if (method === 'subscription.stop') {
      const sub = state.subscriptions.get(id);
      if (!sub) return false; // not ours: the adapter's (or unknown, which it ignores)
      sub.cancelled = true;
      sub.handle?.cancel();
      return true;
    }
    if (typeof params !== 'object' || params === null) return false;
    const path = (params as { path?: unknown }).path;
    const target = frameTarget(id, jsonrpc === '2.0');
    if (method === 'mutation' && typeof path === 'string' && mutations.has(path)) {
      void call(socket, target, path, params as { input?: unknown });
      return true;
    }
    if (method !== 'subscription' || path !== PATH) return false;
    if (state.subscriptions.has(id)) {
      const error = new TRPCError({ code: 'BAD_REQUEST', message: `Duplicate id ${id}` });
      onError({ error, type: 'subscription', path: PATH, input: undefined, ctx: undefined, req });
      sendError(ws, target, error);
      return true;
    }
    void serve(socket, target, params as { input?: unknown; lastEventId?: unknown });
    return true;
  }

  return {
    /** Call for each new socket before the adapter sees it (`wss.emit('connection')`). */
    attach(ws: WebSocket, req: IncomingMessage): void {
      const state: SocketState = {
        awaitingParams: new URL(req.url ?? '/', 'http://localhost').searchParams.get('connectionParams') === '1',
        subscriptions: new Map(),
      };
      const socket: SocketRef = { ws, req, state };
      ws.on('message', (raw: Buffer, isBinary: boolean) => {
        decodingFor = ws;
        if (isBinary) return;
        if (state.awaitingParams) {
          state.awaitingParams = false;
          return;
        }
        const text = raw.toString('utf8');
        if (!text.includes(PATH) && !text.includes('"mutation"') && !(state.subscriptions.size > 0 && text.includes('subscription.stop'))) return;
        let message: unknown;
        try {
          message = JSON.parse(text);
        } catch {
          return; // the adapter answers the parse error
        }
        // A batch the adapter would refuse as a whole (too long, or with a malformed item) is left
        // to it entirely, so the fast path never runs part of what the adapter answers with one error.
        if (Array.isArray(message) && (message.length > MAX_BATCH_SIZE || !message.every(isWellFormedRequest))) return;
        const items = Array.isArray(message) ? (message as unknown[]) : [message];
        const rest = items.filter((item) => !take(socket, item));
        if (rest.length !== items.length) pendingOverride = { socket: ws, text, items: rest };
      });
      ws.once('close', () => {
        for (const sub of state.subscriptions.values()) {
          sub.cancelled = true;
          sub.handle?.cancel();
        }
        state.subscriptions.clear();
      });
    },
  };
}

/**
 * The adapter's `maxBatchSize` (src/server.ts passes this), applied by the fast path too. The
 * stock wsLink puts every request of one tick into one frame without a limit: a client catching
 * up on a replay acks hundreds of messages at once (found by chaos with 50), so this is sized
 * for a full history replay; MAX_FRAME_BYTES bounds a batch's bytes anyway.
 */
export const MAX_BATCH_SIZE = 1000;

/** superjson input, checked (safe-superjson.ts); anything it cannot read is the client's PARSE_ERROR. */
function readInput(input: unknown): unknown {
  if (input === undefined) return undefined;
  try {
    return safeDeserialize(input);
  } catch (cause) {
    throw new TRPCError({ code: 'PARSE_ERROR', message: `input is not valid superjson: ${cause instanceof UnsafeInputError ? cause.message : 'unreadable'}`, cause });
  }
}

/** What the adapter's parser accepts as one request: an object with an id and a method. */
function isWellFormedRequest(item: unknown): boolean {
  if (typeof item !== 'object' || item === null) return false;
  const { id, method } = item as { id?: unknown; method?: unknown };
  return (typeof id === 'string' || typeof id === 'number' || id === null) && typeof method === 'string';
}
