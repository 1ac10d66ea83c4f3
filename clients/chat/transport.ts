/**
 * How the typed chat client reaches the server: the tRPC links and what each transport needs
 * around them. index.ts (join, send, acks…) sees one `ChatTransport` whatever the wire.
 *
 *   websocket  one socket for everything (wsLink); the server knows the sending connection. A
 *              frame budget keeps frames under MAX_FRAME_BYTES, and the server's connection-level
 *              refusals are read off the socket.
 *   sse        `conversation.events` over Server-Sent Events (httpSubscriptionLink), one stream per
 *              joined room, everything else over HTTP (httpBatchLink). The token goes as an
 *              `Authorization: Bearer` header on every request and every stream (re)connect —
 *              never in a URL. Sends and streams carry one `clientId` per client, so a send skips
 *              the client's own streams as it skips its own socket over WebSocket.
 *   auto       WebSocket first; when the first socket cannot open (refused, closed before it
 *              opened, or not open within `autoFallbackMs`), SSE for the rest of the client's
 *              life. A deferring link holds calls until the choice is made.
 */
import { createTRPCClient, createWSClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError, wsLink, type OperationLink, type TRPCClient, type TRPCLink } from '@trpc/client';
import { observable, type Unsubscribable } from '@trpc/server/observable';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import { WebSocket as NodeWebSocket } from 'ws';
import type { AppRouter } from '../../src/transport/router.ts';
import { shouldReconnect } from '../../src/transport/close-codes.ts';

export type TransportKind = 'websocket' | 'sse';

export interface TransportOptions {
  /**
   * `ws://host:port/trpc`, or a function asked again on every (re)connection — to move to
   * another node without a load balancer, say. An `http(s)://` URL is accepted too; over SSE
   * ws→http and wss→https.
   */
  url: string | (() => string | Promise<string>);
  /**
   * `websocket` (default): one WebSocket. `sse`: events over Server-Sent Events (one stream per
   * joined conversation), calls over HTTP. `auto`: WebSocket, or SSE for the client's life when
   * the first WebSocket cannot open (see `autoFallbackMs`); `client.transport` says which.
   */
  transport?: 'websocket' | 'sse' | 'auto';
  /** `auto`: how long the first WebSocket may take to open before the client uses SSE (default 3000). */
  autoFallbackMs?: number;
  /** WebSocket reconnect back-off (default: 0, then 250 ms doubling up to 5 s); SSE streams use the server's `retry`. */
  retryDelayMs?: (attempt: number) => number;
  /**
   * Largest frame (WebSocket) or batch body (HTTP) the client lets the tRPC link build (it puts
   * every call of one tick into one): calls beyond it wait for the next one. Keep it under the
   * server's MAX_FRAME_BYTES (default 1 MiB); default 256 KiB.
   */
  maxFrameBytes?: number;
}

/** What the transport asks of the client. */
export interface TransportHooks {
  /** The token for the next connection or request (a fresh one each time when `token` is a function). */
  token(): Promise<string>;
  /** The server refused this client for good (UNAUTHORIZED); called once pending calls have their errors. */
  refused(error: TRPCClientError<AppRouter>): void;
  /** The server closed the socket with a terminal code (4500–4999). WebSocket only. */
  closedForGood(code: number): void;
  isClosed(): boolean;
}

export interface ChatTransport {
  readonly trpc: TRPCClient<AppRouter>;
  /** The transport in use; undefined while `auto` has not decided yet. */
  readonly kind: TransportKind | undefined;
  /** The id this client names itself by in events inputs and sends (SSE and auto; none over WebSocket alone). */
  readonly clientId: string | undefined;
  /** Resolves when a call of this input may go (the WebSocket's frame budget, the HTTP batch's bytes). */
  admit(input: unknown): Promise<void>;
  /** The server's reason for a bare connection error, when it gave one. */
  explain(error: unknown): unknown;
  close(): Promise<void>;
}

/**
 * The server refuses an HTTP batch of more than MAX_HTTP_BATCH calls (default 50) whole; the
 * batch link splits one tick's calls into batches of at most this many.
 */
const HTTP_BATCH_MAX_ITEMS = 50;
/** GET batches (queries) carry their inputs in the URL; Node's default header limit is 16 KiB. */
const HTTP_MAX_URL_LENGTH = 8000;
const DEFAULT_FRAME_BYTES = 256 * 1024;

const defaultRetry = (attempt: number) => (attempt === 0 ? 0 : Math.min(250 * 2 ** (attempt - 1), 5000));

export function createTransport(options: TransportOptions, hooks: TransportHooks): ChatTransport {
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

/** `base` (which may carry a query) + `rest` (a path and maybe a query): `…/trpc?a=1` + `/x?batch=1` → `…/trpc/x?a=1&batch=1`. */
function rebase(base: string, rest: string): string {
  const [basePath = '', baseQuery] = base.split('?', 2);
  const [restPath = '', restQuery] = rest.split('?', 2);
  const query = [baseQuery, restQuery].filter(Boolean).join('&');
  return `${basePath}${restPath}${query ? `?${query}` : ''}`;
}

const resolveUrl = async (url: TransportOptions['url']): Promise<string> => (typeof url === 'function' ? url() : url);

function randomClientId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}

