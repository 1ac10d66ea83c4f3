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
 * The data frames of one server's fan-out. Bounded (not a WeakMap on the envelope): live
 * envelopes are held a while (ack re-sends) and their frames would add to that; a replay builds
 * its frames from the history's serialized events.
 */
export class EventFrames {
  private readonly cache = new Map<RoomEnvelope, CachedEvent>();
  /** Events of a kind share their meta (every message has the same): its form under `data`, by meta text. */
  private readonly metaCache = new Map<string, string | null>();

  /**
   * The data frame of this event for this request. `shared`: other subscribers get the same
   * envelope (cache its frames); events of one stream only (its `subscribed`, a re-send) are not
   * cached.
   */
  dataFrame(envelope: RoomEnvelope, target: FrameTarget, shared: boolean): Buffer {
    if (!shared) return textFrameOf(dataText(this.serializeEvent(envelope), envelope.id, target));
    let cached = this.cache.get(envelope);
    if (!cached) {
      cached = { payload: this.serializeEvent(envelope), frames: new Map() };
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

  /**
   * What tRPC's transformer makes of `tracked(id, event)`: `superjson.serialize({ id, data })`.
   * From the broker's serialization when the envelope has one (every stored event of a single
   * node, live or replayed): the event's JSON goes under `data` and its meta paths one level
   * down — exactly what superjson would give, without serializing the event again.
   */
  private serializeEvent(envelope: RoomEnvelope): string {
    const serialized = envelope.serialized;
    if (serialized) {
      const meta = serialized.meta === undefined ? '' : this.metaUnderData(serialized.meta);
      if (meta !== null) return `{"json":{"id":${JSON.stringify(envelope.id)},"data":${serialized.json}}${meta}}`;
    }
    return JSON.stringify(superjson.serialize({ id: envelope.id, data: envelope.event }));
  }

  private metaUnderData(meta: string): string | null {
    let under = this.metaCache.get(meta);
    if (under !== undefined) return under;
    under = metaUnderData(JSON.parse(meta) as Record<string, unknown>);
    this.metaCache.set(meta, under);
    if (this.metaCache.size > META_CACHE_SIZE) this.metaCache.delete(this.metaCache.keys().next().value!);
    return under;
  }
}

const META_CACHE_SIZE = 64;

/**
 * `,"meta":…` of the wrapper from the event's meta: superjson's `values` and
 * `referentialEqualities` paths prefixed with `data.` (keys in the same order). Null for a form
 * this does not rewrite (an annotated or self-referencing root: never a room event); the caller
 * then serializes the event itself.
 */
function metaUnderData(meta: Record<string, unknown>): string | null {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key === 'values' || key === 'referentialEqualities') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
      const paths: Record<string, unknown> = {};
      for (const [path, tree] of Object.entries(value)) paths[`data.${path}`] = key === 'values' ? tree : (tree as string[]).map((p) => `data.${p}`);
      out[key] = paths;
    } else {
      out[key] = value;
    }
  }
  return `,"meta":${JSON.stringify(out)}`;
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
