import { ClusterAckRouter } from './cluster-ack-router.ts';
import type { AckTracker } from '../acks/ack-tracker.ts';
import { createClusterAdminOperations } from './cluster-admin-operations.ts';
import type { AdminOperations } from '../admin/admin-operations.ts';
import { RedisBroker } from './redis-broker.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { RedisPresence } from './redis-presence.ts';
import type { RealtimeService, ServiceSeams } from '../service/realtime-service.ts';
import { ClusterNode } from './cluster-node.ts';
import { ClusterKeys } from './keys.ts';
import { RedisConnections } from './redis-connection.ts';

/**
 * Cluster mode (REDIS_URL set; one Redis, or a Redis Cluster with REDIS_CLUSTER): the Redis implementations of the three seams, the node's
 * heartbeat and its clean-up duties, wired together. The composition root builds this before
 * the service (the broker and seams go into it) and binds the service afterwards.
 */
export interface Cluster {
  nodeId: string;
  broker: RedisBroker;
  seams: ServiceSeams;
  redis: RedisConnections;
  /** Starts heartbeats once the service exists; returns the admin operations across nodes. */
  bind(service: RealtimeService, local: AdminOperations, address: () => string): AdminOperations;
  /** Both Redis connections are up (what /readyz reports). */
  readonly available: boolean;
  close(): Promise<void>;
}

export function createCluster(config: Config, nodeId: string, log: Logger): Cluster {
  const url = config.redisUrl!;
  const clusterLog = log.child({ component: 'cluster', nodeId });
  const redis = new RedisConnections({ url, cluster: config.redisCluster }, clusterLog, `rt-${nodeId}`);
  const keys = new ClusterKeys(config.redisKeyPrefix);
  const broker = new RedisBroker({ redis, keys, historySize: config.historySize, historyTtlMs: config.historyTtlMs, log: clusterLog });
  const presence = new RedisPresence({ nodeId, redis, keys, presenceGraceMs: config.presenceGraceMs, log: clusterLog });
  let service: RealtimeService | null = null;
  let ackRouter: ClusterAckRouter | null = null;
  let address = () => '';

  const node = new ClusterNode({
    nodeId,
    redis,
    keys,
    heartbeatMs: config.clusterHeartbeatMs,
    nodeTtlMs: config.clusterNodeTtlMs,
    log: clusterLog,
    describe: () => {
      const counts = service?.registry.counts() ?? { connections: 0, rooms: 0, users: 0 };
      const memory = process.memoryUsage();
      const connectionsByTransport = service?.figures.connectionsByTransport() ?? { websocket: 0, sse: 0 };
      return { address: address(), connections: counts.connections, connectionsByTransport, rooms: counts.rooms, users: counts.users, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed };
    },
    onJoined: async ({ wasReaped }) => {
      // Messages a survivor adopted while this node was cut off are reported by the adopter.
      if (wasReaped) await ackRouter?.yieldAdopted();
      // Announce a re-asserted user only when survivors announced it gone, i.e. after this node
      // was reaped. Entries that vanished otherwise were lost with their data — Redis restarted
      // empty, or on a Redis Cluster just the shard of some rooms — and nobody was told they left.
      await presence.reassert({ announce: wasReaped });
    },
    onNodeDead: async (deadNodeId) => {
      const ghosts = await presence.reapNode(deadNodeId);
      const adopted = (await ackRouter?.takeOver(deadNodeId)) ?? 0;
      await redis.cmd.del(keys.nodeInfo(deadNodeId));
      clusterLog.warn({ deadNode: deadNodeId, ghosts, adopted }, 'cleaned up after dead node');
    },
    onTick: () => presence.expireGhosts(),
  });

  return {
    nodeId,
    broker,
    redis,
    seams: {
      presence,
      ackRouter: (tracker: AckTracker) => {
        ackRouter = new ClusterAckRouter({ tracker, node, redis, keys, retentionMs: config.historyTtlMs, log: clusterLog });
        return ackRouter;
      },
    },
    bind(bound, local, addressOf) {
      service = bound;
      address = addressOf;
      bound.bindClusterPresence(presence);
      node.start();
      return createClusterAdminOperations({ local, service: bound, node, presence, address: addressOf });
    },
    get available() {
      return redis.available;
    },
    async close() {
      await node.close();
      await redis.close();
    },
  };
}