function webSocketTransport(options: TransportOptions, hooks: TransportHooks, clientId: string | null, onFirstSocket?: (ws: WebSocket) => void) {
  // Node 20 has no global WebSocket: use `ws` there, the platform's one in browsers.
  const BaseWebSocket = (globalThis as { WebSocket?: typeof WebSocket }).WebSocket ?? (NodeWebSocket as unknown as typeof WebSocket);
  /**
   * The server's latest connection-level refusal (`{"id":null,"error":…}`: UNAUTHORIZED for a bad
   * token, SERVICE_UNAVAILABLE while draining). The stock client drops that frame, and a request
   * flushed just as the server closes the refused socket fails with a bare "connection is not
   * open"; `explain` gives the application the real reason instead.
   */
  let refusal: TRPCClientError<AppRouter> | null = null;
  const budget = new FrameBudget(options.maxFrameBytes ?? DEFAULT_FRAME_BYTES);
  let firstSocket = true;
  class ObservedWebSocket extends BaseWebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      budget.socket = this;
      if (firstSocket) {
        firstSocket = false;
        onFirstSocket?.(this);
      }
      this.addEventListener('open', () => budget.changed());
      this.addEventListener('close', () => budget.changed());
      this.addEventListener('message', (event: MessageEvent) => {
        const data: unknown = event.data;
        if (typeof data !== 'string') return;
        if (data.startsWith('{"id":null,"error"')) {
          try {
            refusal = TRPCClientError.from({ error: superjson.deserialize((JSON.parse(data) as { error: Parameters<typeof superjson.deserialize>[0] }).error) });
          } catch {
            return; // not a frame we understand: leave the stock error as it is
          }
          // Refused for good: say so once and stop, rather than reconnect with the same token.
          if (refusal.data?.code === 'UNAUTHORIZED') hooks.refused(refusal);
        } else if (refusal && data.startsWith('{"id":')) {
          refusal = null; // answered normally again
        }
      });
    }

    override send(data: Parameters<WebSocket['send']>[0]): void {
      super.send(data);
      if (data !== 'PING' && data !== 'PONG') budget.sent();
    }
  }

  const wsClient = createWSClient({
    url: async () => wsUrlOf(await resolveUrl(options.url)),
    WebSocket: ObservedWebSocket,
    connectionParams: async () => ({ token: await hooks.token() }),
    retryDelayMs: options.retryDelayMs ?? defaultRetry,
    keepAlive: { enabled: true, intervalMs: 20_000, pongTimeoutMs: 5_000 },
    onClose: (cause) => {
      const code = cause?.code ?? 1005;
      if (!hooks.isClosed() && !shouldReconnect(code)) hooks.closedForGood(code);
    },
  });
  const link = wsLink<AppRouter>({ client: wsClient, transformer: superjson });
  const transport: ChatTransport & { link: TRPCLink<AppRouter> } = {
    link,
    trpc: createTRPCClient<AppRouter>({ links: [link] }),
    kind: 'websocket',
    clientId: clientId ?? undefined,
    admit: (input) => budget.admit(input),
    explain: (error) => (refusal && !(error instanceof TRPCClientError && error.data) ? refusal : error),
    async close() {
      budget.close();
      await wsClient.close();
    },
  };
  return transport;
}

