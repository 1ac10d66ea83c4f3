import { redactUrl } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { Logger } from '../logger.ts';
import { Listeners } from '../util/listeners.ts';
import { createRedisClients, type RedisClient, type RedisTarget } from './redis-clients.ts';

/**
 * The node's two Redis clients: `cmd` for commands and scripts, `sub` for (sharded)
 * subscriptions, to one Redis or to a Redis Cluster (redis-clients.ts). Both reconnect forever
 * with capped, jittered backoff. While either is down the node is `unavailable`: commands fail
 * fast (no offline queue on `cmd`), /readyz answers 503, and when both are back listeners of `up`
 * resynchronise what the outage may have cost. On a Redis Cluster, a probe every
 * PROBE_INTERVAL_MS also counts the node unavailable while any master (or the subscriber
 * connection to it) is down: a shard outage is handled as an outage of the whole store, which
 * keeps the one recovery path (gap fill, presence re-assertion, outbox) that a Redis outage has.
 *
 * What the operator sees: a Redis not reachable at start is one error line (URL with its password
 * masked, the error code, /readyz 503 until it is) and one info line once it is; a Redis that was
 * up and goes away is one error line, and one warn line when it is back. Never one per retry.
 */
export interface RedisConnectionsEvents extends Record<string, unknown> {
  up: { downForMs: number };
  down: { error: string | null };
}

export class RedisConnections {
  readonly cmd: RedisClient;
  readonly sub: RedisClient;
  /** What the clients' status says nothing about (Redis Cluster shards); true without a probe. */
  private probeOk: boolean;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;
  private probeFailures = 0;
  private readonly clients: ReturnType<typeof createRedisClients>;
  readonly events: Listeners<RedisConnectionsEvents>;
  private wasUp = false;
  /** When both connections stopped being ready: construction until the first connect. */
  private downSince: number | null = Date.now();
  /** The first connect failed and was logged (once); its success is then logged too. */
  private reportedUnreachable = false;
  private closed = false;
  /** When a full Redis was last logged (one error line a minute). */
  private fullReportedAt = 0;
  /** REDIS_URL as it may be logged (password masked). */
  private readonly where: string;

  constructor(target: RedisTarget | string, private readonly log: Logger, name: string) {
    const resolved = typeof target === 'string' ? { url: target, cluster: false } : target;
    this.where = `${redactUrl(resolved.url)}${resolved.cluster ? ' (Redis Cluster seed)' : ''}`;
    this.events = new Listeners((error) => log.error({ err: error }, 'redis listener failed'));
    this.clients = createRedisClients(resolved, name);
    this.cmd = mappingStoreErrors(this.clients.cmd, () => this.reportFull());
    this.sub = this.clients.sub;
    this.probeOk = this.clients.probe === null;
    for (const client of [this.cmd, this.sub]) {
      client.on('ready', () => this.update(null));
      client.on('close', () => this.update(null));
      client.on('end', () => this.update(null));
      client.on('error', (error: Error) => this.update(error));
    }
    if (this.clients.probe) {
      const probe = this.clients.probe;
      this.probeTimer = setInterval(() => void this.runProbe(probe), PROBE_INTERVAL_MS);
      this.probeTimer.unref();
      for (const client of [this.cmd, this.sub]) client.on('ready', () => void this.runProbe(probe));
    }
  }

  private async runProbe(probe: () => Promise<void>): Promise<void> {
    if (this.probing || this.closed) return;
    this.probing = true;
    let error: Error | null = null;
    try {
      await probe();
    } catch (caught) {
      error = caught instanceof Error ? caught : new Error(String(caught));
    } finally {
      this.probing = false;
    }
    // Down only after PROBE_FAILURES_DOWN failures in a row: a probe that is merely slow once
    // (a busy machine) must not turn away every client; back up at the first success.
    this.probeFailures = error === null ? 0 : this.probeFailures + 1;
    const ok = error === null || (this.probeOk && this.probeFailures < PROBE_FAILURES_DOWN);
    if (ok === this.probeOk) return;
    this.probeOk = ok;
    this.update(error && Object.assign(error, { code: 'SHARD_DOWN' }));
  }

  /** A round trip on every subscriber connection: subscriptions sent before it are in effect. */
  pingSubscribers(): Promise<void> {
    return this.clients.pingSubscribers();
  }

  /** Both connections are ready. */
  get available(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready' && this.probeOk;
  }

