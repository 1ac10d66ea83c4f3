import { collectDefaultMetrics, Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { RedisBroker } from '../cluster/redis-broker.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import { ACK_LATENCY_BUCKETS_S, DELIVERY_LATENCY_BUCKETS_S } from '../service/stats.ts';
import type { LatencyHistogram } from '../util/latency-histogram.ts';

/**
 * Prometheus metrics from one per-app Registry (two apps in one process never collide).
 * Gauges, counters and latency histograms are read from the service at scrape time (a latency's
 * one histogram, util/latency-histogram.ts, also gives GraphQL its percentiles). Labels are
 * bounded enumerations only (event type, ack outcome, error code) — never a room or user id;
 * per-room numbers live in GraphQL.
 * Names follow Prometheus conventions: base units, `_total` on counters.
 */
/** Figures the service does not own: the WebSocket transport's, the in-memory history's. */
export interface EdgeFigures {
  /** Sockets not authenticated yet (waiting for or checking connectionParams). */
  unauthenticatedSockets(): number;
  /** Histories of rooms without members kept for resume, and how many were evicted early (single node). */
  retainedHistories?(): { idleRooms: number; idleBytes: number; evicted: number };
}

export function createMetrics(service: RealtimeService, cluster?: { broker: RedisBroker; available: boolean }, edge?: EdgeFigures): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 20 });
  const registers = [registry];
  const counts = () => service.figures.counts();

  new Gauge({ name: 'realtime_connections', help: 'Open connections on this node (WebSockets and SSE streams).', registers, collect() { this.set(counts().connections); } });
  new Gauge({
    name: 'realtime_connections_by_transport',
    help: 'Open connections on this node by transport (websocket, sse: one per stream).',
    labelNames: ['transport'],
    registers,
    collect() {
      for (const [transport, count] of Object.entries(service.figures.connectionsByTransport())) this.set({ transport }, count);
    },
  });
  new Gauge({ name: 'realtime_rooms_active', help: 'Rooms with at least one member on this node.', registers, collect() { this.set(counts().rooms); } });
  new Gauge({ name: 'realtime_users', help: 'Distinct connected users on this node.', registers, collect() { this.set(counts().users); } });
  if (edge) {
    new Gauge({ name: 'realtime_unauthenticated_sockets', help: 'WebSockets not authenticated yet (capped by MAX_UNAUTHENTICATED_SOCKETS).', registers, collect() { this.set(edge.unauthenticatedSockets()); } });
    const retained = edge.retainedHistories;
    if (retained) {
      new Gauge({ name: 'realtime_retained_histories', help: 'Histories of rooms without members kept for resume (MAX_RETAINED_ROOMS).', registers, collect() { this.set(retained().idleRooms); } });
      new Gauge({ name: 'realtime_retained_history_bytes', help: 'Estimated bytes of those histories (MAX_RETAINED_HISTORY_BYTES).', registers, collect() { this.set(retained().idleBytes); } });
      new Counter({ name: 'realtime_retained_histories_evicted_total', help: 'Histories forgotten before HISTORY_TTL_MS to keep the budget.', registers, collect() { this.reset(); this.inc(retained().evicted); } });
    }
  }
  new Gauge({ name: 'realtime_acks_pending', help: 'Acknowledged messages waiting for acks.', registers, collect() { this.set(service.figures.pendingAckCount()); } });

  const fromMap = (counter: Counter<string>, label: string, map: ReadonlyMap<string, number>) => {
    counter.reset();
    for (const [value, n] of map) counter.inc({ [label]: value }, n);
  };
  new Counter({
    name: 'realtime_events_published_total',
    help: 'Room events published, by type (a message counts once, whatever its audience).',
    labelNames: ['type'],
    registers,
    collect() {
      fromMap(this, 'type', service.figures.stats.publishedByType);
    },
  });
  new Counter({
    name: 'realtime_deliveries_total',
    help: 'Events written to subscribers, by type.',
    labelNames: ['type'],
    registers,
    collect() {
      fromMap(this, 'type', service.figures.stats.deliveredByType);
    },
  });
  new Counter({
    name: 'realtime_acks_total',
    help: 'Delivery reports made, by outcome.',
    labelNames: ['outcome'],
    registers,
    collect() {
      fromMap(this, 'outcome', new Map(Object.entries(service.figures.stats.acks)));
    },
  });
  new Counter({
    name: 'realtime_slow_consumer_closes_total',
    help: 'Connections closed because they stopped reading (close code 4008).',
    registers,
    collect() {
      this.reset();
      this.inc(service.figures.stats.slowConsumerCloses);
    },
  });
  new Counter({
    name: 'realtime_rejected_requests_total',
    help: 'Requests refused at the edge, by tRPC error code.',
    labelNames: ['code'],
    registers,
    collect() {
      fromMap(this, 'code', service.figures.stats.rejectedByCode);
    },
  });

  registry.registerMetric(
    latencyMetric({
      name: 'realtime_delivery_latency_seconds',
      help: 'Time from send to the write of a message to its subscribers\' sockets, once per message and node.',
      histogram: service.figures.stats.deliveryLatency,
      bucketsS: DELIVERY_LATENCY_BUCKETS_S,
    }),
  );
  registry.registerMetric(
    latencyMetric({
      name: 'realtime_ack_latency_seconds',
      help: 'Time from an acknowledged send to its delivery report, by outcome.',
      labelName: 'outcome',
      histogram: service.figures.stats.ackLatency,
      bucketsS: ACK_LATENCY_BUCKETS_S,
    }),
  );
  if (cluster) {
    const { broker } = cluster;
    new Gauge({ name: 'realtime_cluster_redis_up', help: 'Cluster mode: 1 while both Redis connections are ready.', registers, collect() { this.set(cluster.available ? 1 : 0); } });
    new Gauge({ name: 'realtime_cluster_outbox_events', help: 'Cluster mode: internal events waiting for Redis to come back.', registers, collect() { this.set(broker.outboxSize); } });
    new Gauge({ name: 'realtime_cluster_subscribed_rooms', help: 'Cluster mode: rooms this node receives from Redis.', registers, collect() { this.set(broker.subscribedRooms()); } });
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({ name, help, registers, collect() { this.reset(); this.inc(read()); } });
    counter('realtime_cluster_gaps_filled_total', 'Cluster mode: times a room gap (lost pub/sub messages) was filled from the stream.', () => broker.counters.gapsFilled);
    counter('realtime_cluster_resyncs_total', 'Cluster mode: times subscribers were sent resync because the room history was lost.', () => broker.counters.resyncs);
    counter('realtime_cluster_outbox_dropped_total', 'Cluster mode: internal events dropped because the outbox was full during an outage.', () => broker.counters.outboxDropped);
  }
  return registry;
}

