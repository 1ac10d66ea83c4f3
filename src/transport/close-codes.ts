import type { CloseReason } from '../service/realtime-service.ts';

/**
 * WebSocket close codes the server uses, after Centrifuge's ranges:
 *   4000–4499  the client should reconnect (and resume from its last event id);
 *   4500–4999  terminal: reconnecting will not help until something changes.
 * The stock tRPC client reconnects whatever the code; clients/chat honours the terminal range.
 * Reasons stay well under the 123-byte close-frame limit.
 */
export const CloseCodes = {
  /** The server is shutting down or draining; reconnect (to another node) and resume. */
  SHUTDOWN: 4000,
  /** The token expired; reconnect with a fresh token (connectionParams is re-read). */
  TOKEN_EXPIRED: 4001,
  /** More unsent bytes than MAX_BUFFERED_BYTES; reconnect and resume from the last event id. */
  SLOW_CONSUMER: 4008,
  /** A per-user limit refused the connection (MAX_CONNECTIONS_PER_USER); reconnect later. */
  TOO_MANY_CONNECTIONS: 4029,
  /** An administrator disconnected this user. Terminal. */
  KICKED: 4500,
  /** The token was missing, invalid or expired when the connection opened. Terminal: get a new one. */
  UNAUTHORIZED: 4501,
} as const;

export const TERMINAL_RANGE = [4500, 4999] as const;

/**
 * Why the server closes a socket: a reason the service gives, or — for a connection refused at
 * its start — the tRPC error code every call on it got (mapped from its DomainError by
 * transport/trpc-errors.ts, or an `authenticate` hook's own TRPCError) and its message.
 */
export type CloseCause = CloseReason | { refused: string; message: string };

/** The one mapping to close frames: every close the WebSocket transport makes goes through it. */
export function closeFrameFor(cause: CloseCause, detail?: string): { code: number; reason: string } {
  const text = (base: string) => truncateUtf8(detail ? `${base}: ${detail}` : base, 120);
  if (typeof cause === 'object') {
    switch (cause.refused) {
      case 'SERVICE_UNAVAILABLE':
        return { code: CloseCodes.SHUTDOWN, reason: truncateUtf8(`server shutting down: ${cause.message}`, 120) };
      case 'TOO_MANY_REQUESTS':
        return { code: CloseCodes.TOO_MANY_CONNECTIONS, reason: truncateUtf8(cause.message, 120) };
      default:
        return { code: CloseCodes.UNAUTHORIZED, reason: truncateUtf8(`unauthorized: ${cause.message}`, 120) };
    }
  }
  switch (cause) {
    case 'shutdown':
      return { code: CloseCodes.SHUTDOWN, reason: text('server shutting down') };
    case 'token_expired':
      return { code: CloseCodes.TOKEN_EXPIRED, reason: text('token expired') };
    case 'slow_consumer':
      return { code: CloseCodes.SLOW_CONSUMER, reason: text('slow consumer') };
    case 'kicked':
    case 'room_closed':
      return { code: CloseCodes.KICKED, reason: text('disconnected by an administrator') };
  }
}

/** The longest prefix of `text` within `maxBytes` UTF-8 bytes (ws throws on a close reason over 123 bytes). */
function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  let out = '';
  let bytes = 0;
  for (const char of text) {
    bytes += Buffer.byteLength(char, 'utf8');
    if (bytes > maxBytes) break;
    out += char;
  }
  return out;
}

export function shouldReconnect(code: number): boolean {
  return !(code >= TERMINAL_RANGE[0] && code <= TERMINAL_RANGE[1]);
}

/**
 * How an SSE stream ends for each reason — SSE has no close codes. tRPC's `httpSubscriptionLink`
 * reconnects (with `Last-Event-ID`) when a stream simply ends, or after an error whose code it
 * counts as retryable (SERVICE_UNAVAILABLE); any other error ends the subscription for good.
 *   reset: the response is destroyed (a slow consumer's backlog is dropped, not flushed); it
 *          reconnects and resumes from its last event id;
 *   end:   ended cleanly without `return`: it reconnects and is authenticated again;
 *   error: a `serialized-error` event, then the end.
 */
export type StreamEnd = { how: 'reset' } | { how: 'end' } | { how: 'error'; code: 'SERVICE_UNAVAILABLE' | 'FORBIDDEN'; message: string };

export function streamEndFor(reason: CloseReason, detail?: string): StreamEnd {
  const text = (base: string) => (detail ? `${base}: ${detail}` : base);
  switch (reason) {
    case 'slow_consumer':
      return { how: 'reset' };
    case 'token_expired':
      return { how: 'end' };
    case 'shutdown':
      return { how: 'error', code: 'SERVICE_UNAVAILABLE', message: text('server shutting down: reconnect and resume') };
    case 'kicked':
    case 'room_closed':
      return { how: 'error', code: 'FORBIDDEN', message: text('disconnected by an administrator') };
  }
}
