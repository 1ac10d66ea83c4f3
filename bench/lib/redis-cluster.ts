/**
 * Workload G on a Redis Cluster (`--redis-cluster`): three masters on free ports in a temp dir,
 * started exactly as the tests start theirs (test/support/redis-cluster.ts), stopped and removed
 * when the bench ends.
 */
import { redisClusterAvailable, startRedisCluster, type TestRedisCluster } from '../../test/support/redis-cluster.ts';

export async function startBenchRedisCluster(say: (line: string) => void): Promise<TestRedisCluster | { unavailable: string }> {
  if (!redisClusterAvailable) return { unavailable: 'redis-server or redis-cli not found: --redis-cluster needs both' };
  try {
    const cluster = await startRedisCluster();
    say(`G · Redis Cluster of three masters on ports ${cluster.ports.join(', ')}`);
    return cluster;
  } catch (error) {
    return { unavailable: `could not start a Redis Cluster: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}` };
  }
}
