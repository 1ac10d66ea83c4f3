import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { TypingTracker } from './typing-tracker.ts';

describe('TypingTracker', () => {
  let expired: string[];
  let tracker: TypingTracker;
  beforeEach(() => {
    vi.useFakeTimers();
    expired = [];
    tracker = new TypingTracker({ timeoutMs: 1000, onExpire: (roomId, userId) => expired.push(`${roomId}/${userId}`) });
  });
  afterEach(() => {
    tracker.close();
    vi.useRealTimers();
  });

  it('reports changes of state only', () => {
    expect(tracker.set('r1', 'alice', true, 'c1')).toBe(true);
    expect(tracker.set('r1', 'alice', true, 'c1')).toBe(false);
    expect(tracker.set('r1', 'alice', false, 'c1')).toBe(true);
    expect(tracker.set('r1', 'alice', false, 'c1')).toBe(false);
  });

  it('turns off by itself when not refreshed, and a refresh restarts the clock', () => {
    tracker.set('r1', 'alice', true, 'c1');
    vi.advanceTimersByTime(800);
    tracker.set('r1', 'alice', true, 'c1');
    vi.advanceTimersByTime(800);
    expect(expired).toEqual([]);
    vi.advanceTimersByTime(200);
    expect(expired).toEqual(['r1/alice']);
    expect(tracker.isTyping('r1', 'alice')).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('clears only the state set by the leaving connection', () => {
    tracker.set('r1', 'alice', true, 'c1');
    expect(tracker.clearConnection('r1', 'alice', 'c2')).toBe(false);
    expect(tracker.clearConnection('r1', 'alice', 'c1')).toBe(true);
    expect(tracker.size()).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
