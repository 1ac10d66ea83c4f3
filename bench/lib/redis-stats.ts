/**
 * The bench's own view of the Redis server behind workload G: whether it is reachable, what it
 * did during a measured phase (`INFO commandstats` call counts and `INFO cpu` time, before and
 * after), whether anyone else was using it meanwhile, and removing a run's keys afterwards
 * (SCAN MATCH <prefix>* + UNLINK). It never touches keys outside the run's prefix.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** Counters read from INFO at one moment. */
export interface RedisSnapshot {
  /** Calls per command (`cmdstat_<name>`), commands run inside Lua scripts included. */
  calls: Record<string, number>;
  /** used_cpu_user + used_cpu_sys of the server process, in µs. */
  cpuUs: number;
}

/** What Redis did between two snapshots. */
export interface RedisDelta {
  /** Calls per command, without the bench's own INFO and CLIENT LIST. */
  calls: Record<string, number>;
  /** Sum of `calls`. */
  totalCalls: number;
  cpuUs: number;
  /** Clients not of this run that issued a command during the interval (their calls are in the counts). */
  foreignClients: number;
}

/** Commands the probe itself issues: left out of the deltas. */
const OWN_COMMANDS = new Set(['info', 'client|list']);

const PROBE_NAME = 'bench-probe';

export function newKeyPrefix(): string {
  return `bench:${process.pid}-${randomBytes(4).toString('hex')}:`;
}

export class RedisWatch {
  /** The Redis server runs on this machine (its CPU is then part of what /proc/stat shows). */
  readonly local: boolean;

  private constructor(
    private readonly redis: Redis,
    local: boolean,
  ) {
    this.local = local;
  }

  /**
   * Connects once, without retries; resolves with a reason instead of a watch when Redis is not
   * reachable or too old for sharded pub/sub (Redis 7).
   */
  static async connect(url: string, timeoutMs = 1500): Promise<RedisWatch | { unreachable: string }> {
    const redis = new Redis(url, {
      connectionName: PROBE_NAME,
      lazyConnect: true,
      connectTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
    });
    let lastError = '';
    redis.on('error', (error: Error) => (lastError = error.message));
    try {
      await redis.connect();
      const server = parseInfo(await redis.info('server'));
      const major = Number((server.redis_version ?? '0').split('.')[0]);
      if (major < 7) throw new Error(`Redis ${server.redis_version ?? '?'} has no sharded pub/sub (7 or later needed)`);
      return new RedisWatch(redis, isLocalProcess(Number(server.process_id)));
    } catch (error) {
      redis.disconnect();
      // ioredis rejects with "Connection is closed." once it gives up; the socket error says why.
      return { unreachable: lastError || (error instanceof Error ? error.message : String(error)) };
    }
  }

  async snapshot(): Promise<RedisSnapshot> {
    const info = parseInfo(await this.redis.info('commandstats'));
    const cpu = parseInfo(await this.redis.info('cpu'));
    const calls: Record<string, number> = {};
    for (const [key, value] of Object.entries(info)) {
      if (!key.startsWith('cmdstat_')) continue;
      const m = /(?:^|,)calls=(\d+)/.exec(value);
      if (m) calls[key.slice('cmdstat_'.length)] = Number(m[1]);
    }
    const cpuUs = (Number(cpu.used_cpu_user ?? 0) + Number(cpu.used_cpu_sys ?? 0)) * 1e6;
    return { calls, cpuUs };
  }

  /**
   * Deltas since `before`; `ourNames` are the connection-name prefixes of this run's nodes, and
   * `sinceS` how long ago `before` was taken (a foreign client idle for less than that was busy).
   */
  async since(before: RedisSnapshot, options: { ourNames: string[]; sinceS: number }): Promise<RedisDelta> {
    const after = await this.snapshot();
    const calls: Record<string, number> = {};
    let totalCalls = 0;
    for (const [name, count] of Object.entries(after.calls)) {
      const delta = count - (before.calls[name] ?? 0);
      if (delta <= 0 || OWN_COMMANDS.has(name)) continue;
      calls[name] = delta;
      totalCalls += delta;
    }
    const list = String(await this.redis.call('CLIENT', 'LIST'));
    let foreignClients = 0;
    for (const line of list.split('\n')) {
      const fields = Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      if (fields.id === undefined) continue;
      const name = fields.name ?? '';
      if (name === PROBE_NAME || options.ourNames.some((n) => name.startsWith(n))) continue;
      if (Number(fields.idle ?? Infinity) <= options.sinceS) foreignClients += 1;
    }
    return { calls, totalCalls, cpuUs: after.cpuUs - before.cpuUs, foreignClients };
  }

  /** Removes every key under `prefix` (SCAN MATCH + UNLINK); resolves with how many there were. */
  async removeKeys(prefix: string): Promise<number> {
    if (!/^[A-Za-z0-9:_.-]+$/.test(prefix)) throw new Error(`refusing to delete keys under the pattern-unsafe prefix "${prefix}"`);
    let cursor = '0';
    let removed = 0;
    do {
      const [next, keys] = await this.redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) removed += await this.redis.unlink(...keys);
    } while (cursor !== '0');
    return removed;
  }

  close(): void {
    this.redis.disconnect();
  }
}

function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const i = line.indexOf(':');
    if (i > 0 && !line.startsWith('#')) out[line.slice(0, i)] = line.slice(i + 1);
  }
  return out;
}

/** Whether `pid` is a redis-server on this machine (same PID namespace). */
function isLocalProcess(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').includes('redis');
  } catch {
    return false;
  }
}
