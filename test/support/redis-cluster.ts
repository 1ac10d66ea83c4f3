import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Cluster, Redis } from 'ioredis';
import { freePort } from './redis-server.ts';

/**
 * A real Redis Cluster of three masters (no replicas) of a test's own, on free ports, in a temp
 * directory: `await using redis = await startRedisCluster()`. `url` is a seed node, as an
 * operator gives it in REDIS_URL with REDIS_CLUSTER=true. Stopping kills the servers and removes
 * the directory. Data is not persisted, so a master restarted with `restartMaster` comes back
 * empty but keeps its slots (its nodes.conf survives), like a crashed shard without AOF. Used by
 * the tests (redis-backends.ts) and by bench workload G's `--redis-cluster`.
 */
export interface TestRedisCluster extends AsyncDisposable {
  /** The masters' ports, in start order. */
  ports: number[];
  /** `redis://127.0.0.1:<first port>`: the seed node. */
  url: string;
  /** A client of each master, for test assertions (closed by stop()). */
  masters(): Redis[];
  /** A cluster client (commands routed by slot), for test assertions (closed by stop()). */
  client(): Cluster;
  /** SIGKILL one master (index into `ports`), then start it again on the same port and config. */
  restartMaster(index: number, downMs?: number): Promise<void>;
  /** Every key starting with `prefix`, on every master, deleted; how many. */
  deleteKeys(prefix: string): Promise<number>;
  /** Kills every server and removes the directory. Idempotent. */
  stop(): Promise<void>;
  output(): string;
}

/** Short enough that a killed master marks the cluster failed quickly, as the outage tests need. */
const NODE_TIMEOUT_MS = 1000;

export async function startRedisCluster({ masters = 3, startTimeoutMs = 20_000 } = {}): Promise<TestRedisCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rt-rcluster-'));
  const lines: string[] = [];
  const remember = (line: string) => {
    lines.push(line);
    if (lines.length > 300) lines.shift();
  };
  const procs = new Map<number, { proc: ChildProcess; exited: Promise<void> }>();
  const clients: Redis[] = [];
  let clusterClient: Cluster | undefined;

  const busPorts = new Map<number, number>();
  const spawnOn = async (port: number) => {
    // The bus port is port + 10000 unless set: an ephemeral port may leave no room for that.
    const busPort = busPorts.get(port) ?? (await freePort());
    busPorts.set(port, busPort);
    const proc = spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-port', String(busPort),
        '--cluster-config-file', path.join(dir, `nodes-${port}.conf`), '--cluster-node-timeout', String(NODE_TIMEOUT_MS),
        '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', dir,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    liveChildren.add(proc);
    for (const stream of [proc.stdout, proc.stderr]) createInterface({ input: stream! }).on('line', (l) => remember(`[${port}] ${l}`));
    const exited = once(proc, 'close').then(() => void liveChildren.delete(proc), () => undefined);
    procs.set(port, { proc, exited });
    await until(async () => (await ping(port)) === 'PONG', startTimeoutMs, `redis-server on ${port} to answer PING`);
  };

  const kill = async (port: number) => {
    const entry = procs.get(port);
    if (!entry) return;
    if (entry.proc.exitCode === null && entry.proc.signalCode === null) entry.proc.kill('SIGKILL');
    await entry.exited;
  };

  const ports: number[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    for (const c of clients.splice(0)) c.disconnect();
    clusterClient?.disconnect();
    await Promise.all(ports.map(kill));
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    for (let i = 0; i < masters; i += 1) {
      const port = await freePort();
      ports.push(port);
      await spawnOn(port);
    }
    const create = spawn('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-yes'], { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [create.stdout, create.stderr]) createInterface({ input: stream! }).on('line', (l) => remember(`[create] ${l}`));
    const [code] = (await once(create, 'close')) as [number | null];
    if (code !== 0) throw new Error(`redis-cli --cluster create exited with ${code}`);
    await until(() => allStateOk(ports), startTimeoutMs, 'cluster_state:ok on every master');
  } catch (error) {
    await stop();
    throw new Error(`${(error as Error).message}\n${lines.join('\n')}`, { cause: error });
  }

  return {
    ports,
    url: `redis://127.0.0.1:${ports[0]}`,
    masters() {
      if (clients.length === 0) {
        for (const port of ports) {
          const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1 });
          client.on('error', () => undefined); // a restarted master: its commands fail meanwhile
          clients.push(client);
        }
      }
      return clients;
    },
    client() {
      if (!clusterClient) {
        clusterClient = new Cluster([{ host: '127.0.0.1', port: ports[0]! }], { redisOptions: { maxRetriesPerRequest: 1 } });
        clusterClient.on('error', () => undefined);
      }
      return clusterClient;
    },
    async restartMaster(index, downMs = 0) {
      const port = ports[index]!;
      await kill(port);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      await spawnOn(port);
      await until(() => allStateOk(ports), startTimeoutMs, 'cluster_state:ok after a restart');
    },
    async deleteKeys(prefix) {
      if (prefix === '') throw new Error('deleteKeys: refusing an empty prefix');
      let deleted = 0;
      for (const port of ports) {
        const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
        client.on('error', () => undefined);
        try {
          await client.connect();
          let cursor = '0';
          do {
            const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
            // One UNLINK per key: keys of one page may sit in different slots.
            for (const key of keys) deleted += await client.unlink(key);
            cursor = next;
          } while (cursor !== '0');
        } finally {
          client.disconnect();
        }
      }
      return deleted;
    },
    stop,
    output: () => lines.join('\n'),
    [Symbol.asyncDispose]: stop,
  };
}

async function ping(port: number): Promise<string | null> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.ping();
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

async function allStateOk(ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const client = new Redis(port, '127.0.0.1', { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    client.on('error', () => undefined);
    try {
      await client.connect();
      const info = String(await client.cluster('INFO'));
      if (!info.includes('cluster_state:ok')) return false;
    } catch {
      return false;
    } finally {
      client.disconnect();
    }
  }
  return true;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Servers still running when the test process exits are killed, so none outlive a crashed run. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of liveChildren) proc.kill('SIGKILL');
});

/** Whether `redis-server` and `redis-cli` can be run here (a Redis Cluster needs both). */
export const redisClusterAvailable: boolean = ['redis-server', 'redis-cli'].every((bin) => spawnSync(bin, ['--version']).status === 0);
