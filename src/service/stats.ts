import type { DeliveryStatus, RoomEventType } from '../domain/types.ts';
import { LatencyHistogram } from '../util/latency-histogram.ts';

/** Prometheus bucket bounds (seconds) of the two latency histograms' cumulative view. */
export const DELIVERY_LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;
export const ACK_LATENCY_BUCKETS_S = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/**
 * Counters and latency histograms of one node. Each latency has one histogram
 * (util/latency-histogram.ts): the admin plane reads its last-minute percentiles, /metrics its
 * cumulative buckets. Counters only grow; labels are bounded enumerations.
 */
export class ServiceStats {
  messagesBroadcast = 0;
  deliveries = 0;
  slowConsumerCloses = 0;
  /** Typing events not sent to a connection that was already behind. */
  typingDropped = 0;
  /** Events whose frame could not be built for a subscriber (it got `resync` instead); should stay 0. */
  undeliverable = 0;
  readonly acks: Record<DeliveryStatus, number> = { delivered: 0, partial: 0, failed: 0 };
  readonly publishedByType = new Map<RoomEventType, number>();
  readonly deliveredByType = new Map<RoomEventType, number>();
  /** Requests refused at the edge, by tRPC error code (BAD_REQUEST, TOO_MANY_REQUESTS, …). */
  readonly rejectedByCode = new Map<string, number>();
  readonly startedAt = Date.now();
  /** Send-to-socket-write time of `message` events (percentiles per delivery; Prometheus once per message). */
  readonly deliveryLatency = new LatencyHistogram(undefined, undefined, undefined, DELIVERY_LATENCY_BUCKETS_S.map((s) => s * 1000));
  /** Send-to-report time of acknowledged messages, labelled by outcome. */
  readonly ackLatency = new LatencyHistogram(undefined, undefined, undefined, ACK_LATENCY_BUCKETS_S.map((s) => s * 1000));

  /** Events published, all types together. */
  get eventsPublished(): number {
    let n = 0;
    for (const count of this.publishedByType.values()) n += count;
    return n;
  }

  published(type: RoomEventType): void {
    bump(this.publishedByType, type);
    if (type === 'message') this.messagesBroadcast += 1;
  }

  delivered(type: RoomEventType, count: number, latencyMs: number | null): void {
    this.deliveries += count;
    bump(this.deliveredByType, type, count);
    if (latencyMs !== null) this.deliveryLatency.record(latencyMs, count);
  }

  ackReported(status: DeliveryStatus, latencyMs: number): void {
    this.acks[status] += 1;
    this.ackLatency.record(latencyMs, 1, status);
  }

  rejected(code: string): void {
    bump(this.rejectedByCode, code);
  }
}

function bump<TKey>(map: Map<TKey, number>, key: TKey, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}
