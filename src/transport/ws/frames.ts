import superjson from 'superjson';
import type { RoomEnvelope } from '../../domain/types.ts';

/**
 * WebSocket frames of tRPC's protocol, built once. Stock tRPC serializes every event once per
 * subscriber (superjson, JSON.stringify, a fresh frame). Here an event is serialized once, and
 * its complete frame (header included: server frames are unmasked, so the same bytes serve every
 * recipient) built once per distinct request id — clients mostly share ids. The text is exactly
 * what tRPC's own server sends, so the stock client reads it unchanged.
 */

/** Where a reply goes: the request id, and whether the request spoke JSON-RPC 2.0. */
export interface FrameTarget {
  id: string | number;
  jsonrpc: boolean;
  /** Cache key of this target's frames. */
  key: string;
}

export function frameTarget(id: string | number, jsonrpc: boolean): FrameTarget {
  return { id, jsonrpc, key: `${jsonrpc ? 'j' : ''}${typeof id}:${id}` };
}

interface CachedEvent {
  /** superjson-serialized `{ id, data }`: what tRPC's transformer makes of `tracked(id, data)`. */
  payload: string;
  frames: Map<string, Buffer>;
}

/** How many recent events keep their frames: a fan-out needs them for one synchronous loop. */
const CACHE_SIZE = 256;

/**
 * The data frames of one server's fan-out. Bounded (not a WeakMap on the envelope): the history
 * keeps envelopes for resume, and their frames would double its memory; a replay rebuilds them.
 */
export class EventFrames {
  private readonly cache = new Map<RoomEnvelope, CachedEvent>();

  /**
   * The data frame of this event for this request. `shared`: other subscribers get the same
   * envelope (cache its frames); events of one stream only (its `subscribed`, a re-send) are not
   * cached.
   */
  dataFrame(envelope: RoomEnvelope, target: FrameTarget, shared: boolean): Buffer {
    if (!shared) return textFrameOf(dataText(serializeEvent(envelope), envelope.id, target));
    let cached = this.cache.get(envelope);
    if (!cached) {
      cached = { payload: serializeEvent(envelope), frames: new Map() };
      this.cache.set(envelope, cached);
      if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    let frame = cached.frames.get(target.key);
    if (!frame) {
      frame = textFrameOf(dataText(cached.payload, envelope.id, target));
      cached.frames.set(target.key, frame);
    }
    return frame;
  }
}

function serializeEvent(envelope: RoomEnvelope): string {
  return JSON.stringify(superjson.serialize({ id: envelope.id, data: envelope.event }));
}

function dataText(payload: string, eventId: string, target: FrameTarget): string {
  return `{"id":${JSON.stringify(target.id)},${target.jsonrpc ? '"jsonrpc":"2.0",' : ''}"result":{"type":"data","data":${payload},"id":${JSON.stringify(eventId)}}}`;
}

/** RFC 6455 §5.2: FIN + text opcode, unmasked, with the 7/16/64-bit payload length. */
export function textFrame(payload: Buffer): Buffer {
  const frame = frameWithHeader(payload.length);
  payload.copy(frame, frame.length - payload.length);
  return frame;
}

/** The text frame of a string, encoded straight into the frame (no intermediate buffer). */
export function textFrameOf(text: string): Buffer {
  const length = Buffer.byteLength(text, 'utf8');
  const frame = frameWithHeader(length);
  frame.write(text, frame.length - length, 'utf8');
  return frame;
}

function frameWithHeader(length: number): Buffer {
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
  return frame;
}

export const PING_FRAME = textFrameOf('PING');
export const PONG_FRAME = textFrameOf('PONG');
/** Makes a tRPC client move to a new socket (make-before-break), re-reading connectionParams. */
export const RECONNECT_FRAME = textFrameOf(JSON.stringify({ id: null, method: 'reconnect' }));
