/**
 * A map whose entries expire `ttlMs` after they were set. Reads never return an expired entry;
 * `sweep()` (called by the owner's timer) frees them. With `maxSize`, setting one entry too many
 * forgets the oldest first.
 */
export class ExpiringMap<TKey, TValue> {
  private readonly entries = new Map<TKey, { value: TValue; expiresAt: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
    private readonly maxSize = Number.POSITIVE_INFINITY,
  ) {}

  get(key: TKey): TValue | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  set(key: TKey, value: TValue): void {
    this.entries.delete(key); // keep insertion order = expiry order
    this.entries.set(key, { value, expiresAt: this.now() + this.ttlMs });
    if (this.entries.size > this.maxSize) this.entries.delete(this.entries.keys().next().value as TKey);
  }

  delete(key: TKey): void {
    this.entries.delete(key);
  }

  sweep(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now) break; // insertion order is expiry order
      this.entries.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
