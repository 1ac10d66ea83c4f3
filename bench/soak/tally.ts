/**
 * The soak's counters for one reporting interval; `add` sums intervals into the run's totals.
 * Latencies are in the bench's mergeable histogram (µs).
 */
import { Histogram } from '../lib/histogram.ts';

/** A problem found, kept (the first few of each kind) to say where to look. */
export interface Finding {
  /** `slow-live-delivery` is diagnostic (a live delivery of 1 s or more), not a failure. */
  kind: 'lost' | 'duplicate' | 'out-of-order' | 'unexplained-report' | 'subscription-error' | 'slow-live-delivery';
  room: string;
  user: string;
  seq: number;
  detail?: string;
  /** Seconds since the traffic started. */
  atS: number;
}

const COUNTERS = [
  'sent',
  'sendFailed',
  'ackedSent',
  'deliveries',
  'required',
  'lost',
  'duplicates',
  'outOfOrder',
  'resyncs',
  'typing',
  'reportsDelivered',
  'reportsPartial',
  'reportsFailed',
  'reportsNoRecipients',
  'reportsUnexplained',
  'reportsByQuery',
  'reportsUnknown',
  'leaves',
  'joins',
  'drops',
  'restarts',
  'slowPauses',
  'serverCloses',
  'reconnects',
  'subscriptionErrors',
] as const;

export type Counter = (typeof COUNTERS)[number];

export class Tally {
  /** Sends that succeeded. */
  sent = 0;
  /** Sends that failed (the message may or may not exist: optional for receivers). */
  sendFailed = 0;
  /** Successful sends with `ack: true`. */
  ackedSent = 0;
  /** Message events handed to the application. */
  deliveries = 0;
  /** Of those, the ones the subscription had to get (in its window, not its own). */
  required = 0;
  lost = 0;
  duplicates = 0;
  outOfOrder = 0;
  resyncs = 0;
  /** Typing events received. */
  typing = 0;
  /** Delivery reports, by outcome. Partial and failed include what churn explains. */
  reportsDelivered = 0;
  reportsPartial = 0;
  reportsFailed = 0;
  /** Failed because nobody else was in the room (expected: []). Also counted in reportsFailed. */
  reportsNoRecipients = 0;
  /** Partial or failed with a missing user that no drop, restart, pause or leave explains. */
  reportsUnexplained = 0;
  /** Reports read with `message.deliveryStatus` because no `message_delivered` event reached the sender. */
  reportsByQuery = 0;
  /** Acked sends whose report could not be had at all. */
  reportsUnknown = 0;
  /** Churn done by the soak: a subscription left, joined afresh, a socket cut, a client restarted with lastEventId, a reader paused. */
  leaves = 0;
  joins = 0;
  drops = 0;
  restarts = 0;
  slowPauses = 0;
  /** Sockets closed by the server (or by the client's keep-alive), not by the soak. */
  serverCloses = 0;
  /** New sockets after a drop or a server close (the stock client reconnecting by itself). */
  reconnects = 0;
  subscriptionErrors = 0;
  /** Send → receipt for deliveries no disruption touched. */
  readonly live = new Histogram();
  /** Deliveries to a receiver that was dropped, restarted or paused after the message was issued (replays, backlogs). */
  readonly recovered = new Histogram();
  /** Deliveries in flight across the soak's own forced GC of the server. */
  readonly gcAffected = new Histogram();
  /** Close codes of `serverCloses`. */
  readonly closeCodes = new Map<number, number>();

  add(other: Tally): void {
    for (const key of COUNTERS) this[key] += other[key];
    this.live.merge(other.live.toSparse());
    this.recovered.merge(other.recovered.toSparse());
    this.gcAffected.merge(other.gcAffected.toSparse());
    for (const [code, n] of other.closeCodes) this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + n);
  }

  toJSON(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const key of COUNTERS) out[key] = this[key];
    for (const key of ['live', 'recovered', 'gcAffected'] as const) {
      const h = this[key];
      out[`${key}Ms`] = { n: h.n, p50: h.quantile(0.5) / 1000, p99: h.quantile(0.99) / 1000, max: h.n === 0 ? Number.NaN : h.max / 1000 };
    }
    out.closeCodes = Object.fromEntries(this.closeCodes);
    return out;
  }
}
