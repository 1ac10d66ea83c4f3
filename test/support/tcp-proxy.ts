import { connect, createServer, type Socket } from 'node:net';

/**
 * A plain TCP proxy in front of one server, for tests that must cut a client's connection the
 * way a network does — a browser's included: Chromium's `context.setOffline(true)` does not close
 * an open WebSocket (it holds its frames), and a page served through request interception may
 * not open a WebSocket to 127.0.0.1 at all. Load the page from `http://127.0.0.1:<proxy>/…` and
 * everything it opens (page, scripts, WebSocket, SSE, HTTP calls) goes through here.
 *
 * `offline()` destroys every proxied connection both ways (no close frame, no FIN from the
 * server: the client learns it from the TCP close) and refuses new ones until `online()`.
 * With `blockWebSocket`, a connection whose first request asks for `Upgrade: websocket` is
 * answered 403 and closed; everything else passes.
 */
export interface TcpProxyOptions {
  host?: string;
  port: number;
  blockWebSocket?: boolean;
}

export interface TcpProxy extends AsyncDisposable {
  readonly port: number;
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string;
  /** Open client connections. */
  readonly size: number;
  /** WebSocket upgrades answered 403 so far (with `blockWebSocket`). */
  readonly refusedUpgrades: number;
  /** Connections refused while offline so far. */
  readonly refusedOffline: number;
  /** Cuts every connection and refuses new ones; returns how many were cut. */
  offline(): number;
  online(): void;
  close(): Promise<void>;
}

const HEADERS_END = '\r\n\r\n';
/** A first request whose headers never end within this many bytes is passed on unread. */
const MAX_HEAD_BYTES = 64 * 1024;

export async function startTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const host = options.host ?? '127.0.0.1';
  const open = new Set<Socket>();
  let isOffline = false;
  let refusedUpgrades = 0;
  let refusedOffline = 0;

  const track = (socket: Socket) => {
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
  };

  const pass = (downstream: Socket, head: Buffer) => {
    const upstream = connect(options.port, host);
    track(upstream);
    upstream.setNoDelay(true);
    if (head.length > 0) upstream.write(head);
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    upstream.once('close', () => downstream.destroy());
    downstream.once('close', () => upstream.destroy());
  };

  const server = createServer((downstream) => {
    downstream.setNoDelay(true);
    if (isOffline) {
      refusedOffline += 1;
      downstream.on('error', () => undefined);
      downstream.destroy();
      return;
    }
    track(downstream);
    if (!options.blockWebSocket) return pass(downstream, Buffer.alloc(0));
    // Read the first request's head, then decide: 403 for a WebSocket upgrade, else pass it on.
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf(HEADERS_END);
      if (end === -1 && head.length < MAX_HEAD_BYTES) return;
      downstream.off('data', onData);
      downstream.pause();
      const text = head.subarray(0, end === -1 ? head.length : end).toString('latin1');
      if (/^upgrade:[ \t]*websocket[ \t]*$/im.test(text)) {
        refusedUpgrades += 1;
        downstream.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 24\r\nConnection: close\r\n\r\nWebSockets blocked here\n');
        return;
      }
      pass(downstream, head);
      downstream.resume();
    };
    downstream.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  const port = address.port;

  const close = async () => {
    for (const socket of open) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    get size() {
      // Client-side sockets only: each proxied connection is two sockets here.
      return [...open].filter((s) => s.localPort === port).length;
    },
    get refusedUpgrades() {
      return refusedUpgrades;
    },
    get refusedOffline() {
      return refusedOffline;
    },
    offline() {
      isOffline = true;
      const cut = [...open].filter((s) => s.localPort === port).length;
      for (const socket of open) socket.destroy();
      return cut;
    },
    online() {
      isOffline = false;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}
