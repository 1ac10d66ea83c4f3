import type { DeliveryStatus } from '../domain/types.ts';

/**
 * Counters and latency samples of one node. The admin plane and /metrics read these; the
 * latency windows are bounded reservoirs (most recent samples), not unbounded arrays.
 */
export class ServiceStats {
  messagesBroadcast = 0;
  eventsPublished = 0;
  deliveries = 0;
  acks: Record<DeliveryStatus, number> = { delivered: 0, partial: 0, failed: 0 };
  slowConsumerCloses = 0;
  rejectedInputs = 0;
  readonly startedAt = Date.now();
  readonly deliveryLatency = new LatencyWindow(4096);
  readonly ackLatency = new LatencyWindow(4096);
}

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export class LatencyWindow {
  private readonly samples: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(capacity: number) {
    this.samples = new Float64Array(capacity);
  }

  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    if (this.filled < this.samples.length) this.filled += 1;
  }

  percentiles(): Percentiles {
    if (this.filled === 0) return { p50: 0, p95: 0, p99: 0, max: 0 };
    const sorted = Array.from(this.samples.subarray(0, this.filled)).sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return { p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted[sorted.length - 1]! };
  }
}
