/**
 * The bench's own view of the Redis server behind workload G — or of every master of a Redis
 * Cluster (`--redis-cluster`): whether it is reachable, what it did during a measured phase
 * (`INFO commandstats` call counts and `INFO cpu` time, before and after, summed and per shard),
 * whether anyone else was using it meanwhile, and removing a run's keys afterwards (SCAN MATCH
 * <prefix>* + UNLINK, on every master). It never touches keys outside the run's prefix.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';

/** Counters read from INFO at one moment, on one server. */
interface ServerSnapshot {
  /** Calls per command (`cmdstat_<name>`), commands run inside Lua scripts included. */
  calls: Record<string, number>;
  /** used_cpu_user + used_cpu_sys of the server process, in µs. */
  cpuUs: number;
}

/** Counters of every watched server (one, or each master of a Redis Cluster), in order. */
export interface RedisSnapshot {
  servers: ServerSnapshot[];
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
  /** A Redis Cluster: the same per master (calls without the bench's own, CPU), in port order. */
  shards: Array<{ totalCalls: number; cpuUs: number }> | null;
}

/** Commands the probe itself issues: left out of the deltas. */
const OWN_COMMANDS = new Set(['info', 'client|list']);

const PROBE_NAME = 'bench-probe';

export function newKeyPrefix(): string {
  return `bench:${process.pid}-${randomBytes(4).toString('hex')}:`;
}

export class RedisWatch {
  /** The Redis server(s) run on this machine (their CPU is then part of what /proc/stat shows). */
  readonly local: boolean;

  private constructor(
    private readonly servers: Redis[],
    local: boolean,
    private readonly cluster: boolean,
  ) {
    this.local = local;
  }

  /**
   * Connects once to each URL (one Redis, or every master of a Redis Cluster when `cluster`),
   * without retries; resolves with a reason instead of a watch when one is not reachable or too
   * old for sharded pub/sub (Redis 7).
   */
  static async connect(urls: string | string[], { timeoutMs = 1500, cluster = false } = {}): Promise<RedisWatch | { unreachable: string }> {
    const opened: Redis[] = [];
    let local = true;
    let lastError = '';
    try {
      for (const url of Array.isArray(urls) ? urls : [urls]) {
        const redis = new Redis(url, {
          connectionName: PROBE_NAME,
          lazyConnect: true,
          connectTimeout: timeoutMs,
          maxRetriesPerRequest: 0,
          enableOfflineQueue: false,
          retryStrategy: () => null,
        });
        opened.push(redis);
        redis.on('error', (error: Error) => (lastError = error.message));
        await redis.connect();
        const server = parseInfo(await redis.info('server'));
        const major = Number((server.redis_version ?? '0').split('.')[0]);
        if (major < 7) throw new Error(`Redis ${server.redis_version ?? '?'} has no sharded pub/sub (7 or later needed)`);
        local &&= isLocalProcess(Number(server.process_id));
      }
      return new RedisWatch(opened, local, cluster);
    } catch (error) {
      for (const redis of opened) redis.disconnect();
      // ioredis rejects with "Connection is closed." once it gives up; the socket error says why.
      return { unreachable: lastError || (error instanceof Error ? error.message : String(error)) };
    }
  }

  async snapshot(): Promise<RedisSnapshot> {
    return { servers: await Promise.all(this.servers.map(snapshotOf)) };
  }

  /**
   * Deltas since `before`; `ourNames` are the connection-name prefixes of this run's nodes, and
   * `sinceS` how long ago `before` was taken (a foreign client idle for less than that was busy).
   */
  async since(before: RedisSnapshot, options: { ourNames: string[]; sinceS: number }): Promise<RedisDelta> {
    const after = await this.snapshot();
    const calls: Record<string, number> = {};
    let totalCalls = 0;
    let cpuUs = 0;
    const shards: Array<{ totalCalls: number; cpuUs: number }> = [];
    for (const [i, server] of after.servers.entries()) {
      const was = before.servers[i]!;
      let shardCalls = 0;
      for (const [name, count] of Object.entries(server.calls)) {
        const delta = count - (was.calls[name] ?? 0);
        if (delta <= 0 || OWN_COMMANDS.has(name)) continue;
        calls[name] = (calls[name] ?? 0) + delta;
        shardCalls += delta;
      }
      totalCalls += shardCalls;
      cpuUs += server.cpuUs - was.cpuUs;
      shards.push({ totalCalls: shardCalls, cpuUs: server.cpuUs - was.cpuUs });
    }
    let foreignClients = 0;
    for (const redis of this.servers) {
      const list = String(await redis.call('CLIENT', 'LIST'));
      for (const line of list.split('\n')) {
        const fields = Object.fromEntries(line.trim().split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
        if (fields.id === undefined) continue;
        const name = fields.name ?? '';
        // ioredis names a Cluster's connections `ioredis-cluster(<purpose>)` when it adds its own.
        if (name === PROBE_NAME || name.startsWith('ioredis-cluster') || options.ourNames.some((n) => name.startsWith(n))) continue;
        if (Number(fields.idle ?? Infinity) <= options.sinceS) foreignClients += 1;
      }
    }
    return { calls, totalCalls, cpuUs, foreignClients, shards: this.cluster ? shards : null };
  }

  /** Removes every key under `prefix` (SCAN MATCH + UNLINK, on every server); resolves with how many there were. */
  async removeKeys(prefix: string): Promise<number> {
    if (!/^[A-Za-z0-9:_.-]+$/.test(prefix)) throw new Error(`refusing to delete keys under the pattern-unsafe prefix "${prefix}"`);
    let removed = 0;
    for (const redis of this.servers) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        // One key per UNLINK on a Redis Cluster: the keys of one page may be in different slots.
        if (this.cluster) for (const key of keys) removed += await redis.unlink(key);
        else if (keys.length > 0) removed += await redis.unlink(...keys);
      } while (cursor !== '0');
    }
    return removed;
  }

  close(): void {
    for (const redis of this.servers) redis.disconnect();
  }
}

async function snapshotOf(redis: Redis): Promise<ServerSnapshot> {
  const info = parseInfo(await redis.info('commandstats'));
  const cpu = parseInfo(await redis.info('cpu'));
  const calls: Record<string, number> = {};
  for (const [key, value] of Object.entries(info)) {
    if (!key.startsWith('cmdstat_')) continue;
    const m = /(?:^|,)calls=(\d+)/.exec(value);
    if (m) calls[key.slice('cmdstat_'.length)] = Number(m[1]);
  }
  const cpuUs = (Number(cpu.used_cpu_user ?? 0) + Number(cpu.used_cpu_sys ?? 0)) * 1e6;
  return { calls, cpuUs };
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
