import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from './latency-histogram.ts';

describe('LatencyHistogram', () => {
  it('gives percentiles within a few percent of the exact ones', () => {
    const h = new LatencyHistogram(60_000, 6, () => 1_000_000);
    for (let i = 1; i <= 1000; i += 1) h.record(i / 10); // 0.1 … 100 ms
    const p = h.percentiles();
    expect(p.count).toBe(1000);
    expect(p.max).toBe(100);
    expect(p.p50).toBeGreaterThan(50 * 0.96);
    expect(p.p50).toBeLessThan(50 * 1.05);
    expect(p.p99).toBeGreaterThan(99 * 0.96);
    expect(p.p99).toBeLessThanOrEqual(100);
  });

  it('forgets samples older than the window', () => {
    let now = 0;
    const h = new LatencyHistogram(60_000, 6, () => now);
    h.record(500);
    now += 30_000;
    h.record(5);
    expect(h.percentiles()).toMatchObject({ count: 2, max: 500 });
    now += 40_000;
    expect(h.percentiles()).toMatchObject({ count: 1, max: 5 });
    now += 60_000;
    expect(h.percentiles()).toEqual({ p50: 0, p95: 0, p99: 0, max: 0, count: 0 });
    expect(h.totalCount).toBe(2);
  });

  it('keeps cumulative buckets per label for Prometheus: one observation per record, kept past the window', () => {
    let now = 0;
    const h = new LatencyHistogram(60_000, 6, () => now, [1, 10, 100]);
    h.record(0.5, 40, 'a');
    h.record(50, 1, 'a');
    h.record(500, 1, 'b');
    now += 120_000;
    expect(h.percentiles().count).toBe(0);
    expect([...h.cumulative.keys()]).toEqual(['a', 'b']);
    expect([...h.cumulative.get('a')!.buckets]).toEqual([1, 1, 2]);
    expect(h.cumulative.get('a')).toMatchObject({ sum: 50.5, count: 2 });
    expect([...h.cumulative.get('b')!.buckets]).toEqual([0, 0, 0]);
    expect(h.cumulative.get('b')).toMatchObject({ sum: 500, count: 1 });
  });
});