/**
 * A latency histogram's cumulative view (ms) as a Prometheus histogram (seconds), read at scrape
 * time: `_bucket` per bound and `+Inf`, `_sum`, `_count`; an unlabelled one is exported at zero
 * before its first sample, a labelled one per label seen (as prom-client's own Histogram does).
 */
function latencyMetric(options: { name: string; help: string; labelName?: string; histogram: LatencyHistogram; bucketsS: readonly number[] }): Metric {
  const { name, help, labelName, histogram, bucketsS } = options;
  const get = async () => {
    const values: Array<{ metricName: string; labels: Record<string, string | number>; value: number }> = [];
    const entries = [...histogram.cumulative];
    if (labelName === undefined && entries.length === 0) entries.push(['', { buckets: new Float64Array(bucketsS.length), sum: 0, count: 0 }]);
    for (const [label, counts] of entries) {
      const labels = labelName === undefined ? {} : { [labelName]: label };
      bucketsS.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { le, ...labels }, value: counts.buckets[i]! }));
      values.push({ metricName: `${name}_bucket`, labels: { le: '+Inf', ...labels }, value: counts.count });
      values.push({ metricName: `${name}_sum`, labels, value: counts.sum / 1000 });
      values.push({ metricName: `${name}_count`, labels, value: counts.count });
    }
    return { name, help, type: 'histogram', values, aggregator: 'sum' };
  };
  // prom-client's registry only calls `get` (and reads `name`) of a metric it exports.
  return { name, help, get } as unknown as Metric;
}
