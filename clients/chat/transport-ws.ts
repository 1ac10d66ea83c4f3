/**
 * The WebSocket transport: one socket for everything (wsLink), so the server knows the sending
 * connection. A frame budget keeps frames under MAX_FRAME_BYTES, the server's connection-level
 * refusals are read off the socket, and the socket's open/close/error events are the client's
 * connection state. The WebSocket class is injected (`ws` in Node, the platform's in browsers):
 * this module imports no Node built-in.
 */
import { createTRPCClient, createWSClient, TRPCClientError, wsLink, type TRPCLink } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../../src/transport/router.ts';
import { shouldReconnect } from '../../src/transport/close-codes.ts';
import { checkedUrl, DEFAULT_FRAME_BYTES, resolveUrl, sizeOf, wsUrlOf, type ChatTransport, type TransportHooks, type TransportOptions, type WebSocketClass } from './transport.ts';

const defaultRetry = (attempt: number) => (attempt === 0 ? 0 : Math.min(250 * 2 ** (attempt - 1), 5000));

export type WebSocketTransport = ChatTransport & { link: TRPCLink<AppRouter> };

export function webSocketTransport(options: TransportOptions, hooks: TransportHooks, clientId: string | null, onFirstSocket?: (ws: WebSocket) => void): WebSocketTransport {
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
  let firstSocket = true;
  let lastUrl: string | undefined;
  class ObservedWebSocket extends (BaseWebSocket as typeof WebSocket) {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      budget.socket = this;
      if (firstSocket) {
        firstSocket = false;
        onFirstSocket?.(this);
      }
      /** What went wrong with this socket, for the state: `ws` gives the cause (ECONNREFUSED…), browsers nothing. */
      let failure: Error | null = null;
      this.addEventListener('open', () => {
        budget.changed();
        if (budget.socket === this) hooks.state('connected', null);
      });
      this.addEventListener('error', (event: Event) => {
        const cause = (event as Event & { error?: unknown; message?: unknown }).error;
        const message = (event as Event & { message?: unknown }).message;
        failure = cause instanceof Error ? cause : new Error(typeof message === 'string' && message !== '' ? message : 'WebSocket error');
      });
      this.addEventListener('close', (event: CloseEvent) => {
        budget.changed();
        if (hooks.isClosed() || budget.socket !== this) return;
        const reason = failure ?? new Error(`WebSocket closed (${event.code}${event.reason ? ` ${event.reason}` : ''})`);
        if (!shouldReconnect(event.code)) return; // terminal: closedForGood says it (onClose below)
        hooks.state('down', reason);
      });
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
