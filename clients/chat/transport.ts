/**
 * How the typed chat client reaches the server: the tRPC links and what each transport needs
 * around them. index.ts (join, send, acks…) sees one `ChatTransport` whatever the wire.
 *
 *   websocket  transport-ws.ts: one socket for everything (wsLink).
 *   sse        transport-sse.ts: events over Server-Sent Events, calls over HTTP.
 *   auto       transport-auto.ts: WebSocket first; SSE for the rest of the client's life only
 *              when the server answers over HTTP while its WebSocket cannot open (refused, closed
 *              before it opened, or not open within `autoFallbackMs`); a server that is merely
 *              unreachable keeps the client trying the WebSocket. A deferring link holds calls
 *              until the choice is made.
 *
 * Each transport reports its connection state through `hooks.state` ('connected', or 'down' with
 * the error); the client turns that into connecting / connected / reconnecting / closed.
 */
import type { TRPCClient, TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../src/transport/router.ts';
import { webSocketTransport } from './transport-ws.ts';
import { sseTransport } from './transport-sse.ts';
import { autoTransport } from './transport-auto.ts';

export type TransportKind = 'websocket' | 'sse';

/** A WebSocket class: the `ws` package's in Node 20 (the Node entry passes it), `globalThis.WebSocket` elsewhere. */
export type WebSocketClass = abstract new (url: string | URL, protocols?: string | string[]) => WebSocket;

export interface TransportOptions {
  /**
   * `ws://host:port/trpc`, or a function asked again on every (re)connection — to move to
   * another node without a load balancer, say. An `http(s)://` URL is accepted too; over SSE
   * ws→http and wss→https. A string that is not such a URL throws a TypeError at once.
   */
  url: string | (() => string | Promise<string>);
  /**
   * `websocket` (default): one WebSocket. `sse`: events over Server-Sent Events (one stream per
   * joined conversation), calls over HTTP. `auto`: WebSocket, or SSE for the client's life when
   * the server answers over HTTP but its WebSocket cannot open (refused, closed before it opened,
   * or not open within `autoFallbackMs`); while the server is unreachable altogether (say, it is
   * restarting) the client keeps trying the WebSocket. `client.transport` says which.
   */
  transport?: 'websocket' | 'sse' | 'auto';
  /**
   * `auto`: how long a WebSocket may take to open (default 3000) before the client asks the
   * server's /trpc URL over HTTP (a HEAD) — as it does when a WebSocket fails: any answer but a
   * gateway's 502/503/504 (while the socket still hangs, or before and after the failed socket)
   * means SSE; a network error, no answer within this time or such a status means unreachable:
   * the client keeps trying the WebSocket (transport-auto.ts).
   */
  autoFallbackMs?: number;
  /** WebSocket reconnect back-off (default: 0, then 250 ms doubling up to 5 s); SSE streams use the server's `retry`. */
  retryDelayMs?: (attempt: number) => number;
  /**
   * Largest frame (WebSocket) or batch body (HTTP) the client lets the tRPC link build (it puts
   * every call of one tick into one): calls beyond it wait for the next one. Keep it under the
   * server's MAX_FRAME_BYTES (default 1 MiB); default 256 KiB.
   */
  maxFrameBytes?: number;
  /**
   * The WebSocket class to use. Default: `globalThis.WebSocket` (browsers, Deno, Bun, Node ≥ 22);
   * the Node entry (`realtime-broadcast/client` under Node) falls back to the `ws` package.
   */
  WebSocket?: WebSocketClass;
}

/** What the transport asks of the client. */
export interface TransportHooks {
  /** The token for the next connection or request (a fresh one each time when `token` is a function). */
  token(): Promise<string>;
  /** The server refused this client for good (UNAUTHORIZED); called once pending calls have their errors. */
  refused(error: TRPCClientError<AppRouter>): void;
  /** The server closed the socket with a terminal code (4500–4999). WebSocket only. */
  closedForGood(code: number): void;
  /** The connection is up, or down with this error (a refused connect, a dropped socket, a failed request). */
  state(status: 'connected' | 'down', error: Error | null): void;
  /** `auto` chose its transport (`kind` changed). */
  kindChanged?(): void;
  isClosed(): boolean;
}

export interface ChatTransport {
  readonly trpc: TRPCClient<AppRouter>;
  /** The transport in use; undefined while `auto` has not decided yet. */
  readonly kind: TransportKind | undefined;
  /** The id this client names itself by in events inputs and sends (SSE and auto; none over WebSocket alone). */
  readonly clientId: string | undefined;
  /** The URL it connects to (the latest one asked, when `url` is a function), for error messages. */
  readonly url: string | undefined;
  /** Resolves when a call of this input may go (the WebSocket's frame budget, the HTTP batch's bytes). */
  admit(input: unknown): Promise<void>;
  /** The server's reason for a bare connection error, when it gave one. */
  explain(error: unknown): unknown;
  close(): Promise<void>;
}

export const DEFAULT_FRAME_BYTES = 256 * 1024;

export function createTransport(options: TransportOptions, hooks: TransportHooks): ChatTransport {
  if (typeof options.url === 'string') checkedUrl(options.url);
  const kind = options.transport ?? 'websocket';
  switch (kind) {
    case 'websocket':
      return webSocketTransport(options, hooks, null);
    case 'sse':
      return sseTransport(options, hooks, randomClientId());
    case 'auto':
      return autoTransport(options, hooks);
  }
}

const GOOD_URL = 'ws://localhost:3000/trpc (or wss://, http://, https://; the path ends in /trpc)';

/**
 * `url` when it is a server URL the client can use, else a TypeError saying what a good one
 * looks like: a ws/wss/http/https scheme and a path ending in `/trpc` (`/trpc` itself, or
 * `/something/trpc` behind a proxy). "localhost:3000/trpc" parses as the scheme `localhost:`.
 */
export function checkedUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`the chat client's url "${url}" is not a URL; use one like ${GOOD_URL}`);
  }
  if (!['ws:', 'wss:', 'http:', 'https:'].includes(parsed.protocol)) {
    throw new TypeError(`the chat client's url "${url}" has no ws/wss/http/https scheme; use one like ${GOOD_URL}`);
  }
  if (!/(^|\/)trpc\/?$/.test(parsed.pathname)) {
    throw new TypeError(`the chat client's url "${url}" has the path "${parsed.pathname}", not /trpc; use one like ${GOOD_URL}`);
  }
  return url;
}

