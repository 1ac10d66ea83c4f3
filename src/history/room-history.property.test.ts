import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { RoomEvent } from '../domain/types.ts';
import { formatEventId } from './event-id.ts';
import { RoomHistory } from './room-history.ts';

/**
 * Resume against a model: for any ring size and any sequence of appends (stored or ephemeral)
 * to two rooms, `readSince(id)` for every id the history ever returned either replays exactly
 * the stored events after that id, in order, or — only when the ring really dropped one of them —
 * answers `resync` with `history_truncated`. Ids are strictly increasing per room (also as
 * strings), and ids the room never issued are answered with a resync, never a silent replay.
 */

const ROOMS = ['a', 'b'] as const;

const event = (n: number): RoomEvent => ({ type: 'system', conversationId: 'r', at: new Date(0), event: `e${n}`, data: n });

interface Issued {
  id: string;
  /** How many stored events the room had when this id was issued (its seq). */
  storedBefore: number;
}

describe('RoomHistory (property)', () => {
  it('replays exactly the stored events after any issued id, or resyncs only when the ring dropped one', () => {
    const ops = fc.array(fc.record({ room: fc.constantFrom(...ROOMS), store: fc.boolean() }), { maxLength: 40 });
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 6 }), ops, (size, appends) => {
        let epochs = 0;
        const history = new RoomHistory({ size, ttlMs: 1000, now: () => 0, epoch: () => `ep${++epochs}` });
        const issued = new Map<string, Issued[]>(ROOMS.map((r) => [r, []]));
        /** Every stored envelope per room, in order: the model of what a perfect log would replay. */
        const stored = new Map<string, Array<{ id: string; event: RoomEvent }>>(ROOMS.map((r) => [r, []]));

        appends.forEach(({ room, store }, n) => {
          const envelope = history.append(room, event(n), {}, store);
          const ids = issued.get(room)!;
          const previous = ids.at(-1)?.id;
          if (previous !== undefined) expect(envelope.id > previous, `${envelope.id} after ${previous}`).toBe(true);
          const log = stored.get(room)!;
          if (store) log.push({ id: envelope.id, event: envelope.event });
          ids.push({ id: envelope.id, storedBefore: log.length });
          expect(history.head(room)).toBe(envelope.id);

          // Every id ever issued by this room, checked against the model after this append.
          const kept = Math.min(size, log.length);
          const firstKept = log.length - kept; // index in `log` of the oldest event still in the ring
          for (const { id, storedBefore } of ids) {
            const after = log.slice(storedBefore);
            const result = history.readSince(room, id);
            expect(result.head).toBe(envelope.id);
            if (after.length === 0 || storedBefore >= firstKept) {
              expect(result.kind, `resume after ${id} (size ${size}, ${log.length} stored)`).toBe('replay');
              expect(result.kind === 'replay' && result.events.map((e) => ({ id: e.id, event: e.event }))).toEqual(after);
            } else {
              expect(result).toEqual({ kind: 'resync', reason: 'history_truncated', head: envelope.id });
            }
          }

          // Ids this room never issued: from the future, from another epoch, or not ids at all.
          const epoch = envelope.id.slice(0, envelope.id.indexOf(':'));
          expect(history.readSince(room, formatEventId(epoch, log.length + 1))).toMatchObject({ kind: 'resync', reason: 'unknown_event_id' });
          expect(history.readSince(room, formatEventId('elsewhere', Math.max(1, log.length)))).toMatchObject({ kind: 'resync', reason: 'history_unavailable' });
          expect(history.readSince(room, `${envelope.id}x`)).toMatchObject({ kind: 'resync', reason: 'unknown_event_id' });
        });

        // The ring never holds more than `size` events per room.
        expect(history.counts().events).toBe(ROOMS.reduce((sum, r) => sum + Math.min(size, stored.get(r)!.length), 0));
      }),
      { numRuns: 300 },
    );
  });
});
