/**
 * The WebSocket transport: one socket for everything (wsLink), so the server knows the sending
 * connection. A frame budget keeps frames under MAX_FRAME_BYTES, the server's connection-level
 * refusals are read off the socket, and each socket's life is the client's connection state:
 * connected once the server has accepted its token (see AUTH_PROBE), down when it closes.
 * The WebSocket class is injected (`ws` in Node, the platform's in browsers): this module
 * imports no Node built-in.
 */
import { createTRPCClient, createWSClient, TRPCClientError, wsLink, type TRPCLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../src/transport/router.ts';
import { shouldReconnect } from '../../src/transport/close-codes.ts';
import { checkedUrl, DEFAULT_FRAME_BYTES, resolveUrl, sizeOf, wsUrlOf, type ChatTransport, type TransportHooks, type TransportOptions, type WebSocketClass } from './transport.ts';

const defaultRetry = (attempt: number) => (attempt === 0 ? 0 : Math.min(250 * 2 ** (attempt - 1), 5000));

/**
 * A socket is open before the server has looked at its token: the stock client sends
 * `connectionParams` after 'open', the server checks the token asynchronously and, when it is
 * bad, answers `{"id":null,"error":…}` and closes. PING is answered in any phase, and tRPC's
 * protocol has no "accepted" message. So, right after its connectionParams, every socket carries
 * this one plain query (the server runs no call before authentication, and answers it — or any
 * call — only once the token is accepted; a refused socket gets the `id: null` refusal first).
 * It goes on the socket itself, not through the wsClient: no request of the client's is made,
 * nothing waits for it, no call of the application's can fail or time out with it, it leaves no
 * trace when the socket closes first, and it is its own small frame outside the frame budget.
 * Its string id never matches the wsClient's numeric ones, which ignores its answer. It asks
 * `session.me`, which reads nothing but the token: a mass reconnect costs the server no store reads.
 */
const AUTH_PROBE_ID = 'chat-client:accepted?';
const AUTH_PROBE = JSON.stringify({ id: AUTH_PROBE_ID, method: 'query', params: { path: 'session.me' } });
const CONNECTION_PARAMS_PREFIX = '{"method":"connectionParams"';

/**
 * Whether a frame shows the server accepted the socket's token: an answer to AUTH_PROBE, or any
 * result (a call's, a subscription's `started` or data). An error answer to another call does
 * not count: a request the server cannot parse is answered in any phase.
 */
function showsAccepted(data: string): boolean {
  if (!data.startsWith('{"id":') || data.startsWith('{"id":null')) return false;
  try {
    const frame = JSON.parse(data) as { id?: unknown; result?: unknown };
    return frame.id === AUTH_PROBE_ID || frame.result !== undefined;
  } catch {
    return false;
  }
}

export type WebSocketTransport = ChatTransport & { link: TRPCLink<AppRouter> };

/** `onSocket` is told of every socket as it is made (auto watches them until it has decided). */
export function webSocketTransport(options: TransportOptions, hooks: TransportHooks, clientId: string | null, onSocket?: (ws: WebSocket) => void): WebSocketTransport {
  const BaseWebSocket: WebSocketClass | undefined = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketClass }).WebSocket;
  if (!BaseWebSocket) throw new TypeError('the chat client needs a WebSocket class: pass `WebSocket` (e.g. from the `ws` package), use a runtime that has one, or `transport: \'sse\'`');
  /**
   * The server's latest connection-level refusal (`{"id":null,"error":…}`: UNAUTHORIZED for a bad
   * token, SERVICE_UNAVAILABLE while draining). The stock client drops that frame, and a request
   * flushed just as the server closes the refused socket fails with a bare "connection is not
   * open"; `explain` gives the application the real reason instead.
   */
  let refusal: TRPCClientError<AppRouter> | null = null;
  const budget = new FrameBudget(options.maxFrameBytes ?? DEFAULT_FRAME_BYTES);
  let lastUrl: string | undefined;
  /**
   * The socket (its number) whose acceptance the state 'connected' stands for, until it closes
   * (0: none): the newest one, or — while a server-asked reconnect (token refresh, drain) opens
   * its successor — the old one, which still serves calls. Its close is then a loss unless the
   * successor is open (calls go there; it becomes connected when accepted, or is refused).
   */
  let connectedSocket = 0;
  let sockets = 0;
  class ObservedWebSocket extends (BaseWebSocket as typeof WebSocket) {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      budget.socket = this;
      const number = ++sockets;
      onSocket?.(this);
      /** What went wrong with this socket, for the state: `ws` gives the cause (ECONNREFUSED…), browsers nothing. */
      let failure: Error | null = null;
      /** The server accepted this socket's token / refused this socket (an `id: null` error first). */
      let accepted = false;
      let refusedHere = false;
      this.addEventListener('open', () => budget.changed());
      this.addEventListener('error', (event: Event) => {
        const cause = (event as Event & { error?: unknown; message?: unknown }).error;
        const message = (event as Event & { message?: unknown }).message;
        failure = cause instanceof Error ? cause : new Error(typeof message === 'string' && message !== '' ? message : 'WebSocket error');
      });
      this.addEventListener('close', (event: CloseEvent) => {
        budget.changed();
        const heldState = connectedSocket === number;
        if (heldState) connectedSocket = 0;
        if (hooks.isClosed()) return;
        if (budget.socket !== this && (!heldState || budget.socket?.readyState === 1)) return; // not the current socket, nor a loss
        const reason = failure ?? new Error(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`);
        if (!shouldReconnect(event.code)) return; // terminal: closedForGood says it (onClose below)
        hooks.state('down', reason);
      });
      this.addEventListener('message', (event: MessageEvent) => {
        const data: unknown = event.data;
        if (typeof data !== 'string') return;
        if (data.startsWith('{"id":null,"error"')) {
          if (!accepted) refusedHere = true; // the server answers nothing else before it
          try {
            refusal = TRPCClientError.from({ error: superjson.deserialize((JSON.parse(data) as { error: Parameters<typeof superjson.deserialize>[0] }).error) });
          } catch {
            return; // not a frame we understand: leave the stock error as it is
          }
          // Refused for good: say so once and stop, rather than reconnect with the same token.
          if (refusal.data?.code === 'UNAUTHORIZED') hooks.refused(refusal);
        } else {
          if (refusal && data.startsWith('{"id":')) refusal = null; // answered normally again
          if (!accepted && !refusedHere && showsAccepted(data)) {
            accepted = true;
            // Only the newest socket speaks for the state (an older one is being replaced).
            if (budget.socket === this && !hooks.isClosed()) {
              connectedSocket = number;
              hooks.state('connected', null);
            }
          }
        }
      });
    }

    override send(data: Parameters<WebSocket['send']>[0]): void {
      super.send(data);
      if (data === 'PING' || data === 'PONG') return;
      budget.sent();
      if (typeof data === 'string' && data.startsWith(CONNECTION_PARAMS_PREFIX)) super.send(AUTH_PROBE);
    }
  }

  const wsClient = createWSClient({
    url: async () => {
      try {
        lastUrl = wsUrlOf(checkedUrl(await resolveUrl(options.url)));
      } catch (error) {
        hooks.state('down', error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      return lastUrl;
    },
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
  return {
    link,
    trpc: createTRPCClient<AppRouter>({ links: [link] }),
    kind: 'websocket',
    clientId: clientId ?? undefined,
    get url() {
      return lastUrl ?? (typeof options.url === 'string' ? wsUrlOf(options.url) : undefined);
    },
    admit: (input) => budget.admit(input),
    explain: (error) => (refusal && !(error instanceof TRPCClientError && error.data) ? refusal : error),
    async close() {
      budget.close();
      await wsClient.close();
    },
  };
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
