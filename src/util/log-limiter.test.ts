import { describe, expect, it } from 'vitest';
import { LogLimiter } from './log-limiter.ts';

describe('LogLimiter', () => {
  it('lets the first line through, holds back the rest of the interval, then reports how many', () => {
    let now = 0;
    const limiter = new LogLimiter(1000, 10, () => now);
    expect(limiter.allow('a')).toEqual({ suppressed: 0 });
    expect(limiter.allow('a')).toBeNull();
    expect(limiter.allow('a')).toBeNull();
    expect(limiter.allow('b')).toEqual({ suppressed: 0 });
    now = 999;
    expect(limiter.allow('a')).toBeNull();
    now = 1000;
    expect(limiter.allow('a')).toEqual({ suppressed: 3 });
  });

  it('remembers at most maxKeys keys', () => {
    const limiter = new LogLimiter(1000, 3, () => 0);
    for (const key of ['a', 'b', 'c', 'd', 'e']) limiter.allow(key);
    expect(limiter.size).toBe(3);
    // 'a' was forgotten: it is let through again.
    expect(limiter.allow('a')).toEqual({ suppressed: 0 });
  });
});
