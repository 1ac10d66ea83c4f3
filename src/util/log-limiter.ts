/**
 * Lets a line through at most once per `intervalMs` per key, for log lines a client can trigger
 * (refused tokens, bad frames): an operator sees the first at once and then one line per interval
 * saying how many were held back, and no client can flood the log. Keys are few (a kind of
 * event, never a user-chosen string); at most `maxKeys` are remembered, oldest forgotten first.
 */
export class LogLimiter {
  private readonly keys = new Map<string, { at: number; suppressed: number }>();

  constructor(
    private readonly intervalMs = 60_000,
    private readonly maxKeys = 1000,
    // Read at each call, not bound once: tests that move the clock move this one too.
    private readonly now: () => number = () => Date.now(),
  ) {}

  /**
   * Whether to log this one now: `{ suppressed }` (how many were held back since the last line
   * for this key) when it should be logged, null when it should not.
   */
  allow(key: string): { suppressed: number } | null {
    const now = this.now();
    const entry = this.keys.get(key);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed += 1;
      return null;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.keys.delete(key);
    if (this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value!);
    this.keys.set(key, { at: now, suppressed: 0 });
    return { suppressed };
  }

  get size(): number {
    return this.keys.size;
  }
}
