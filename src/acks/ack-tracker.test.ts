import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeliveryReport } from '../domain/types.ts';
import { AckTracker, type RetryRequest } from './ack-tracker.ts';

describe('AckTracker', () => {
  let reports: DeliveryReport[];
  let retries: RetryRequest[];
  let tracker: AckTracker;

  beforeEach(() => {
    vi.useFakeTimers();
    reports = [];
    retries = [];
    tracker = new AckTracker({
      retryMs: 100,
      reportRetentionMs: 10_000,
      onReport: (report) => reports.push(report),
      onRetry: (request) => retries.push(request),
      now: () => Date.now(),
    });
  });

  afterEach(() => {
    tracker.close();
    vi.useRealTimers();
  });

  const track = (expected: string[], timeoutMs = 1000) =>
    tracker.track({ messageId: 'm1', conversationId: 'r1', senderId: 'alice', expected, timeoutMs });

  it('reports delivered as soon as every expected user acked', () => {
    track(['bob', 'carol']);
    expect(tracker.ack('m1', 'r1', 'bob')).toEqual({ accepted: true, duplicate: false, late: false });
    vi.advanceTimersByTime(30);
    expect(reports).toHaveLength(0);
    tracker.ack('m1', 'r1', 'carol');
    expect(reports).toHaveLength(1);
    expect(reports[0]).toMatchObject({ status: 'delivered', expected: ['bob', 'carol'], acked: ['bob', 'carol'], missing: [], latencyMs: 30 });
    expect(tracker.pendingCount).toBe(0);
  });

  it('reports partial at the timeout, naming the missing users', () => {
    track(['bob', 'carol']);
    tracker.ack('m1', 'r1', 'bob');
    vi.advanceTimersByTime(999);
    expect(reports).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(reports[0]).toMatchObject({ status: 'partial', acked: ['bob'], missing: ['carol'], latencyMs: 1000 });
  });

  it('reports failed when nobody acked, and at once when there is no recipient', () => {
    track([]);
    expect(reports[0]).toMatchObject({ status: 'failed', expected: [], latencyMs: 0 });
    tracker.track({ messageId: 'm2', conversationId: 'r1', senderId: 'alice', expected: ['bob'], timeoutMs: 50 });
    vi.advanceTimersByTime(50);
    expect(reports[1]).toMatchObject({ messageId: 'm2', status: 'failed', missing: ['bob'] });
  });

  it('counts a repeated ack once and says so', () => {
    track(['bob', 'carol']);
    tracker.ack('m1', 'r1', 'bob');
    expect(tracker.ack('m1', 'r1', 'bob')).toEqual({ accepted: true, duplicate: true, late: false });
    expect(tracker.pending()[0]).toMatchObject({ acked: ['bob'], missing: ['carol'] });
  });

  it('refuses acks from users who were not expected, and for unknown messages', () => {
    track(['bob']);
    expect(() => tracker.ack('m1', 'r1', 'mallory')).toThrow(expect.objectContaining({ code: 'ACK_NOT_EXPECTED' }));
    expect(() => tracker.ack('m1', 'other-room', 'bob')).toThrow(expect.objectContaining({ code: 'ACK_UNKNOWN' }));
    expect(() => tracker.ack('nope', 'r1', 'bob')).toThrow(expect.objectContaining({ code: 'ACK_UNKNOWN' }));
  });

  it('answers late acks after the report, until the report is forgotten', () => {
    track(['bob', 'carol']);
    tracker.ack('m1', 'r1', 'bob');
    vi.advanceTimersByTime(1000);
    expect(tracker.ack('m1', 'r1', 'carol')).toEqual({ accepted: false, duplicate: false, late: true });
    expect(tracker.ack('m1', 'r1', 'bob')).toEqual({ accepted: false, duplicate: true, late: true });
    expect(() => tracker.ack('m1', 'r1', 'mallory')).toThrow(expect.objectContaining({ code: 'ACK_NOT_EXPECTED' }));
    expect(reports).toHaveLength(1);
    vi.advanceTimersByTime(10_000);
    expect(tracker.status('m1')).toBeUndefined();
    expect(() => tracker.ack('m1', 'r1', 'carol')).toThrow(expect.objectContaining({ code: 'ACK_UNKNOWN' }));
  });

  it('asks for re-sends to the missing users every retry interval until the report', () => {
    track(['bob', 'carol'], 350);
    vi.advanceTimersByTime(100);
    expect(retries).toEqual([{ messageId: 'm1', conversationId: 'r1', missing: ['bob', 'carol'], attempt: 2 }]);
    tracker.ack('m1', 'r1', 'bob');
    vi.advanceTimersByTime(100);
    expect(retries[1]).toMatchObject({ missing: ['carol'], attempt: 3 });
    vi.advanceTimersByTime(150);
    expect(reports).toHaveLength(1);
    const count = retries.length;
    vi.advanceTimersByTime(1000);
    expect(retries).toHaveLength(count);
    expect(vi.getTimerCount()).toBe(1); // only the report-retention sweep
  });

  it('shows a pending report while waiting, then the final one', () => {
    track(['bob']);
    expect(tracker.status('m1')?.report).toMatchObject({ status: 'pending', completedAt: null, missing: ['bob'] });
    tracker.ack('m1', 'r1', 'bob');
    expect(tracker.status('m1')).toMatchObject({ senderId: 'alice', report: { status: 'delivered' } });
  });

  it('flushAll reports every pending entry exactly once and leaves no timer', () => {
    for (let i = 0; i < 100; i += 1) {
      tracker.track({ messageId: `m${i}`, conversationId: 'r1', senderId: 'alice', expected: ['bob'], timeoutMs: 5000 });
    }
    tracker.ack('m0', 'r1', 'bob');
    tracker.flushAll();
    vi.advanceTimersByTime(10_000);
    expect(reports).toHaveLength(100);
    expect(new Set(reports.map((r) => r.messageId)).size).toBe(100);
    expect(reports.filter((r) => r.status === 'delivered')).toHaveLength(1);
    expect(tracker.pendingCount).toBe(0);
  });

  it('refuses to track the same message twice', () => {
    track(['bob']);
    expect(() => track(['bob'])).toThrow(/already tracked/);
  });
});
