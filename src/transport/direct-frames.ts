import { createRequire } from 'node:module';
import type { Encoder } from '@trpc/server/adapters/ws';
import superjson from 'superjson';
import type { WebSocket } from 'ws';
import type { RoomEnvelope } from '../domain/types.ts';

/**
 * The fan-out fast path for `conversation.events`, and the only module that leans on tRPC
 * internals. PINNED to @trpc/server 11.25.2 (checked at start-up, see assertPinnedTrpc).
 *
 * Stock tRPC serializes every event once per subscriber (superjson, JSON.stringify, a fresh
 * frame) behind two async-generator hops (notes/trpc-v11.md §3.1). Here each event is
 * serialized once, its frame built once per distinct subscription id (clients mostly share
 * ids) and written straight to the socket, with writes to one socket coalesced per loop turn.
 * The frames are byte-for-byte what the adapter would send, so the stock client is unchanged.
 *
 * How it knows the subscription id, which a procedure is never told:
 * - `watchIncoming(ws)` is installed before the adapter's own message listener, and only notes
 *   which socket the next `decode` call belongs to;
 * - `wireEncoder.decode` (the adapter's `experimental_encoder`, otherwise plain JSON) sees each
 *   parsed frame once and records the `conversation.events` subscription requests of that socket;
 * - the procedure, once the adapter has validated, authorised and started it, claims the
 *   request with the same conversation and resume point and gets a sink that writes data
 *   frames for that id. The adapter still owns everything else: parsing, validation, errors,
 *   `started`/`stopped`, `subscription.stop` and socket close (which end the procedure).
 * Anything that cannot be claimed (no socket, an unexpected frame shape) falls back to the
 * ordinary yield path, which is slower but equivalent.
 */

export const PINNED_TRPC_VERSION = '11.25.2';
const EVENTS_PATH = 'conversation.events';
/** Unclaimed requests kept per socket (a client that floods invalid subscriptions hurts only itself). */
const MAX_PENDING_PER_SOCKET = 32;

type RequestId = string | number;

interface SubscriptionRequest {
  id: RequestId;
  jsonrpc: boolean;
  conversationId: string;
  lastEventId: string | null;
}

export interface FrameTarget {
  id: RequestId;
  jsonrpc: boolean;
}

/** How many subscriptions took the fast path and how many fell back (tests and metrics read this). */
export const directFrameStats = { claimed: 0, unclaimed: 0 };

const pendingBySocket = new WeakMap<WebSocket, SubscriptionRequest[]>();
const activeBySocket = new WeakMap<WebSocket, Set<RequestId>>();
let decodingFor: WebSocket | null = null;

/** Fails the start when the installed tRPC is not the version this module was written against. */
export function assertPinnedTrpc(): void {
  const require = createRequire(import.meta.url);
  const { version } = require('@trpc/server/package.json') as { version: string };
  if (version !== PINNED_TRPC_VERSION) {
    throw new Error(`src/transport/direct-frames.ts is pinned to @trpc/server ${PINNED_TRPC_VERSION}, found ${version}: re-check the wire format and update the pin`);
  }
}

/** Must run before the tRPC adapter attaches its own 'message' listener to `ws`. */
export function watchIncoming(ws: WebSocket): void {
  ws.on('message', () => {
    decodingFor = ws;
  });
}

/** JSON both ways, plus the bookkeeping above on the way in. */
export const wireEncoder: Encoder = {
  encode: (data) => JSON.stringify(data),
  decode(data) {
    const socket = decodingFor;
    decodingFor = null;
    if (typeof data !== 'string') throw new Error('binary frames are not accepted: tRPC frames are JSON text');
    const message: unknown = JSON.parse(data);
    if (socket) note(socket, message);
    return message;
  },
};

