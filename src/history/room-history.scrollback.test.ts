import { describe, expect, it } from 'vitest';
import type { RoomEnvelope, RoomEvent } from '../domain/types.ts';
import { formatEventId, localEventIdAfter } from './event-id.ts';
import { RoomHistory } from './room-history.ts';

/** RoomHistory.readBefore: scrollback from the resume ring, without ever allocating a log. */
describe('RoomHistory.readBefore (scrollback)', () => {
  const sys = (n: number): RoomEvent => ({ type: 'system', conversationId: 'r', at: new Date(0), event: `e${n}`, data: n });
  const msg = (n: number): RoomEvent => ({
    type: 'message',
    conversationId: 'r',
    at: new Date(0),
    message: { id: `m${n}`, senderId: 'alice', body: `b${n}`, sentAt: new Date(0), ackRequired: false },
  });
  const names = (events: readonly RoomEnvelope[]) => events.map((e) => (e.event.type === 'system' ? e.event.event : e.event.type === 'message' ? e.event.message.body : e.event.type));

  function history(size = 5) {
    let now = 0;
    const h = new RoomHistory({ size, ttlMs: 1000, now: () => now, epoch: () => 'ep1' });
    return { h, advance: (ms: number) => (now += ms) };
  }

  it('pages newest first to exhaustion, each page strictly older than its `before`', () => {
    const { h } = history(10);
    const ids = Array.from({ length: 7 }, (_, i) => h.append('r', sys(i + 1), {}, true).id);
    const first = h.readBefore('r', null, 3);
    expect(names(first.events)).toEqual(['e7', 'e6', 'e5']);
    expect(first.more).toBe(true);
    const second = h.readBefore('r', first.events.at(-1)!.id, 3);
    expect(names(second.events)).toEqual(['e4', 'e3', 'e2']);
    expect(second.more).toBe(true);
    const third = h.readBefore('r', second.events.at(-1)!.id, 3);
    expect(names(third.events)).toEqual(['e1']);
    expect(third.more).toBe(false);
    expect([...first.events, ...second.events, ...third.events].map((e) => e.id)).toEqual([...ids].reverse());
    // A page that ends exactly at the oldest kept event says there is nothing older.
    expect(h.readBefore('r', ids[3]!, 3)).toMatchObject({ more: false });
    expect(names(h.readBefore('r', ids[3]!, 3).events)).toEqual(['e3', 'e2', 'e1']);
  });

  it('keeps the HISTORY_SIZE window: only what the ring still holds, as resume does', () => {
    const { h } = history(3);
    const ids = Array.from({ length: 8 }, (_, i) => h.append('r', sys(i + 1), {}, true).id);
    const page = h.readBefore('r', null, 100);
    expect(names(page.events)).toEqual(['e8', 'e7', 'e6']);
    expect(page.more).toBe(false);
    // A `before` older than the window: nothing older is kept.
    expect(h.readBefore('r', ids[2]!, 10)).toEqual({ events: [], more: false });
    expect(names(h.readBefore('r', ids[7]!, 10).events)).toEqual(['e7', 'e6']);
  });

  it('skips ephemeral events and reads positions between stored events correctly', () => {
    const { h } = history();
    const e1 = h.append('r', sys(1), {}, true);
    const typing = h.append('r', { type: 'typing', conversationId: 'r', at: new Date(0), userId: 'bob', isTyping: true }, { exceptUser: 'bob' }, false);
    const e2 = h.append('r', sys(2), {}, true);
    expect(names(h.readBefore('r', null, 10).events)).toEqual(['e2', 'e1']);
    // A typing id comes after e1: e1 is strictly older than it.
    expect(names(h.readBefore('r', typing.id, 10).events)).toEqual(['e1']);
    // A stream-local id after e2 (a `resync`, a re-send) and a `subscribed` position.
    expect(names(h.readBefore('r', localEventIdAfter(e2.id)!, 10).events)).toEqual(['e2', 'e1']);
    expect(names(h.readBefore('r', e2.id, 10).events)).toEqual(['e1']);
    expect(h.readBefore('r', e1.id, 10)).toEqual({ events: [], more: false });
    // An id ahead of the head (same epoch) just reads from the newest.
    expect(names(h.readBefore('r', formatEventId('ep1', 99), 10).events)).toEqual(['e2', 'e1']);
  });

  it('filters with `accept` and says `more` only when an older accepted event exists', () => {
    const { h } = history(10);
    for (let i = 1; i <= 6; i += 1) h.append('r', i % 2 === 0 ? msg(i) : sys(i), {}, true);
    const onlyMessages = (e: RoomEnvelope) => e.event.type === 'message';
    const page = h.readBefore('r', null, 2, onlyMessages);
    expect(names(page.events)).toEqual(['b6', 'b4']);
    expect(page.more).toBe(true);
    const last = h.readBefore('r', page.events.at(-1)!.id, 2, onlyMessages);
    expect(names(last.events)).toEqual(['b2']);
    expect(last.more).toBe(false);
    // Three messages, limit 3: full page, yet nothing older is accepted (e1 is a system event).
    expect(h.readBefore('r', null, 3, onlyMessages)).toMatchObject({ more: false });
  });

  it('answers an empty page for another epoch, a foreign id or an unknown room', () => {
    const { h } = history();
    h.append('r', sys(1), {}, true);
    expect(h.readBefore('r', formatEventId('other', 5), 10)).toEqual({ events: [], more: false });
    expect(h.readBefore('r', 'not-an-id', 10)).toEqual({ events: [], more: false });
    expect(h.readBefore('nobody-here', null, 10)).toEqual({ events: [], more: false });
    expect(h.readBefore('r', null, 0)).toEqual({ events: [], more: false });
  });

  it('never allocates a log, and reading does not keep an idle log alive', () => {
    const { h, advance } = history();
    const before = h.counts();
    for (let i = 0; i < 100; i += 1) h.readBefore(`random-${i}`, i % 2 === 0 ? null : formatEventId('x', i), 50);
    expect(h.has('random-0')).toBe(false);
    expect(h.counts()).toEqual(before);

    h.append('idle-room', sys(1), {}, true); // created idle (nobody joined)
    advance(600);
    expect(h.readBefore('idle-room', null, 10).events).toHaveLength(1);
    advance(600); // 1200 ms after its last append: past the TTL whatever was read in between
    h.sweep();
    expect(h.has('idle-room')).toBe(false);
    expect(h.readBefore('idle-room', null, 10)).toEqual({ events: [], more: false });
  });
});