/** `http(s)://…` for `ws(s)://…` (and http(s) URLs as they are), without a trailing slash. */
export function httpUrlOf(url: string): string {
  return withScheme(url, { 'ws:': 'http:', 'wss:': 'https:', 'http:': 'http:', 'https:': 'https:' });
}

/** `ws(s)://…` for `http(s)://…` (and ws(s) URLs as they are). */
export function wsUrlOf(url: string): string {
  return withScheme(url, { 'http:': 'ws:', 'https:': 'wss:', 'ws:': 'ws:', 'wss:': 'wss:' });
}

function withScheme(url: string, map: Record<string, string>): string {
  const parsed = new URL(url);
  const scheme = map[parsed.protocol];
  if (scheme === undefined) throw new TypeError(`the chat client needs a ws(s):// or http(s):// URL, not ${url}`);
  return `${scheme}${url.slice(parsed.protocol.length)}`.replace(/\/+$/, '');
}

export const resolveUrl = async (url: TransportOptions['url']): Promise<string> => (typeof url === 'function' ? url() : url);

/** A random id; `crypto.randomUUID` exists only in secure contexts (https, localhost) in browsers. */
export function randomId(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function randomClientId(): string {
  return randomId().replaceAll('-', '');
}

/** A call's size on the wire, give or take its envelope. */
export function sizeOf(input: unknown, encoder: TextEncoder): number {
  return 160 + (input === null || input === undefined ? 0 : encoder.encode(JSON.stringify(superjson.serialize(input))).length);
}
