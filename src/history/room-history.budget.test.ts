import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../domain/types.ts';
import { RoomHistory } from './room-history.ts';
import { encodeEvent, storedBytes } from './serialized-event.ts';

/** What one kept event counts for the budget: the string its slot keeps, and the slot. */
const estimateBytes = (event: RoomEvent): number => storedBytes(encodeEvent(event.conversationId, event).kept);

const msg = (room: string, body: string): RoomEvent => ({
  type: 'message',
  conversationId: room,
  at: new Date(0),
  message: { id: 'm', senderId: 'u', body, sentAt: new Date(0), ackRequired: false },
});

function history(options: { maxIdleRooms?: number; maxIdleBytes?: number; ttlMs?: number } = {}) {
  let now = 0;
  let epochs = 0;
  const h = new RoomHistory({ size: 8, ttlMs: options.ttlMs ?? 1000, now: () => now, epoch: () => `ep${++epochs}`, ...options });
  return { h, advance: (ms: number) => (now += ms) };
}

describe('RoomHistory budget for rooms without members', () => {
  it('keeps at most maxIdleRooms idle logs, forgetting the one idle the longest; its late resume gets resync', () => {
    const { h, advance } = history({ maxIdleRooms: 2 });
    const ids: Record<string, string> = {};
    for (const room of ['a', 'b', 'c']) {
      h.markActive(room);
      ids[room] = h.append(room, msg(room, 'hi'), {}, true).id;
      h.markIdle(room);
      advance(1);
    }
    expect(h.counts()).toMatchObject({ rooms: 2, idleRooms: 2, evicted: 1 });
    expect(h.has('a')).toBe(false);
    expect(h.readSince('b', ids.b!)).toMatchObject({ kind: 'replay', events: [] });
    // As the service does: the resuming subscriber has joined (the room is active) when it reads.
    h.markActive('a');
    expect(h.readSince('a', ids.a!)).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
  });

  it('activity in an idle room makes it the youngest; rooms with members are never evicted', () => {
    const { h } = history({ maxIdleRooms: 2 });
    h.markActive('live');
    for (const room of ['a', 'b']) {
      h.append(room, msg(room, 'x'), {}, true); // a send into an empty room: an idle log
    }
    h.append('a', msg('a', 'again'), {}, true); // a is now younger than b
    h.append('c', msg('c', 'x'), {}, true);
    expect(h.has('b')).toBe(false);
    expect(h.has('a') && h.has('c') && h.has('live')).toBe(true);
    expect(h.counts().idleRooms).toBe(2);
  });

  it('keeps the idle logs under maxIdleBytes, counting what each event holds', () => {
    const body = 'x'.repeat(1000);
    const perEvent = estimateBytes(msg('r', body));
    const { h } = history({ maxIdleBytes: perEvent * 5 });
    for (const room of ['a', 'b', 'c']) for (let i = 0; i < 2; i += 1) h.append(room, msg(room, body), {}, true);
    // 6 events do not fit in 5: the oldest room goes whole.
    expect(h.counts()).toMatchObject({ idleRooms: 2, idleBytes: perEvent * 4, evicted: 1 });
    expect(h.has('a')).toBe(false);
    // A room that becomes active leaves the idle budget; its bytes come back when it empties.
    h.markActive('b');
    expect(h.counts().idleBytes).toBe(perEvent * 2);
    h.markIdle('b');
    expect(h.counts().idleBytes).toBe(perEvent * 4);
  });

  it('a ring that overwrites its oldest slot counts the new event instead of adding to it', () => {
    const { h } = history();
    for (let i = 0; i < 20; i += 1) h.append('r', msg('r', 'abc'), {}, true);
    expect(h.counts().idleBytes).toBe(8 * estimateBytes(msg('r', 'abc')));
  });

  it('sweeps expired idle logs oldest first and stops at the first that has not expired', () => {
    const { h, advance } = history({ ttlMs: 100 });
    h.append('a', msg('a', 'x'), {}, true);
    advance(50);
    h.append('b', msg('b', 'x'), {}, true);
    advance(60);
    expect(h.sweep()).toBe(1);
    expect([h.has('a'), h.has('b')]).toEqual([false, true]);
    expect(h.counts()).toMatchObject({ idleRooms: 1, evicted: 0 });
    advance(50);
    expect(h.sweep()).toBe(1);
    expect(h.counts()).toMatchObject({ rooms: 0, idleRooms: 0, idleBytes: 0 });
  });
});
