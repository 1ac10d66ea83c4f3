/**
 * A small mergeable log-linear histogram of latencies in microseconds (HDR-style: exact below
 * 256 µs, then 128 sub-buckets per power of two, i.e. under 0.8 % error). Load generators fill
 * one each and ship it to the orchestrator as sparse [index, count] pairs, which sum exactly.
 */
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS; // 128
const LINEAR = SUB * 2; // 256: exact below this
const BUCKETS = SUB * 40;

function indexOf(us: number): number {
  const v = us < 0 ? 0 : Math.floor(us);
  if (v < LINEAR) return v;
  const bits = 31 - Math.clz32(Math.min(v, 2 ** 31 - 1)); // >= 8
  const shift = bits - SUB_BITS;
  return SUB * (shift + 1) + ((v >>> shift) - SUB);
}

/** The middle of a bucket's value range. */
function valueOf(index: number): number {
  if (index < LINEAR) return index;
  const shift = Math.floor(index / SUB) - 1;
  const low = (SUB + (index % SUB)) * 2 ** shift;
  return low + 2 ** shift / 2;
}

export type SparseHistogram = { counts: Array<[number, number]>; max: number; min: number; sum: number; n: number };

export class Histogram {
  private counts = new Float64Array(BUCKETS);
  n = 0;
  max = 0;
  min = Number.POSITIVE_INFINITY;
  sum = 0;

  record(us: number): void {
    this.counts[Math.min(indexOf(us), BUCKETS - 1)]! += 1;
    this.n += 1;
    this.sum += us;
    if (us > this.max) this.max = us;
    if (us < this.min) this.min = us;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
    this.max = 0;
    this.min = Number.POSITIVE_INFINITY;
    this.sum = 0;
  }

  toSparse(): SparseHistogram {
    const counts: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i += 1) if (this.counts[i]! > 0) counts.push([i, this.counts[i]!]);
    return { counts, max: this.max, min: this.n === 0 ? 0 : this.min, sum: this.sum, n: this.n };
  }

  merge(other: SparseHistogram): void {
    for (const [i, c] of other.counts) this.counts[i]! += c;
    if (other.n > 0) {
      this.max = Math.max(this.max, other.max);
      this.min = Math.min(this.min, other.min);
    }
    this.sum += other.sum;
    this.n += other.n;
  }

  /** The value (µs) at quantile q in [0, 1]; the exact max for q = 1. */
  quantile(q: number): number {
    if (this.n === 0) return Number.NaN;
    if (q >= 1) return this.max;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i += 1) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }

  mean(): number {
    return this.n === 0 ? Number.NaN : this.sum / this.n;
  }
}