function note(socket: WebSocket, message: unknown): void {
  const items = Array.isArray(message) ? (message as unknown[]) : [message];
  for (const item of items) {
    if (typeof item !== 'object' || item === null) continue;
    const { id, method, params, jsonrpc } = item as { id?: unknown; method?: unknown; params?: unknown; jsonrpc?: unknown };
    if (typeof id !== 'string' && typeof id !== 'number') continue;
    let pending = pendingBySocket.get(socket);
    if (method === 'subscription.stop') {
      if (pending) pendingBySocket.set(socket, pending.filter((p) => p.id !== id));
      continue;
    }
    if (method !== 'subscription' || typeof params !== 'object' || params === null) continue;
    const { path, input, lastEventId } = params as { path?: unknown; input?: unknown; lastEventId?: unknown };
    if (path !== EVENTS_PATH) continue;
    const json = (input as { json?: { conversationId?: unknown; lastEventId?: unknown } } | null | undefined)?.json;
    if (typeof json?.conversationId !== 'string') continue;
    const resumeFrom = typeof lastEventId === 'string' ? lastEventId : typeof json.lastEventId === 'string' ? json.lastEventId : null;
    if (!pending) {
      pending = [];
      pendingBySocket.set(socket, pending);
    }
    const request: SubscriptionRequest = { id, jsonrpc: jsonrpc === '2.0', conversationId: json.conversationId, lastEventId: resumeFrom };
    const same = pending.findIndex((p) => p.id === id);
    if (same !== -1) pending.splice(same, 1);
    pending.push(request);
    if (pending.length > MAX_PENDING_PER_SOCKET) pending.shift();
  }
}

/**
 * The wire request behind a started `conversation.events` call on this socket, if it can be
 * told; it stays claimed until `release`.
 */
export function claimSubscription(socket: WebSocket, conversationId: string, lastEventId: string | null): FrameTarget | null {
  const pending = pendingBySocket.get(socket);
  let active = activeBySocket.get(socket);
  const index = pending?.findIndex((p) => p.conversationId === conversationId && p.lastEventId === lastEventId && !active?.has(p.id)) ?? -1;
  if (!pending || index === -1) {
    directFrameStats.unclaimed += 1;
    return null;
  }
  directFrameStats.claimed += 1;
  const request = pending.splice(index, 1)[0]!;
  if (!active) {
    active = new Set();
    activeBySocket.set(socket, active);
  }
  active.add(request.id);
  return { id: request.id, jsonrpc: request.jsonrpc };
}

export function releaseSubscription(socket: WebSocket, target: FrameTarget): void {
  activeBySocket.get(socket)?.delete(target.id);
}

// ---------------------------------------------------------------- frames

interface CachedEvent {
  /** superjson-serialized `{ id, data }`, as the adapter's transformer would produce it. */
  payload: string;
  frames: Map<string, Buffer>;
}

const cache = new WeakMap<RoomEnvelope, CachedEvent>();

/**
 * The complete WebSocket frame (header included) carrying this event's data message for this
 * subscription id. Server frames are unmasked, so the same bytes serve every recipient:
 * serialized once per event, built once per distinct id.
 */
export function dataFrame(envelope: RoomEnvelope, target: FrameTarget): Buffer {
  let cached = cache.get(envelope);
  if (!cached) {
    cached = { payload: JSON.stringify(superjson.serialize({ id: envelope.id, data: envelope.event })), frames: new Map() };
    cache.set(envelope, cached);
  }
  const key = `${target.jsonrpc ? 'j' : ''}${typeof target.id}:${target.id}`;
  let frame = cached.frames.get(key);
  if (!frame) {
    const head = `{"id":${JSON.stringify(target.id)},${target.jsonrpc ? '"jsonrpc":"2.0",' : ''}"result":{"type":"data","data":`;
    frame = textFrame(Buffer.from(`${head}${cached.payload},"id":${JSON.stringify(envelope.id)}}}`));
    cached.frames.set(key, frame);
  }
  return frame;
}

/** RFC 6455 §5.2: FIN + text opcode, unmasked, with the 7/16/64-bit payload length. */
export function textFrame(payload: Buffer): Buffer {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x81;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65_536) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeBigUInt64BE(BigInt(length), 2);
  }
  payload.copy(frame, headerLength);
  return frame;
}

// ---------------------------------------------------------------- coalesced writes

interface RawSocket {
  cork(): void;
  uncork(): void;
  write(chunk: Buffer): boolean;
}

const corked = new Set<RawSocket>();
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/**
 * Writes a complete frame to the socket under `ws`, bypassing ws's per-send framing. Safe
 * because ws writes each frame synchronously and whole when permessage-deflate is off (it is):
 * frames never interleave. The first write to a socket in a loop turn corks it; that turn's
 * frames leave together in one writev when the turn ends (setImmediate). Nothing is written
 * once ws has started closing.
 */
export function writeFrame(ws: WebSocket, frame: Buffer): void {
  if (ws.readyState !== 1) return;
  const socket = (ws as unknown as { _socket?: RawSocket })._socket;
  if (!socket) return;
  if (!corked.has(socket)) {
    socket.cork();
    corked.add(socket);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  socket.write(frame);
}
