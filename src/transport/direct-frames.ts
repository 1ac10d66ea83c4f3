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
  /** Cache key of this id's frames, computed once per subscription (see frameTarget). */
  key: string;
}

export function frameTarget(id: string | number, jsonrpc: boolean): FrameTarget {
  return { id, jsonrpc, key: `${jsonrpc ? 'j' : ''}${typeof id}:${id}` };
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

/**
 * Recently fanned-out events and their frames. Bounded (not a WeakMap on the envelope): the
 * history ring keeps envelopes for resume, and their frames would double its memory. A fan-out
 * needs its event's frames only for the length of one loop; a replay rebuilds them.
 */
const cache = new Map<RoomEnvelope, CachedEvent>();
const CACHE_SIZE = 256;

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
    if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  const key = target.key;
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
  write(chunk: Buffer): boolean;
}

/** Frames written in this loop turn, per socket; they leave together when the turn ends. */
const pending = new Map<WebSocket, Buffer[]>();
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  for (const [ws, frames] of pending) {
    const socket = (ws as unknown as { _socket?: RawSocket })._socket;
    if (!socket || ws.readyState !== 1) continue; // closing: the client resumes from its last id
    socket.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames));
  }
  pending.clear();
}

/**
 * Sends a complete frame on the socket under `ws`, bypassing ws's per-send framing. Safe
 * because ws writes each frame synchronously and whole when permessage-deflate is off (it is),
 * so frames never interleave. Frames to one socket in one loop turn are queued here and leave
 * as one buffer in one write when the turn ends (setImmediate): one syscall per socket per
 * turn, and the plain write path even for a single frame. Frames of a socket that has started
 * closing are dropped. Order is kept among this module's frames (replies, started/stopped and
 * data of the direct path); the adapter's own replies to other calls may overtake them, which
 * the client, matching replies by id, does not notice.
 */
export function writeFrame(ws: WebSocket, frame: Buffer): void {
  if (ws.readyState !== 1) return;
  const frames = pending.get(ws);
  if (frames) {
    frames.push(frame);
    return;
  }
  pending.set(ws, [frame]);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

/**
 * What `ws` has queued and the network has not taken. The frames of the current loop turn are
 * not in it (they are written when the turn ends), so a burst or a resume replay written in one
 * turn does not make a reader that keeps up look like a slow consumer.
 */
export function unsentBytes(ws: WebSocket): number {
  return ws.bufferedAmount;
}
