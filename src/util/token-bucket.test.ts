import { describe, expect, it } from 'vitest';
import { TokenBuckets } from './token-bucket.ts';

describe('TokenBuckets', () => {
  it('allows the burst, then one per refill interval, and says how long to wait', () => {
    let now = 0;
    const buckets = new TokenBuckets(10, 3, () => now);
    expect([buckets.take('a'), buckets.take('a'), buckets.take('a')]).toEqual([0, 0, 0]);
    expect(buckets.take('a')).toBe(100);
    expect(buckets.take('b')).toBe(0); // keys are independent
    now += 100;
    expect(buckets.take('a')).toBe(0);
    now += 10_000;
    buckets.sweep();
    expect(buckets.size).toBe(0);
  });
});

describe('TokenBuckets: costs, debt and a bounded map', () => {
  it('spends a cost at once, refuses it (spending nothing) while short, and names the wait for the whole cost', () => {
    let now = 0;
    const buckets = new TokenBuckets(10, 10, () => now);
    expect(buckets.take('a', 4)).toBe(0);
    expect(buckets.take('a', 4)).toBe(0);
    expect(buckets.take('a', 4)).toBe(200); // 2 left, 2 more needed at 10/s
    expect(buckets.take('a', 4)).toBe(200); // the refusal spent nothing
    now += 200;
    expect(buckets.take('a', 4)).toBe(0);
    // A cost above the burst is taken as the burst: it passes once the bucket is full.
    now += 10_000;
    expect(buckets.take('a', 50)).toBe(0);
    expect(buckets.take('a', 1)).toBe(1100); // …and left the bucket 10 in debt (at most the burst): 11 to go
  });

  it('charge() spends after the fact, into debt, which the next take waits out', () => {
    let now = 0;
    const buckets = new TokenBuckets(10, 5, () => now);
    expect(buckets.take('a')).toBe(0);
    buckets.charge('a', 8); // 4 - 8 = -4
    expect(buckets.take('a')).toBe(500);
    now += 500;
    expect(buckets.take('a')).toBe(0);
    buckets.charge('a', 1000); // debt is capped at the burst
    expect(buckets.take('a')).toBe(600);
  });

  it('never holds more than maxKeys keys: the least recently used is forgotten first, and sweep empties it', () => {
    let now = 0;
    const buckets = new TokenBuckets(1, 2, () => now, 100);
    for (let i = 0; i < 10_000; i += 1) {
      buckets.take(`user-${i}`);
      expect(buckets.size).toBeLessThanOrEqual(100);
    }
    expect(buckets.size).toBe(100);
    // A key in use stays: touched on every round, it is never the least recently used.
    buckets.take('busy');
    buckets.take('busy');
    for (let i = 0; i < 1000; i += 1) {
      buckets.take(`other-${i}`);
      if (i % 50 === 0) expect(buckets.take('busy')).toBeGreaterThan(0);
    }
    now += 2000;
    buckets.sweep();
    expect(buckets.size).toBe(0);
  });
});
