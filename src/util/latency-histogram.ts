/**
 * The one latency histogram, with two views of the same samples:
 *  - windowed percentiles for the admin plane (GraphQL `stats`): log buckets (HDR-style, ~4 %
 *    relative error) of the last `windowMs`, split into `slices` that rotate out as time passes;
 *  - cumulative buckets since start, per label, for Prometheus (metrics/metrics.ts exports them
 *    as a histogram): fixed upper bounds (`cumulativeBoundsMs`), a sum and a count.
 * `record` is O(1) with no allocation once a label has been seen. A `record` of `count` samples
 * (a fan-out's deliveries, which share one latency) weighs `count` in the percentiles and is one
 * observation in the cumulative view (Prometheus counts messages, not deliveries).
 */

const GROWTH = 1.04;
const MIN_MS = 0.01;
const BUCKETS = Math.ceil(Math.log(3_600_000 / MIN_MS) / Math.log(GROWTH)) + 2;
const LOG_GROWTH = Math.log(GROWTH);

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
  count: number;
}

/** Cumulative counts of one label: `buckets[i]` holds the observations ≤ `cumulativeBoundsMs[i]`. */
export interface CumulativeCounts {
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

interface Slice {
  start: number;
  counts: Uint32Array;
  total: number;
  max: number;
}

export class LatencyHistogram {
  private readonly slices: Slice[];
  private readonly sliceMs: number;
  /** Samples recorded since start (not windowed). */
  totalCount = 0;

  /** By label ('' when unlabelled), in the order first seen. */
  readonly cumulative = new Map<string, CumulativeCounts>();

  constructor(
    windowMs = 60_000,
    slices = 6,
    private readonly now: () => number = Date.now,
    /** Upper bounds (ms, ascending) of the cumulative view; none: no cumulative view. */
    readonly cumulativeBoundsMs: readonly number[] = [],
  ) {
    this.sliceMs = Math.ceil(windowMs / slices);
    this.slices = Array.from({ length: slices }, () => ({ start: -Infinity, counts: new Uint32Array(BUCKETS), total: 0, max: 0 }));
  }

  /** Records `count` samples of the same value (a fan-out's deliveries share one latency). */
  record(ms: number, count = 1, label = ''): void {
    this.observe(ms, label);
    const value = ms > MIN_MS ? ms : MIN_MS;
    const bucket = Math.min(BUCKETS - 1, Math.floor(Math.log(value / MIN_MS) / LOG_GROWTH) + 1);
    const slice = this.current();
    slice.counts[bucket]! += count;
    slice.total += count;
    if (ms > slice.max) slice.max = ms;
    this.totalCount += count;
  }

  /** Percentiles of the samples in the window; zeros when there are none. */
  percentiles(): Percentiles {
    const cutoff = this.now() - this.sliceMs * this.slices.length;
    const live = this.slices.filter((s) => s.start > cutoff && s.total > 0);
    const count = live.reduce((n, s) => n + s.total, 0);
    if (count === 0) return { p50: 0, p95: 0, p99: 0, max: 0, count: 0 };
    const max = Math.max(...live.map((s) => s.max));
    const at = (q: number): number => {
      const rank = Math.max(1, Math.ceil(q * count));
      let seen = 0;
      for (let b = 0; b < BUCKETS; b += 1) {
        for (const s of live) seen += s.counts[b]!;
        // Upper bound of the bucket, capped by the exact maximum seen.
        if (seen >= rank) return Math.min(max, b === 0 ? MIN_MS : MIN_MS * GROWTH ** b);
      }
      return max;
    };
    return { p50: round(at(0.5)), p95: round(at(0.95)), p99: round(at(0.99)), max: round(max), count };
  }

  private observe(ms: number, label: string): void {
    const bounds = this.cumulativeBoundsMs;
    if (bounds.length === 0) return;
    let counts = this.cumulative.get(label);
    if (!counts) this.cumulative.set(label, (counts = { buckets: new Float64Array(bounds.length), sum: 0, count: 0 }));
    for (let i = bounds.length - 1; i >= 0 && ms <= bounds[i]!; i -= 1) counts.buckets[i]! += 1;
    counts.sum += ms;
    counts.count += 1;
  }

  private current(): Slice {
    const now = this.now();
    const start = now - (now % this.sliceMs);
    const index = Math.floor(now / this.sliceMs) % this.slices.length;
    const slice = this.slices[index]!;
    if (slice.start !== start) {
      slice.start = start;
      slice.counts.fill(0);
      slice.total = 0;
      slice.max = 0;
    }
    return slice;
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}
