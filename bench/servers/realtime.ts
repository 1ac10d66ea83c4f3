/**
 * Target "realtime": this service, through createRealtimeServer, with the limits that protect a
 * production node raised so they do not shape the benchmark: per-user message rate and burst,
 * pending acks per sender, the slow-consumer threshold (bytes queued per socket), the ack timeout;
 * ack re-sends off (ACK_RETRY_MS=0) so workload E measures one ack per recipient; logging silent.
 * Everything else (auth with real JWTs, presence, history, tracked ids, superjson) is as shipped.
 *
 * Cluster mode (workload G): the orchestrator sets BENCH_REDIS_URL and BENCH_REDIS_KEY_PREFIX
 * (handed on as REDIS_URL and REDIS_KEY_PREFIX) and NODE_ID; the node reports ready only once
 * /readyz says its Redis connections are up; BENCH_REDIS_CLUSTER=true (`--redis-cluster`) is
 * handed on as REDIS_CLUSTER. Without them the node never reads an ambient
 * REDIS_URL: workloads A–F always measure a single node. Workload H sets BENCH_PRESENCE_BATCH_MS
 * (handed on as PRESENCE_BATCH_MS) for its "before" variant.
 */
import { createRealtimeServer } from '../../src/server.ts';
import { serveBenchControl } from './common.ts';
import { BENCH_LIMITS } from './limits.ts';

// BENCH_SERVER_PROF_DIR (node --cpu-prof): exit on SIGTERM, so the profile is written.
if (process.env.BENCH_SERVER_PROF_DIR) process.once('SIGTERM', () => process.exit(0));

const secret = process.env.BENCH_SECRET;
if (!secret || secret.length < 32) throw new Error('BENCH_SECRET (>= 32 characters) is required');
const redisUrl = process.env.BENCH_REDIS_URL;
const redisKeyPrefix = process.env.BENCH_REDIS_KEY_PREFIX;
const redisCluster = process.env.BENCH_REDIS_CLUSTER === 'true';
/** Workload H: PRESENCE_BATCH_MS for this node (unset: the default). */
const presenceBatchMs = process.env.BENCH_PRESENCE_BATCH_MS;

const rt = createRealtimeServer({
  authSecret: secret,
  env: {
    LOG_LEVEL: 'silent',
    NODE_ENV: 'production',
    AUTH_SECRET: secret,
    ...(redisUrl && { REDIS_URL: redisUrl }),
    ...(redisKeyPrefix && { REDIS_KEY_PREFIX: redisKeyPrefix }),
    ...(redisCluster && { REDIS_CLUSTER: 'true' }),
    // The orchestrator names each node (NODE_ID) so it can tell this run's Redis clients from
    // anyone else's; `env` replaces the process environment, so it is handed on here.
    ...(process.env.NODE_ID && { NODE_ID: process.env.NODE_ID }),
    ...(presenceBatchMs && { PRESENCE_BATCH_MS: presenceBatchMs }),
  },
  ...BENCH_LIMITS,
});
const { port } = await rt.listen(0, '127.0.0.1');
if (redisUrl) await untilReady(port, 15_000);
serveBenchControl(port, () => rt.getBroadcastStats().connections);

async function untilReady(listening: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${listening}/readyz`).catch(() => null);
    if (res?.ok) return;
    if (Date.now() > deadline) throw new Error(`node not ready within ${timeoutMs} ms (/readyz ${res?.status ?? 'unreachable'}): is Redis reachable at ${redisUrl}?`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