  /** Throws a retryable UNAVAILABLE unless Redis can be used now. */
  assertAvailable(): void {
    if (!this.available) throw unavailable();
  }

  /** Resolves once both connections are ready (or rejects after `timeoutMs`). */
  async whenAvailable(timeoutMs: number): Promise<void> {
    if (this.available) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`Redis not reachable within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.events.on('up', () => {
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /** A command was refused because Redis is at maxmemory: one error line a minute. */
  private reportFull(): void {
    const now = Date.now();
    if (now - this.fullReportedAt < 60_000) return;
    this.fullReportedAt = now;
    this.log.error({ redis: this.where }, 'Redis is full (OOM at maxmemory): writes are refused with a retryable SERVICE_UNAVAILABLE until it has room; raise maxmemory or find what fills it');
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.probeTimer) clearInterval(this.probeTimer);
    // QUIT waits behind the offline queue, so only a ready connection gets one (a node told to
    // stop during an outage must not hang); the others are simply dropped.
    const quit = (client: RedisClient) => (client.status === 'ready' ? Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1000).unref())]) : Promise.resolve());
    await Promise.allSettled([quit(this.cmd), quit(this.sub)]);
    this.cmd.disconnect();
    this.sub.disconnect();
  }

  private update(error: (Error & { code?: string }) | null): void {
    if (this.closed) return;
    const up = this.available;
    const code = error ? (error.code ?? error.message) : undefined;
    if (up && this.downSince !== null) {
      const downForMs = Date.now() - this.downSince;
      this.downSince = null;
      if (this.wasUp) this.log.warn({ redis: this.where, downForMs }, 'redis reachable again; resynchronising');
      else this.log.info({ redis: this.where, ...(this.reportedUnreachable && { waitedMs: downForMs }) }, `redis reachable at ${this.where}; /readyz answers 200`);
      this.wasUp = true;
      this.events.emit('up', { downForMs });
    } else if (!up && !this.wasUp && error && !this.reportedUnreachable) {
      // Never connected yet: not an outage of a Redis that was up (no `down`), but say so once.
      this.reportedUnreachable = true;
      this.log.error(
        { redis: this.where, code },
        `redis unreachable at ${this.where} (${code}); /readyz answers 503 and cluster calls fail until it is reachable; retrying`,
      );
    } else if (!up && this.downSince === null) {
      this.downSince = Date.now();
      this.log.error({ redis: this.where, ...(error && { code, error: error.message }) }, 'redis unreachable; serving local members only until it is back');
      this.events.emit('down', { error: error?.message ?? null });
    }
  }
}

/** How often a Redis Cluster's shards are checked (a PING per master, CLUSTER INFO). */
const PROBE_INTERVAL_MS = 500;

/** Probe failures in a row after which the node counts Redis as unavailable (~1 s at 500 ms). */
const PROBE_FAILURES_DOWN = 2;

export function unavailable(): DomainError {
  return new DomainError('UNAVAILABLE', 'the cluster store (Redis) is unreachable; retry shortly', 1000);
}

/** A Redis at `maxmemory` under `noeviction` refuses writes with this reply. */
function isOutOfMemory(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('OOM ');
}

export function storeFull(): DomainError {
  return new DomainError('UNAVAILABLE', 'the cluster store (Redis) is full (maxmemory); retry shortly', 1000);
}

/**
 * `client` with every command's OOM refusal turned into a retryable UNAVAILABLE (`storeFull`)
 * instead of an unknown error the transports answer with a 500. A full Redis is an outage of
 * writes, not a bug: the caller can retry, and the operator is told once a minute (`onFull`).
 * Only promises are touched; everything else (events, status, pipelines) is the client's own.
 */
function mappingStoreErrors(client: RedisClient, onFull: () => void): RedisClient {
  const mapped = new Map<PropertyKey, unknown>();
  return new Proxy(client, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      let wrapper = mapped.get(property);
      if (wrapper === undefined) {
        wrapper = function (this: unknown, ...args: unknown[]) {
          const result: unknown = (Reflect.get(target, property, target) as (...a: unknown[]) => unknown).apply(target, args);
          if (!(result instanceof Promise)) return result;
          return result.catch((error: unknown) => {
            if (!isOutOfMemory(error)) throw error;
            onFull();
            throw storeFull();
          });
        };
        mapped.set(property, wrapper);
      }
      return wrapper;
    },
  });
}
