import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import type { CloseReason } from '../service/realtime-service.ts';

/** What the drain needs of a transport (WebSocket, SSE): its connections, told to move and then closed. */
export interface DrainableTransport {
  readonly connectionCount: number;
  /** Asks every connection to move (reconnect elsewhere and resume) at a random moment within the window. */
  staggerReconnectNotices(windowMs: number): { cancel(): void };
  closeAll(reason: CloseReason): void;
  terminateAll(): void;
}

export interface DrainParts {
  config: Pick<Config, 'shutdownDrainMs'>;
  log: Logger;
  service: RealtimeService;
  transports: DrainableTransport[];
  /** Readiness 503 and upgrades refused, at once. */
  startDraining(): void;
  /** Everything else to let go of once the clients are gone, in order (cluster, admin plane, HTTP server). */
  release: Array<() => Promise<void> | void>;
}

/**
 * Graceful close (SIGTERM/SIGINT in `npm start`), within SHUTDOWN_DRAIN_MS:
 * 1. at once: readiness 503, new upgrades refused, no new connections;
 * 2. up to half the drain: pending acks keep their deadlines while the clients are still here to
 *    ack, then what is left is reported as it stands (senders still connected get their reports
 *    live);
 * 3. the rest of the drain: WebSocket clients get the tRPC reconnect notice and SSE streams are
 *    ended (a retryable error: the client reconnects), staggered over that time so they do not
 *    all land on the other nodes at once, and move (resuming by event id);
 * 4. whoever is still connected is closed (WebSocket code 4000: reconnect).
 */
export async function drain(parts: DrainParts): Promise<void> {
  const { config, log, service, transports } = parts;
  const open = () => transports.reduce((sum, t) => sum + t.connectionCount, 0);
  parts.startDraining();
  service.beginShutdown();
  const started = Date.now();
  log.info({ connections: open(), pendingAcks: service.figures.pendingAckCount(), drainMs: config.shutdownDrainMs }, 'draining');
  await waitFor(() => service.figures.pendingAckCount() === 0, config.shutdownDrainMs / 2);
  service.flushAcks();
  const left = Math.max(0, config.shutdownDrainMs - (Date.now() - started));
  const notices = transports.map((t) => t.staggerReconnectNotices(left / 2));
  await waitFor(() => open() === 0, left);
  for (const n of notices) n.cancel();
  for (const t of transports) t.closeAll('shutdown');
  await waitFor(() => open() === 0, 1000);
  for (const t of transports) t.terminateAll();
  await service.close();
  for (const release of parts.release) await release();
  log.info('closed');
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
