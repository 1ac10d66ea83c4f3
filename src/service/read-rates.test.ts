import { describe, expect, it } from 'vitest';
import { DomainError } from '../domain/errors.ts';
import { historyReadCost, MAX_READ_RATE_USERS, memberReadCost, ReadRates } from './read-rates.ts';

describe('ReadRates', () => {
  const refusal = (fn: () => void): DomainError => {
    try {
      fn();
    } catch (error) {
      if (error instanceof DomainError) return error;
      throw error;
    }
    throw new Error('not refused');
  };

  it('weighs history by limit and presence by the member entries read', () => {
    expect([1, 25, 26, 50, 100].map(historyReadCost)).toEqual([1, 1, 2, 2, 4]);
    expect([0, 249, 250, 1000, 10_000].map(memberReadCost)).toEqual([0, 0, 1, 4, 40]);
  });

  it('refuses with RATE_LIMITED and the wait, spends nothing on a refusal, and keeps users apart', () => {
    let now = 0;
    const reads = new ReadRates({ readRatePerSec: 10, readRateBurst: 4 }, () => now);
    reads.take('mallory', 2);
    reads.take('mallory', 2);
    const refused = refusal(() => reads.take('mallory', 1));
    expect(refused.code).toBe('RATE_LIMITED');
    expect(refused.retryAfterMs).toBe(100);
    expect(refused.message).toBe('too many reads; retry in 100 ms (READ_RATE_PER_SEC)');
    expect(refusal(() => reads.take('mallory', 1)).retryAfterMs).toBe(100);
    reads.take('alice', 4); // another user's bucket is full
    now += 100;
    reads.take('mallory', 1);
    // A presence read of a large room leaves a debt the next read waits out.
    reads.charge('mallory', 3);
    expect(refusal(() => reads.take('mallory', 1)).retryAfterMs).toBe(400);
  });

  it('forgets refilled buckets on a read at most every 10 s, and never holds more than MAX_READ_RATE_USERS', () => {
    let now = 0;
    const reads = new ReadRates({ readRatePerSec: 1000, readRateBurst: 1000 }, () => now);
    for (let i = 0; i < 1000; i += 1) reads.take(`u${i}`, 1);
    expect(reads.size).toBe(1000);
    now += 10_000;
    reads.take('late', 1); // the sweep runs before this read: the 1,000 refilled long ago
    expect(reads.size).toBe(1);
    for (let i = 0; i < MAX_READ_RATE_USERS + 500; i += 1) reads.take(`v${i}`, 1);
    expect(reads.size).toBe(MAX_READ_RATE_USERS);
  });
});
