import type { DeliveryStatus, RoomEventType } from '../domain/types.ts';
import { LatencyHistogram } from '../util/latency-histogram.ts';

/** Receives every measurement as it happens (Prometheus histograms hook in here). */
export interface StatsSink {
  /** `count` deliveries of one event in one fan-out, which share one latency. */
  delivered?(type: RoomEventType, count: number, latencyMs: number | null): void;
  ackReported?(status: DeliveryStatus, latencyMs: number): void;
}

/**
 * Counters and latency histograms of one node. The admin plane reads the windowed
 * histograms (last minute, see util/latency-histogram.ts); /metrics reads the counters and
 * gets every sample through a sink. Counters only grow; labels are bounded enumerations.
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
  /** Send-to-socket-write time of `message` events. */
  readonly deliveryLatency = new LatencyHistogram();
  /** Send-to-report time of acknowledged messages. */
  readonly ackLatency = new LatencyHistogram();
  private readonly sinks: StatsSink[] = [];

  /** Events published, all types together. */
  get eventsPublished(): number {
    let n = 0;
    for (const count of this.publishedByType.values()) n += count;
    return n;
  }

  addSink(sink: StatsSink): void {
    this.sinks.push(sink);
  }

  published(type: RoomEventType): void {
    bump(this.publishedByType, type);
    if (type === 'message') this.messagesBroadcast += 1;
  }

  delivered(type: RoomEventType, count: number, latencyMs: number | null): void {
    this.deliveries += count;
    bump(this.deliveredByType, type, count);
    if (latencyMs !== null) this.deliveryLatency.record(latencyMs, count);
    for (const sink of this.sinks) sink.delivered?.(type, count, latencyMs);
  }

  ackReported(status: DeliveryStatus, latencyMs: number): void {
    this.acks[status] += 1;
    this.ackLatency.record(latencyMs);
    for (const sink of this.sinks) sink.ackReported?.(status, latencyMs);
  }

  rejected(code: string): void {
    bump(this.rejectedByCode, code);
  }
}

function bump<TKey>(map: Map<TKey, number>, key: TKey, by = 1): void {
  map.set(key, (map.get(key) ?? 0) + by);
}
