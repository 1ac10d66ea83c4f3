/**
 * The SSE transport: `conversation.events` over Server-Sent Events (httpSubscriptionLink), one
 * stream per joined room, everything else over HTTP (httpBatchLink). The token goes as an
 * `Authorization: Bearer` header on every request and every stream (re)connect — never in a URL.
 * Sends and streams carry one `clientId` per client, so a send skips the client's own streams as
 * it skips its own socket over WebSocket. The connection state comes from the streams' state
 * results and the outcome of every HTTP request. `eventsource` is fetch-based: Node and browsers.
 */
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, type TRPCLink } from '@trpc/client';
import { observable } from '@trpc/server/observable';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import type { AppRouter } from '../../src/transport/router.ts';
import { checkedUrl, DEFAULT_FRAME_BYTES, httpUrlOf, resolveUrl, sizeOf, type ChatTransport, type TransportHooks, type TransportOptions } from './transport.ts';

/**
 * The server refuses an HTTP batch of more than MAX_HTTP_BATCH calls (default 50) whole; the
 * batch link splits one tick's calls into batches of at most this many.
 */
const HTTP_BATCH_MAX_ITEMS = 50;
/** GET batches (queries) carry their inputs in the URL; Node's default header limit is 16 KiB. */
const HTTP_MAX_URL_LENGTH = 8000;

export type SseTransport = ChatTransport & { links: TRPCLink<AppRouter>[] };

