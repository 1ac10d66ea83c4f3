import superjson from 'superjson';
import type { RoomEnvelope } from '../../domain/types.ts';

/**
 * Server-Sent Events of tRPC's SSE protocol (what its `sseStreamProducer` writes and the stock
 * `httpSubscriptionLink` reads): `connected` first (with the client options), then one `data`
 * event per tracked value — its `id` is the event id, so an EventSource that reconnects sends it
 * back as `Last-Event-ID` — `ping` to keep proxies from closing a quiet stream,
 * `serialized-error` for an error, `return` when the stream is complete. An event's text is the
 * same for every subscriber: it is built once per event, not once per stream.
 */

interface Cached {
  chunk: Buffer;
}

/** How many recent events keep their text: a fan-out needs it for one synchronous loop. */
const CACHE_SIZE = 256;

export class SseEvents {
  private readonly cache = new Map<RoomEnvelope, Cached>();

  /** The `data` event of this envelope; `shared`: other streams get the same one (cache it). */
  dataChunk(envelope: RoomEnvelope, shared: boolean): Buffer {
    if (!shared) return Buffer.from(dataText(envelope));
    let cached = this.cache.get(envelope);
    if (!cached) {
      cached = { chunk: Buffer.from(dataText(envelope)) };
      this.cache.set(envelope, cached);
      if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    }
    return cached.chunk;
  }
}

/**
 * tRPC sends a tracked value's data without its id (the SSE `id` field carries it): superjson's
 * `{ json, meta }` of the event — from the broker's serialization when the envelope has one.
 */
function dataText(envelope: RoomEnvelope): string {
  const serialized = envelope.serialized;
  const payload = serialized
    ? `{"json":${serialized.json}${serialized.meta === undefined ? '' : `,"meta":${serialized.meta}`}}`
    : JSON.stringify(superjson.serialize(envelope.event));
  return `data: ${payload}\nid: ${envelope.id}\n\n`;
}

/**
 * The first event: the EventSource's reconnect delay (`retry`), and the client options tRPC's
 * link reads — it re-opens a stream that has been silent for `reconnectAfterInactivityMs`.
 */
export function connectedChunk(retryMs: number, reconnectAfterInactivityMs: number): Buffer {
  return Buffer.from(`retry: ${retryMs}\nevent: connected\ndata: ${JSON.stringify({ reconnectAfterInactivityMs })}\n\n`);
}

/** An error shape (the router's formatter made it), serialized as tRPC serializes it. */
export function errorChunk(shape: unknown, retryMs?: number): Buffer {
  return Buffer.from(`${retryMs === undefined ? '' : `retry: ${retryMs}\n`}event: serialized-error\ndata: ${JSON.stringify(superjson.serialize(shape))}\n\n`);
}

export const PING_CHUNK = Buffer.from('event: ping\ndata: \n\n');
/** The stream is complete: the stock client stops (it does not reconnect). */
export const RETURN_CHUNK = Buffer.from('event: return\ndata: \n\n');

/** Response headers of every stream (tRPC's, plus no caching by anything in between). */
export const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
} as const;
