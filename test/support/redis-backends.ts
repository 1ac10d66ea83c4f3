import { afterAll, beforeAll } from 'vitest';
import { redisClusterAvailable, startRedisCluster, type TestRedisCluster } from './redis-cluster.ts';

if (!redisClusterAvailable) process.stderr.write('Redis Cluster runs of the cluster tests skipped: redis-server or redis-cli not found\n');

/**
 * The Redis backends cluster tests run on, for `describeWithRedis.each(REDIS_BACKENDS)('… on
 * $backend', ({ redisCluster }) => …)`: the shared Redis, and a three-master Redis Cluster that
 * the describe starts itself (skipped, and said so, without redis-server).
 */
export const REDIS_BACKENDS = [
  { backend: 'one Redis', redisCluster: false },
  ...(redisClusterAvailable ? [{ backend: 'a three-master Redis Cluster', redisCluster: true }] : []),
];

/**
 * Inside a describe, before its own beforeAll: starts a Redis Cluster for the describe when
 * `redisCluster`, stops it after the describe's own afterAll (hooks unwind in reverse). The
 * getter answers it (undefined on one Redis), for `startCluster({ redisCluster })`.
 */
export function useRedisBackend(redisCluster: boolean): () => TestRedisCluster | undefined {
  let started: TestRedisCluster | undefined;
  beforeAll(async () => {
    if (redisCluster) started = await startRedisCluster();
  }, 60_000);
  afterAll(async () => {
    await started?.stop();
  });
  return () => started;
}
