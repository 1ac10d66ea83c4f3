import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import type { Audience, RoomEnvelope, RoomEvent } from '../domain/types.ts';
import { RoomHistory } from '../history/room-history.ts';
import { SseEvents } from './sse/events.ts';
import { EventFrames, frameTarget } from './ws/frames.ts';

/**
 * Issue 16: the single-node history keeps events serialized, and frames are built from that
 * serialization — live (the envelope `publish` returns) and replayed (resume, scrollback). Both
 * must be byte for byte what serializing the event object gives, on WebSocket and SSE alike.
 */

const at = new Date('2026-01-02T03:04:05.006Z');
const later = new Date('2026-01-02T03:04:06.007Z');
const shared = { deep: ['x', 'y'] };
const ROOM = 'room.1:a';

const events: RoomEvent[] = [
  { type: 'message', conversationId: ROOM, at, message: { id: 'm1', senderId: 'alice', body: 'héllo "quoted" \\ \u2028 \u0001 😀 \\"', sentAt: at, ackRequired: false } },
  { type: 'message', conversationId: ROOM, at, message: { id: 'm2', senderId: 'bob', senderName: 'Bob "B"', body: 'x', sentAt: later, clientMessageId: 'c-1', ackRequired: true }, resendOf: 'ep:000000000001' },
  { type: 'user_joined', conversationId: ROOM, at, userId: 'carol', name: 'Carol' },
  { type: 'user_left', conversationId: ROOM, at, userId: 'carol' },
  { type: 'user_disconnected', conversationId: ROOM, at, userId: 'dave' },
  { type: 'presence_diff', conversationId: ROOM, at, joins: [{ userId: 'e' }, { userId: 'f', name: 'F' }], leaves: [{ userId: 'g', reason: 'left' }] },
  { type: 'message_delivered', conversationId: ROOM, at, report: { messageId: 'm1', conversationId: ROOM, status: 'partial', expected: ['a', 'b'], acked: ['a'], missing: ['b'], createdAt: at, completedAt: later, latencyMs: 12.5 } },
  { type: 'conversation_updated', conversationId: ROOM, at, changes: { title: 'T', 'a.b': 1, '0': 'zero', 10: 'ten', when: later, tags: new Set(['x']), map: new Map<unknown, unknown>([['k', at], [1, 2n]]), gone: undefined, one: shared, two: shared, empty: {} } },
  { type: 'system', conversationId: ROOM, at, event: 'deploy', data: null },
  { type: 'system', conversationId: ROOM, at, event: 'n', data: 42 },
  { type: 'system', conversationId: ROOM, at, event: 'big', data: 10n },
  { type: 'system', conversationId: ROOM, at, event: 'undef', data: undefined },
  { type: 'system', conversationId: ROOM, at, event: 'list', data: [at, 'x', [at]] },
  // Not this room's head (another conversationId, keys in another order): kept whole.
  { type: 'system', conversationId: 'elsewhere', at, event: 'e', data: 'x' },
  { conversationId: ROOM, type: 'system', at, event: 'order', data: {} } as RoomEvent,
];

const audience: Audience = { exceptConnection: 'c1' };

function plain(envelope: RoomEnvelope): RoomEnvelope {
  return { id: envelope.id, event: envelope.event, audience: envelope.audience };
}

describe('frames from the history\'s serialized events', () => {
  const history = new RoomHistory({ size: 100, ttlMs: 1000 });
  const first = history.head(ROOM);
  const live = events.map((event) => history.append(ROOM, event, audience, true));
  const replay = history.readSince(ROOM, first);
  const stored = replay.kind === 'replay' ? replay.events : [];

  it('keeps every event, decodable to an equal one', () => {
    expect(stored.map((e) => e.id)).toEqual(live.map((e) => e.id));
    for (const [i, event] of events.entries()) {
      expect(stored[i]!.event).toEqual(event);
      expect(superjson.stringify(stored[i]!.event)).toBe(superjson.stringify(event));
      expect(stored[i]!.audience).toEqual(audience);
    }
  });

  it('serializes as superjson does, live and replayed', () => {
    for (const [i, event] of events.entries()) {
      const { json, meta } = superjson.serialize(event);
      const expected = { type: event.type, json: JSON.stringify(json), meta: meta === undefined ? undefined : JSON.stringify(meta) };
      expect(live[i]!.serialized).toEqual(expected);
      expect(stored[i]!.serialized).toEqual(expected);
    }
  });

  it('builds the same WebSocket frames as from the event object', () => {
    const frames = new EventFrames();
    const reference = new EventFrames();
    for (const target of [frameTarget(1, false), frameTarget('s-7', true)]) {
      for (const [i, envelope] of [...live, ...stored].entries()) {
        const expected = reference.dataFrame(plain(envelope), target, false);
        expect(frames.dataFrame(envelope, target, true).toString('latin1'), `event ${i % events.length}`).toBe(expected.toString('latin1'));
        expect(frames.dataFrame(envelope, target, false).equals(expected)).toBe(true);
      }
    }
  });

  it('builds the same SSE events as from the event object', () => {
    const sse = new SseEvents();
    for (const envelope of [...live, ...stored]) {
      expect(sse.dataChunk(envelope, true).toString()).toBe(sse.dataChunk(plain(envelope), false).toString());
    }
  });
});
