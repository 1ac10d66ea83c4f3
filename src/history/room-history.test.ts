import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../domain/types.ts';
import { compareEventIds, eventIdBefore, formatEventId, localEventIdAfter, parseEventId } from './event-id.ts';
import { RoomHistory } from './room-history.ts';

const ev = (n: number): RoomEvent => ({ type: 'system', conversationId: 'r1', at: new Date(0), event: `e${n}`, data: n });

function history(size = 3, ttlMs = 1000) {
  let now = 0;
  let epochs = 0;
  const h = new RoomHistory({ size, ttlMs, now: () => now, epoch: () => `ep${++epochs}` });
  return { h, advance: (ms: number) => (now += ms) };
}

describe('event ids', () => {
  it('sort as strings and as numbers within an epoch, ephemeral ids between stored ones', () => {
    const ids = [formatEventId('e', 9), formatEventId('e', 9, 1), formatEventId('e', 9, 2), formatEventId('e', 10)];
    expect([...ids].sort()).toEqual(ids);
    const parsed = ids.map((id) => parseEventId(id)!);
    for (let i = 1; i < parsed.length; i += 1) expect(compareEventIds(parsed[i - 1]!, parsed[i]!)).toBeLessThan(0);
    expect(compareEventIds(parseEventId('a:1')!, parseEventId('b:1')!)).toBeNull();
  });

  it('puts a stream-local id after its position and before the room\'s next event; a resume from it is a resume from the position', () => {
    const ids = [formatEventId('e', 9), localEventIdAfter(formatEventId('e', 9))!, formatEventId('e', 9, 0, 2), formatEventId('e', 9, 1), localEventIdAfter(formatEventId('e', 9, 1))!, formatEventId('e', 10)];
    expect([...ids].sort()).toEqual(ids);
    const parsed = ids.map((id) => parseEventId(id)!);
    for (let i = 1; i < parsed.length; i += 1) expect(compareEventIds(parsed[i - 1]!, parsed[i]!)).toBeLessThan(0);
    expect(localEventIdAfter(ids[1]!)).toBe(ids[2]);
    expect(localEventIdAfter('nonsense')).toBeNull();
    // Just before a room event: a resume from there replays it.
    expect(eventIdBefore(formatEventId('e', 10))).toBe(formatEventId('e', 9));
    expect(eventIdBefore(formatEventId('e', 9, 2))).toBe(formatEventId('e', 9));
    expect(eventIdBefore(formatEventId('e', 0))).toBeNull();
    const { h } = history();
    const first = h.append('r', { type: 'system', conversationId: 'r', at: new Date(), event: 'a', data: null }, {}, true);
    const second = h.append('r', { type: 'system', conversationId: 'r', at: new Date(), event: 'b', data: null }, {}, true);
    const resumed = h.readSince('r', localEventIdAfter(first.id)!);
    expect(resumed.kind === 'replay' && resumed.events.map((e) => e.id)).toEqual([second.id]);
    expect(h.readSince('r', localEventIdAfter(second.id)!)).toMatchObject({ kind: 'replay', events: [] });
  });

  it('rejects what is not an id', () => {
    for (const bad of ['', 'nonsense', 'e:', ':1', 'e:1.', 'e:-1', 'e:1:2', 'e:1-', 'e:1.2.3', 'a b:1', `e:${'9'.repeat(20)}`]) {
      expect(parseEventId(bad)).toBeNull();
    }
  });
});

describe('RoomHistory', () => {
  it('replays exactly the stored events after the given id', () => {
    const { h } = history(5);
    const ids = [1, 2, 3, 4].map((n) => h.append('r1', ev(n), {}, true).id);
    const result = h.readSince('r1', ids[1]!);
    expect(result).toMatchObject({ kind: 'replay', head: ids[3] });
    expect(result.kind === 'replay' && result.events.map((e) => e.id)).toEqual([ids[2], ids[3]]);
    expect(h.readSince('r1', ids[3]!)).toMatchObject({ kind: 'replay', events: [] });
  });

  it('does not store ephemeral events but gives them ids in order', () => {
    const { h } = history(5);
    const a = h.append('r1', ev(1), {}, true).id;
    const typing = h.append('r1', ev(2), {}, false).id;
    const b = h.append('r1', ev(3), {}, true).id;
    expect([a, typing, b]).toEqual([...[a, typing, b]].sort());
    const result = h.readSince('r1', typing);
    expect(result.kind === 'replay' && result.events.map((e) => e.id)).toEqual([b]);
    expect(h.counts().events).toBe(2);
  });

  it('answers resync when the id is older than the ring keeps', () => {
    const { h } = history(3);
    const ids = [1, 2, 3, 4, 5].map((n) => h.append('r1', ev(n), {}, true).id);
    // ring holds 3,4,5: resuming after 2 is complete, after 1 is not.
    expect(h.readSince('r1', ids[1]!).kind).toBe('replay');
    expect(h.readSince('r1', ids[0]!)).toMatchObject({ kind: 'resync', reason: 'history_truncated', head: ids[4] });
  });

  it('answers resync for unknown epochs, garbage and ids from the future', () => {
    const { h } = history();
    const id = h.append('r1', ev(1), {}, true).id;
    expect(h.readSince('r1', 'other:000000000001')).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
    expect(h.readSince('r1', 'garbage')).toMatchObject({ kind: 'resync', reason: 'unknown_event_id' });
    expect(h.readSince('r1', id.replace(/1$/, '9'))).toMatchObject({ kind: 'resync', reason: 'unknown_event_id' });
  });

  it('forgets an idle room after the TTL, and a new epoch starts', () => {
    const { h, advance } = history(3, 1000);
    h.markActive('r1');
    const id = h.append('r1', ev(1), {}, true).id;
    advance(5000);
    expect(h.sweep()).toBe(0); // active rooms never expire
    h.markIdle('r1');
    advance(999);
    expect(h.sweep()).toBe(0);
    advance(1);
    expect(h.sweep()).toBe(1);
    expect(h.has('r1')).toBe(false);
    expect(h.readSince('r1', id)).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
  });

  it('with size 0 keeps nothing: any gap is a resync', () => {
    const { h } = history(0);
    const a = h.append('r1', ev(1), {}, true).id;
    const b = h.append('r1', ev(2), {}, true).id;
    expect(h.readSince('r1', b)).toMatchObject({ kind: 'replay', events: [] });
    expect(h.readSince('r1', a)).toMatchObject({ kind: 'resync', reason: 'history_truncated' });
  });
});