function sseTransport(options: TransportOptions, hooks: TransportHooks, clientId: string) {
  const httpUrl = async () => httpUrlOf(await resolveUrl(options.url));
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
        fetch: async (url, init) => fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${await hooks.token()}` } }),
      }),
    }),
    false: httpBatchLink<AppRouter>({
      url: placeholder,
      transformer: superjson,
      maxItems: HTTP_BATCH_MAX_ITEMS,
      maxURLLength: HTTP_MAX_URL_LENGTH,
      headers: async () => ({ Authorization: `Bearer ${await hooks.token()}` }),
      fetch: async (url, init) => fetch(rebase(await httpUrl(), String(url).slice(placeholder.length)), init as RequestInit),
    }),
  });
  /** Open streams, ended (and completed, as a closed wsClient completes its subscriptions) by close(). */
  const streams = new Set<() => void>();
  // A refusal for good (missing, invalid or expired token) on any call or stream ends the client,
  // as a refused socket does: the fresh token was refused, retrying cannot help.
  const watch: TRPCLink<AppRouter> = () => ({ op, next }) =>
    observable((observer) => {
      let done = false;
      const settle = () => {
        done = true;
        streams.delete(end);
      };
      const end = () => {
        settle();
        subscription.unsubscribe();
        observer.complete();
      };
      const subscription = next(op).subscribe({
        next: (value) => observer.next(value),
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
  const transport: ChatTransport & { links: TRPCLink<AppRouter>[] } = {
    links,
    trpc: createTRPCClient<AppRouter>({ links }),
    kind: 'sse',
    clientId,
    admit: (input) => budget.admit(input),
    explain: (error) => error,
    async close() {
      budget.close();
      for (const end of [...streams]) end();
    },
  };
  return transport;
}

function autoTransport(options: TransportOptions, hooks: TransportHooks): ChatTransport {
  const clientId = randomClientId();
  let chosen: ChatTransport | null = null;
  let decide!: (outcome: 'websocket' | 'sse' | 'closed') => void;
  const decided = new Promise<'websocket' | 'sse' | 'closed'>((resolve) => (decide = resolve));
  let probe: WebSocket | null = null;
  const ws = webSocketTransport(options, hooks, clientId, (socket) => {
    probe = socket;
    socket.addEventListener('open', () => decide('websocket'));
    socket.addEventListener('close', () => decide('sse'));
  });
  const timer = setTimeout(() => decide('sse'), options.autoFallbackMs ?? 3000);
  const choice = decided.then((outcome): { transport: ChatTransport; links: TRPCLink<AppRouter>[] } => {
    clearTimeout(timer);
    if (outcome === 'websocket') {
      chosen = ws;
      return { transport: ws, links: [ws.link] };
    }
    // No WebSocket: stop trying it — the socket still opening too — and use SSE from now on.
    void ws.close().catch(() => undefined);
    (probe as WebSocket | null)?.close();
    if (outcome === 'closed') throw new Error('the chat client is closed');
    const sse = sseTransport(options, hooks, clientId);
    chosen = sse;
    return { transport: sse, links: sse.links };
  });
  choice.catch(() => undefined);
  const trpc = createTRPCClient<AppRouter>({ links: [deferredLink(choice.then((c) => c.links))] });
  return {
    trpc,
    get kind() {
      return chosen?.kind;
    },
    clientId,
    async admit(input) {
      return (chosen ?? (await choice).transport).admit(input);
    },
    explain: (error) => (chosen ? chosen.explain(error) : error),
    async close() {
      decide('closed'); // calls still held fail as closed
      await choice.catch(() => undefined);
      await chosen?.close();
    },
  };
}

/**
 * A link that holds every operation until `chain` is known, then runs it through that chain
 * (which ends in a terminating link). Keeps `client.trpc` usable before `auto` has decided.
 */
function deferredLink(chain: Promise<TRPCLink<AppRouter>[]>): TRPCLink<AppRouter> {
  return (runtime) => {
    let ready: OperationLink<AppRouter> | null = null;
    const readying = chain.then((links) => (ready = compose(links.map((link) => link(runtime)))));
    return ({ op }) =>
      observable((observer) => {
        let subscription: Unsubscribable | null = null;
        let cancelled = false;
        const start = (run: OperationLink<AppRouter>) => {
          if (!cancelled) subscription = run({ op, next: () => { throw new Error('unreachable: the chain ends in a terminating link'); } }).subscribe(observer);
        };
        if (ready) start(ready);
        else readying.then(start, (error: unknown) => observer.error(TRPCClientError.from(error instanceof Error ? error : new Error(String(error)))));
        return () => {
          cancelled = true;
          subscription?.unsubscribe();
        };
      });
  };
}

/** Operation links as one: each one's `next` is the following one. */
function compose(links: OperationLink<AppRouter>[]): OperationLink<AppRouter> {
  return ({ op }) => {
    const run = (index: number, current: typeof op): ReturnType<OperationLink<AppRouter>> =>
      links[index]!({ op: current, next: (nextOp) => run(index + 1, nextOp) });
    return run(0, op);
  };
}

/** A call's size on the wire, give or take its envelope. */
function sizeOf(input: unknown, encoder: TextEncoder): number {
  return 160 + (input === null || input === undefined ? 0 : encoder.encode(JSON.stringify(superjson.serialize(input))).length);
}

/**
 * Keeps the frames the stock wsLink builds under a size: it sends every call made while one
 * frame is being gathered (the same tick, or all that waited for a reconnect) as one frame, and
 * a server refuses a frame over its MAX_FRAME_BYTES. A call is let through while the frame being
 * gathered stays within `maxBytes` (or is empty); later calls wait until that frame has left, and
 * nothing is let through while the socket is not open, so an offline backlog leaves in pieces.
 */
class FrameBudget {
  socket: WebSocket | null = null;
  private used = 0;
  private waiters: Array<() => void> = [];
  private closed = false;
  private readonly encoder = new TextEncoder();

  constructor(private readonly maxBytes: number) {}

  async admit(input: unknown): Promise<void> {
    const bytes = sizeOf(input, this.encoder);
    while (!this.closed) {
      if (this.socket?.readyState === 1 && (this.used === 0 || this.used + bytes <= this.maxBytes)) {
        this.used += bytes;
        return;
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** A frame left: the next one starts empty. */
  sent(): void {
    this.used = 0;
    this.changed();
  }

  /** The socket opened, closed or sent: waiting calls look again. */
  changed(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  close(): void {
    this.closed = true;
    this.changed();
  }
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
