import { createRequire } from 'node:module';
import superjson from 'superjson';
import type { WebSocket } from 'ws';
import type { RoomEnvelope } from '../domain/types.ts';

/**
 * Frames and writes for the fan-out fast path — with direct-subscriptions.ts, the only code
 * that leans on tRPC internals. PINNED to @trpc/server 11.25.2 (checked at start-up, see
 * assertPinnedTrpc).
 *
 * Stock tRPC serializes every event once per subscriber (superjson, JSON.stringify, a fresh
 * frame; notes/trpc-v11.md §3.1). Here each event is serialized once, its complete WebSocket
 * frame built once per distinct subscription id (clients mostly share ids) and written
 * straight to the socket, with writes to one socket coalesced per loop turn. The frames are
 * byte-for-byte what the adapter would send, so the stock client is unchanged.
 */

export const PINNED_TRPC_VERSION = '11.25.2';

export interface FrameTarget {
  id: string | number;
  jsonrpc: boolean;
}

/** Fails the start when the installed tRPC is not the version this module was written against. */
export function assertPinnedTrpc(): void {
  const require = createRequire(import.meta.url);
  const { version } = require('@trpc/server/package.json') as { version: string };
  if (version !== PINNED_TRPC_VERSION) {
    throw new Error(`src/transport/direct-frames.ts is pinned to @trpc/server ${PINNED_TRPC_VERSION}, found ${version}: re-check the wire format and update the pin`);
  }
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

/** The sockets corked in this loop turn, with the bytes of frames written to each meanwhile. */
const corked = new Map<RawSocket, number>();
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  for (const socket of corked.keys()) socket.uncork();
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
  const turnBytes = corked.get(socket);
  if (turnBytes === undefined) {
    socket.cork();
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  }
  corked.set(socket, (turnBytes ?? 0) + frame.length);
  socket.write(frame);
}

/**
 * What `ws` has queued and the network has not taken, not counting the frames corked in this
 * loop turn: those are handed to the kernel when the turn ends, so they say nothing about how
 * fast the peer reads. (Counted, a burst or a resume replay written in one turn would make a
 * reader that keeps up look like a slow consumer.)
 */
export function unsentBytes(ws: WebSocket): number {
  const socket = (ws as unknown as { _socket?: RawSocket })._socket;
  const turnBytes = socket ? (corked.get(socket) ?? 0) : 0;
  return Math.max(0, ws.bufferedAmount - turnBytes);
}
