/**
 * Per-key token buckets: `take(key)` spends one token (or `cost`) or says how long until they are
 * back. Full buckets are forgotten on the periodic sweep, so memory follows the active keys only;
 * with `maxKeys` the map never holds more than that many keys (the least recently used is
 * forgotten first — it starts again with a full bucket, the most lenient mistake).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
    private readonly maxKeys = Number.POSITIVE_INFINITY,
  ) {}

  /**
   * Returns 0 when allowed (the tokens are spent), else the milliseconds until `cost` tokens are
   * available (nothing is spent). A cost above the burst is taken as the burst, so it can pass.
   */
  take(key: string, cost = 1): number {
    const bucket = this.refilled(key);
    const needed = Math.min(cost, this.burst);
    if (bucket.tokens >= needed) {
      bucket.tokens = Math.max(-this.burst, bucket.tokens - cost);
      return 0;
    }
    return Math.ceil(((needed - bucket.tokens) * 1000) / this.ratePerSec);
  }

  /**
   * Spends `cost` more, allowed or not: work whose size was known only once it was done. The
   * bucket may go into debt (down to minus the burst), which the key's next calls wait out.
   */
  charge(key: string, cost: number): void {
    if (cost <= 0) return;
    const bucket = this.refilled(key);
    bucket.tokens = Math.max(-this.burst, bucket.tokens - cost);
  }

  /** Drops buckets that have refilled completely. */
  sweep(): void {
    const now = this.now();
    for (const [key, b] of this.buckets) {
      if (b.tokens + ((now - b.at) * this.ratePerSec) / 1000 >= this.burst) this.buckets.delete(key);
    }
  }

  get size(): number {
    return this.buckets.size;
  }

  /** The key's bucket brought up to now, and (with `maxKeys`) moved to the most recently used end. */
  private refilled(key: string): { tokens: number; at: number } {
    const now = this.now();
    let bucket = this.buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, at: now };
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    } else if (this.maxKeys !== Number.POSITIVE_INFINITY) {
      this.buckets.delete(key);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.ratePerSec) / 1000);
    bucket.at = now;
    this.buckets.set(key, bucket);
    return bucket;
  }
}
