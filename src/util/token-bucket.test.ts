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
