import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import type { WsTransport } from '../transport/ws/transport.ts';

export interface DrainParts {
  config: Pick<Config, 'shutdownDrainMs'>;
  log: Logger;
  service: RealtimeService;
  ws: WsTransport;
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
 * 3. the rest of the drain: clients get the tRPC reconnect notice, staggered over that time so
 *    they do not all land on the other nodes at once, and move (resuming by event id);
 * 4. whoever is still connected is closed with code 4000 (reconnect).
 */
export async function drain(parts: DrainParts): Promise<void> {
  const { config, log, service, ws } = parts;
  parts.startDraining();
  service.beginShutdown();
  const started = Date.now();
  log.info({ connections: ws.connectionCount, pendingAcks: service.figures.pendingAckCount(), drainMs: config.shutdownDrainMs }, 'draining');
  await waitFor(() => service.figures.pendingAckCount() === 0, config.shutdownDrainMs / 2);
  service.flushAcks();
  const left = Math.max(0, config.shutdownDrainMs - (Date.now() - started));
  const notices = ws.staggerReconnectNotices(left / 2);
  await waitFor(() => ws.connectionCount === 0, left);
  notices.cancel();
  ws.closeAll('shutdown');
  await waitFor(() => ws.connectionCount === 0, 1000);
  ws.terminateAll();
  await service.close();
  for (const release of parts.release) await release();
  log.info('closed');
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
}
