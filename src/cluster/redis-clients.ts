import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';

/**
 * The ioredis clients behind RedisConnections, for one Redis or for a Redis Cluster. Both kinds
 * answer the same commands, so everything above this file is written once; what differs is only
 * how they are made, how "reachable" is decided, and how the subscriber side is pinged.
 *
 * Redis Cluster: `cmd` is a `Cluster` client (commands and scripts go to the master owning their
 * slot; every script and MULTI of ours touches one slot). `sub` is a second `Cluster` client with
 * `shardedSubscribers: true`: ioredis keeps one subscriber connection per master and sends each
 * SSUBSCRIBE to the master that owns the channel's slot, re-subscribing after a reconnect.
 */

/** A client of either kind: same commands, same events. */
export type RedisClient = Redis | Cluster;

export interface RedisTarget {
  /** REDIS_URL: the Redis, or a seed node of the Redis Cluster. */
  url: string;
  /** REDIS_CLUSTER. */
  cluster: boolean;
}

export interface RedisClients {
  cmd: RedisClient;
  sub: RedisClient;
  /** Probes what the clients' own status cannot tell (a Redis Cluster shard that is down). */
  probe: (() => Promise<void>) | null;
  /** A round trip on every subscriber connection: subscriptions sent before it are in effect. */
  pingSubscribers(): Promise<void>;
}

/** Forever, 50 ms doubling to 2 s, with jitter so a fleet does not reconnect in step. */
const backoff = (attempt: number) => Math.min(2000, 50 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);

export function createRedisClients(target: RedisTarget, name: string): RedisClients {
  const base: RedisOptions = {
    connectionName: name,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: backoff,
    reconnectOnError: () => false,
  };
  if (!target.cluster) {
    const cmd = new Redis(target.url, { ...base, lazyConnect: false, enableOfflineQueue: false, enableAutoPipelining: true });
    // The subscriber keeps its offline queue so ioredis re-subscribes every channel on reconnect.
    const sub = new Redis(target.url, { ...base, lazyConnect: false, enableOfflineQueue: true, maxRetriesPerRequest: null });
    return { cmd, sub, probe: null, pingSubscribers: async () => void (await sub.ping()) };
  }
  const seed = new URL(target.url);
  const redisOptions: RedisOptions = {
    ...base,
    ...(seed.username && { username: decodeURIComponent(seed.username) }),
    ...(seed.password && { password: decodeURIComponent(seed.password) }),
    ...(seed.protocol === 'rediss:' && { tls: {} }),
  };
  const seeds = [{ host: seed.hostname, port: Number(seed.port || 6379) }];
  const options: ClusterOptions = {
    redisOptions,
    clusterRetryStrategy: backoff,
    // A master that went away is dropped from the pool; the probe below notices and asks for
    // the slot map again, which brings it back once it answers.
    slotsRefreshInterval: 2000,
    retryDelayOnClusterDown: 100,
    retryDelayOnFailover: 100,
    lazyConnect: false,
  };
  const cmd = new Cluster(seeds, { ...options, enableOfflineQueue: false, enableAutoPipelining: true });
  const sub = new Cluster(seeds, {
    ...options,
    enableOfflineQueue: true,
    shardedSubscribers: true,
    redisOptions: { ...redisOptions, maxRetriesPerRequest: null },
  });
  return {
    cmd,
    sub,
    probe: () => probeCluster(cmd, sub),
    pingSubscribers: async () => {
      await Promise.all(shardSubscribers(sub).map((instance) => instance.ping()));
    },
  };
}

/**
 * Throws unless every master that owns slots answers a PING, the cluster says `cluster_state:ok`,
 * and every sharded subscriber that has channels is connected (ioredis re-creates one after its
 * master went away; until then the node would miss that shard's events).
 */
async function probeCluster(cmd: Cluster, sub: Cluster): Promise<void> {
  const owners = new Set<string>();
  for (const slot of cmd.slots) if (slot?.[0]) owners.add(slot[0]);
  if (owners.size === 0) throw new Error('no slot map yet');
  const byKey = new Map(cmd.nodes('master').map((node) => [`${node.options.host}:${node.options.port}`, node]));
  const missing = [...owners].filter((key) => !byKey.has(key));
  if (missing.length > 0) {
    cmd.refreshSlotsCache();
    throw new Error(`no connection to master ${missing.join(', ')}`);
  }
  const pings = [...owners].map((key) => withTimeout(byKey.get(key)!.ping(), PROBE_TIMEOUT_MS, `master ${key}`));
  const [info] = await Promise.all([withTimeout(cmd.cluster('INFO'), PROBE_TIMEOUT_MS, 'CLUSTER INFO'), ...pings]);
  if (!String(info).includes('cluster_state:ok')) throw new Error('cluster_state is not ok');
  if (!subscribersHealthy(sub)) throw new Error('a sharded subscriber is reconnecting');
}

const PROBE_TIMEOUT_MS = 1500;

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * ioredis keeps its per-master subscribers private (ClusterSubscriberGroup, ioredis 5.9+); this
 * is the one place that reads them. Checked by test/redis-cluster.test.ts against the installed
 * version: if the shape changes, that test fails rather than readiness silently passing.
 */
interface ShardedSubscriberInternals {
  subscriberStatus: 'idle' | 'starting' | 'connected' | 'stopping' | 'ended';
  getInstance(): Redis | null;
}
interface SubscriberGroupInternals {
  isResetting: boolean;
  shardedSubscribers: Map<string, ShardedSubscriberInternals>;
}

function subscriberGroup(sub: Cluster): SubscriberGroupInternals {
  const group = (sub as unknown as { shardedSubscribers?: SubscriberGroupInternals }).shardedSubscribers;
  if (!group?.shardedSubscribers) throw new Error('ioredis has no sharded subscriber group (needs ioredis 5.9+ with shardedSubscribers)');
  return group;
}

/** The connected per-master subscriber connections. */
export function shardSubscribers(sub: Cluster): Redis[] {
  const out: Redis[] = [];
  for (const s of subscriberGroup(sub).shardedSubscribers.values()) {
    const instance = s.getInstance();
    if (s.subscriberStatus === 'connected' && instance) out.push(instance);
  }
  return out;
}

function subscribersHealthy(sub: Cluster): boolean {
  const group = subscriberGroup(sub);
  if (group.isResetting) return false;
  for (const s of group.shardedSubscribers.values()) {
    // Idle: its master has no channel of ours (lazily connected). Anything else but a ready
    // connection means it is being replaced.
    if (s.subscriberStatus === 'idle') continue;
    if (s.subscriberStatus !== 'connected' || s.getInstance()?.status !== 'ready') return false;
  }
  return true;
}
