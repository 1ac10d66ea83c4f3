import superjson from 'superjson';
import type { RoomEvent, RoomEventType, RoomId, SerializedEvent } from '../domain/types.ts';
import { joinJson, skeletonParts, splitJson } from './json-skeleton.ts';

/**
 * The form the single-node history keeps an event in (issue 16): the superjson text the frames
 * are built from, not the object graph — about a third of the memory (README "Performance").
 * The serialization is the one the fan-out needs anyway (the broker hands it on with the live
 * envelope), so storing costs no second one. To keep a stored event small, what it shares with
 * the room's other events is kept once: the head, `{"type":…,"conversationId":<the room>`, and
 * the skeleton of the rest (json-skeleton.ts); a slot keeps the string values.
 */

/** The event back from its text: equal to the one serialized (Dates, shared references and all). */
export function deserializeEvent(serialized: SerializedEvent): RoomEvent {
  const json = JSON.parse(serialized.json) as Parameters<typeof superjson.deserialize>[0]['json'];
  return superjson.deserialize<RoomEvent>(serialized.meta === undefined ? { json } : { json, meta: JSON.parse(serialized.meta) as never });
}

/** What the history keeps of one event's serialization. */
export interface EncodedEvent {
  type: RoomEventType;
  /** The JSON text, without the room's head when `headless` (what `withHead` completes). */
  text: string;
  headless: boolean;
  meta: string | undefined;
  /** `text` split (json-skeleton.ts), or null when it is kept whole. */
  skeleton: string | null;
  /** What a slot keeps: the split's values, or the whole text. */
  kept: string;
}

/**
 * Serializes a stored event of `roomId`. Headless when its JSON starts with `type` and then this
 * room's `conversationId` (every event the service makes); otherwise the text is kept whole.
 */
export function encodeEvent(roomId: RoomId, event: RoomEvent): EncodedEvent {
  const { json, meta } = superjson.serialize(event);
  const metaText = meta === undefined ? undefined : JSON.stringify(meta);
  const object = json as Record<string, unknown>;
  const keys = Object.keys(object);
  const headless = keys[0] === 'type' && keys[1] === 'conversationId' && object.conversationId === roomId;
  let text: string;
  if (headless) {
    const { type: _type, conversationId: _conversationId, ...rest } = object;
    text = JSON.stringify(rest);
  } else {
    text = JSON.stringify(json);
  }
  const { skeleton, values } = splitJson(text);
  // The split is checked, not trusted: a text it would not give back exactly is kept whole.
  if (joinJson(skeletonParts(skeleton), values) === text) return { type: event.type, text, headless, meta: metaText, skeleton, kept: values };
  const whole = flat(text);
  return { type: event.type, text: whole, headless, meta: metaText, skeleton: null, kept: whole };
}

/** The head a headless text lacks: `{"type":"message","conversationId":"lobby"` (no closing brace). */
export function eventHead(type: RoomEventType, roomId: RoomId): string {
  return `{"type":${JSON.stringify(type)},"conversationId":${JSON.stringify(roomId)}`;
}

/** The event's whole JSON text from a head and a headless text (`{…}`, possibly `{}`). */
export function withHead(head: string, text: string): string {
  return text.length === 2 ? `${head}}` : `${head},${text.slice(1)}`;
}

/** Slot overhead of a kept event besides its text: the string header and the ring's slots. */
const SLOT_BYTES = 40;
const TWO_BYTE = /[\u0100-\uffff]/;

/** Memory a kept text takes (V8 keeps a string one byte a character unless a character needs two). */
export function storedBytes(text: string): number {
  return SLOT_BYTES + (TWO_BYTE.test(text) ? 2 : 1) * text.length;
}

/**
 * `JSON.stringify` answers a rope of parts (a V8 cons string: ≈ 40 % more memory for a
 * 400-character text); reading a character of it flattens it in place, so what is kept is one
 * flat string. The check is real: an event always serializes to a JSON object.
 */
function flat(text: string): string {
  if (text.charCodeAt(0) !== 0x7b) throw new Error('a room event serializes to a JSON object');
  return text;
}
