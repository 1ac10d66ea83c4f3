import type { Config } from '../../src/config.ts';

/**
 * The limits that protect a production node, raised so they do not shape a benchmark: per-user
 * message rate and burst, pending acks per sender, the slow-consumer threshold (bytes queued per
 * socket), the ack timeout; ack re-sends off (one ack per recipient) and no drain. Everything
 * else stays as shipped. Used by the "realtime" target and the heap-per-connection measurement.
 */
export const BENCH_LIMITS = {
  logLevel: 'silent',
  messageRatePerSec: 1_000_000_000,
  messageRateBurst: 1_000_000_000,
  maxPendingAcksPerSender: 1_000_000,
  maxBufferedBytes: 8 * 1024 ** 3,
  ackTimeoutMs: 120_000,
  ackRetryMs: 0,
  shutdownDrainMs: 0,
} as const satisfies Partial<Config>;