export function sseTransport(options: TransportOptions, hooks: TransportHooks, clientId: string): SseTransport {
  let lastUrl: string | undefined;
  const httpUrl = async () => (lastUrl = httpUrlOf(checkedUrl(await resolveUrl(options.url))));
  const health = new SseHealth(hooks);
  // Every request and stream connect goes through here: its outcome is the connection's.
  const observedFetch = async (url: string | URL | Request, init?: RequestInit): Promise<Response> => {
    try {
      const response = await fetch(url, init);
      health.http(null);
      return response;
    } catch (error) {
      if (!(init?.signal?.aborted ?? false)) health.http(networkError(error));
      throw error;
    }
  };
  // The batch link wants a fixed URL: it gets a placeholder, and its fetch the URL of the moment.
  const placeholder = 'http://chat-client.invalid/trpc';
  const budget = new TickBudget(options.maxFrameBytes ?? DEFAULT_FRAME_BYTES);
  const link = splitLink<AppRouter>({
    condition: (op) => op.type === 'subscription',
    true: httpSubscriptionLink<AppRouter, typeof EventSource>({
      url: httpUrl,
      transformer: superjson,
      EventSource,
      // Asked on every (re)connect of the EventSource, so a token function hands out fresh tokens.
      eventSourceOptions: () => ({
        fetch: async (url, init) => observedFetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${await hooks.token()}` } }),
      }),
    }),
    false: httpBatchLink<AppRouter>({
      url: placeholder,
      transformer: superjson,
      maxItems: HTTP_BATCH_MAX_ITEMS,
      maxURLLength: HTTP_MAX_URL_LENGTH,
      headers: async () => ({ Authorization: `Bearer ${await hooks.token()}` }),
      fetch: async (url, init) => observedFetch(rebase(await httpUrl(), String(url).slice(placeholder.length)), init as RequestInit),
    }),
  });
  /** Open streams, ended (and completed, as a closed wsClient completes its subscriptions) by close(). */
  const streams = new Set<() => void>();
  // A refusal for good (missing, invalid or expired token) on any call or stream ends the client,
  // as a refused socket does: the fresh token was refused, retrying cannot help.
  const watch: TRPCLink<AppRouter> = () => ({ op, next }) =>
    observable((observer) => {
      let done = false;
      const stream = {};
      const settle = () => {
        done = true;
        streams.delete(end);
        if (op.type === 'subscription') health.stream(stream, 'gone', null);
      };
      const end = () => {
        settle();
        subscription.unsubscribe();
        observer.complete();
      };
      const subscription = next(op).subscribe({
        next: (value) => {
          const result = value.result as { type?: string; state?: string; error?: Error | null };
          if (result.type === 'state') health.stream(stream, result.state === 'pending' ? 'open' : result.state === 'connecting' ? 'connecting' : 'gone', result.error ?? null);
          observer.next(value);
        },
        error: (error) => {
          settle();
          if (error.data?.code === 'UNAUTHORIZED') hooks.refused(error);
          observer.error(error);
        },
        complete: () => {
          settle();
          observer.complete();
        },
      });
      if (op.type === 'subscription' && !done) streams.add(end);
      return () => {
        settle();
        subscription.unsubscribe();
      };
    });
  const links = [watch, link];
  return {
    links,
    trpc: createTRPCClient<AppRouter>({ links }),
    kind: 'sse',
    clientId,
    get url() {
      return lastUrl ?? (typeof options.url === 'string' ? httpUrlOf(options.url) : undefined);
    },
    admit: (input) => budget.admit(input),
    explain: (error) => error,
    async close() {
      budget.close();
      for (const end of [...streams]) end();
    },
  };
}

/**
 * The connection state over SSE, from what the streams and requests say: connected once a stream
 * opened or a request got an answer, and while no stream is reconnecting after an error and the
 * latest request reached the server; down (with the error) otherwise.
 */
class SseHealth {
  private readonly failingStreams = new Map<object, Error>();
  private httpError: Error | null = null;
  private reached = false;

  constructor(private readonly hooks: TransportHooks) {}

  http(error: Error | null): void {
    this.httpError = error;
    if (!error) this.reached = true;
    this.report();
  }

  stream(stream: object, state: 'open' | 'connecting' | 'gone', error: Error | null): void {
    if (state === 'open') this.reached = true;
    if (state === 'connecting' && error) this.failingStreams.set(stream, error);
    else if (state === 'open' || state === 'gone') this.failingStreams.delete(stream);
    else return; // the first connect of a stream says nothing yet
    this.report();
  }

  private report(): void {
    if (this.hooks.isClosed()) return;
    const error = this.httpError ?? this.failingStreams.values().next().value ?? null;
    if (error) this.hooks.state('down', error);
    else if (this.reached) this.hooks.state('connected', null);
  }
}

/** Node's fetch says only "fetch failed"; its cause says why (connect ECONNREFUSED 127.0.0.1:1). */
function networkError(error: unknown): Error {
  if (!(error instanceof Error)) return new Error(String(error));
  return error.cause instanceof Error ? new Error(`${error.message}: ${error.cause.message}`, { cause: error }) : error;
}

/** `base` (which may carry a query) + `rest` (a path and maybe a query): `…/trpc?a=1` + `/x?batch=1` → `…/trpc/x?a=1&batch=1`. */
function rebase(base: string, rest: string): string {
  const [basePath = '', baseQuery] = base.split('?', 2);
  const [restPath = '', restQuery] = rest.split('?', 2);
  const query = [baseQuery, restQuery].filter(Boolean).join('&');
  return `${basePath}${restPath}${query ? `?${query}` : ''}`;
}

/**
 * The same bound for HTTP: httpBatchLink sends the calls of one tick (its dispatch is a
 * `setTimeout(0)`) as batches of up to 50, and the server refuses a body over MAX_FRAME_BYTES. A
 * call is let through while this tick's calls stay within `maxBytes` (or none went yet); the rest
 * wait for a window that opens after the batch link's dispatch — two timer hops, because the
 * dispatch timer was set after this window's first one.
 */
class TickBudget {
  private used = 0;
  private window: Promise<void> | null = null;
  private closed = false;
  private readonly encoder = new TextEncoder();

  constructor(private readonly maxBytes: number) {}

  async admit(input: unknown): Promise<void> {
    const bytes = sizeOf(input, this.encoder);
    while (!this.closed) {
      const window = this.openWindow();
      if (this.used === 0 || this.used + bytes <= this.maxBytes) {
        this.used += bytes;
        return;
      }
      await window;
    }
  }

  private openWindow(): Promise<void> {
    return (this.window ??= new Promise<void>((resolve) => {
      setTimeout(() => setTimeout(() => {
        this.used = 0;
        this.window = null;
        resolve();
      }, 0), 0);
    }));
  }

  close(): void {
    this.closed = true;
  }
}
