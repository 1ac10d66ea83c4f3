import { Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { Logger } from '../logger.ts';
import { Listeners } from '../util/listeners.ts';

/**
 * The node's two Redis connections: `cmd` for commands and scripts, `sub` for (sharded)
 * subscriptions. Both reconnect forever with capped, jittered backoff. While either is down the
 * node is `unavailable`: commands fail fast (no offline queue on `cmd`), /readyz answers 503,
 * and when both are back listeners of `up` resynchronise what the outage may have cost.
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
  readonly cmd: Redis;
  readonly sub: Redis;
  readonly events: Listeners<RedisConnectionsEvents>;
  private wasUp = false;
  /** When both connections stopped being ready: construction until the first connect. */
  private downSince: number | null = Date.now();
  /** The first connect failed and was logged (once); its success is then logged too. */
  private reportedUnreachable = false;
  private closed = false;
  /** REDIS_URL as it may be logged (password masked). */
  private readonly where: string;

  constructor(url: string, private readonly log: Logger, name: string) {
    this.where = redactUrl(url);
    this.events = new Listeners((error) => log.error({ err: error }, 'redis listener failed'));
    const base: RedisOptions = {
      connectionName: name,
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      // Forever, 50 ms doubling to 2 s, with jitter so a fleet does not reconnect in step.
      retryStrategy: (attempt) => Math.min(2000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2),
      reconnectOnError: () => false,
    };
    this.cmd = new Redis(url, { ...base, enableOfflineQueue: false, enableAutoPipelining: true });
    // The subscriber keeps its offline queue so ioredis re-subscribes every channel on reconnect.
    this.sub = new Redis(url, { ...base, enableOfflineQueue: true, maxRetriesPerRequest: null });
    for (const client of [this.cmd, this.sub]) {
      client.on('ready', () => this.update(null));
      client.on('close', () => this.update(null));
      client.on('end', () => this.update(null));
      client.on('error', (error: Error) => this.update(error));
    }
  }

  /** Both connections are ready. */
  get available(): boolean {
    return this.cmd.status === 'ready' && this.sub.status === 'ready';
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

  async close(): Promise<void> {
    this.closed = true;
    // QUIT waits behind the offline queue, so only a ready connection gets one (a node told to
    // stop during an outage must not hang); the others are simply dropped.
    const quit = (client: Redis) => (client.status === 'ready' ? Promise.race([client.quit(), new Promise((r) => setTimeout(r, 1000).unref())]) : Promise.resolve());
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

export function unavailable(): DomainError {
  return new DomainError('UNAVAILABLE', 'the cluster store (Redis) is unreachable; retry shortly', 1000);
}
