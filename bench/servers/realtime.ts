/**
 * Target "realtime": this service, through createRealtimeServer, with the limits that protect a
 * production node raised so they do not shape the benchmark: per-user message rate and burst,
 * pending acks per sender, the slow-consumer threshold (bytes queued per socket), the ack timeout;
 * ack re-sends off (ACK_RETRY_MS=0) so workload E measures one ack per recipient; logging silent.
 * Everything else (auth with real JWTs, presence, history, tracked ids, superjson) is as shipped.
 */
import { createRealtimeServer } from '../../src/server.ts';
import { serveBenchControl } from './common.ts';

const secret = process.env.BENCH_SECRET;
if (!secret || secret.length < 32) throw new Error('BENCH_SECRET (>= 32 characters) is required');

const rt = createRealtimeServer({
  authSecret: secret,
  env: { LOG_LEVEL: 'silent', NODE_ENV: 'production', AUTH_SECRET: secret },
  logLevel: 'silent',
  messageRatePerSec: 1_000_000_000,
  messageRateBurst: 1_000_000_000,
  maxPendingAcksPerSender: 1_000_000,
  maxBufferedBytes: 8 * 1024 ** 3,
  ackTimeoutMs: 120_000,
  ackRetryMs: 0,
  shutdownDrainMs: 0,
});
const { port } = await rt.listen(0, '127.0.0.1');
serveBenchControl(port, () => rt.getBroadcastStats().connections);
