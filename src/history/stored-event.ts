import type { Audience, EventId, RoomEnvelope, RoomEvent, RoomEventType, RoomId, SerializedEvent, UserId } from '../domain/types.ts';
import { joinJson, skeletonParts } from './json-skeleton.ts';
import { deserializeEvent, eventHead, storedBytes, withHead, type EncodedEvent } from './serialized-event.ts';

/**
 * What a slot keeps: the string values (or the whole text) of the serialized event — or, for an
 * event that cannot be serialized (published by a node without the checks that refuse such data),
 * the event itself: each reader then gets `resync` for it, as a live subscriber did (the safety
 * net of issue 11), and the room's ids stay contiguous.
 */
export type Kept = string | RoomEvent;

/** What a slot's kept value counts for the budget (an unserializable event: generously). */
export function keptBytes(kept: Kept): number {
  return typeof kept === 'string' ? storedBytes(kept) : 16 * 1024;
}

/**
 * What a kept event shares with its neighbours, kept once per log and pointed at from each slot:
 * its type, its head (null when its text is whole), the skeleton of its JSON (null when the slot
 * keeps the text whole), its superjson meta, its audience and — for presence events — whose
 * presence it announces. Consecutive messages of one sender have the same shape, so a slot costs
 * its string values and a pointer.
 */
export interface EventShape {
  readonly type: RoomEventType;
  readonly head: string | null;
  readonly skeleton: string | null;
  /** The skeleton cut at its holes. */
  readonly parts: readonly string[] | null;
  readonly meta: string | undefined;
  readonly audience: Audience;
  /** Presence events only: the users they announce (a resume leaves the subscriber's own out). */
  readonly users: readonly UserId[] | undefined;
}

/** How many recent shapes a log compares a new event with before making it a shape of its own. */
const RECENT_SHAPES = 8;

/** A log's recent shapes; a new event takes an equal one instead of a copy. */
export class ShapeCache {
  private readonly recent: EventShape[] = [];
  private next = 0;

  shapeOf(roomId: RoomId, encoded: EncodedEvent | null, audience: Audience, event: RoomEvent): EventShape {
    const users = presenceUsers(event);
    if (!encoded) return { type: event.type, head: null, skeleton: null, parts: null, meta: undefined, audience, users };
    for (const shape of this.recent) {
      if (shape.type === encoded.type && (shape.head === null) !== encoded.headless && shape.skeleton === encoded.skeleton && shape.meta === encoded.meta && sameAudience(shape.audience, audience) && sameUsers(shape.users, users)) return shape;
    }
    const { skeleton } = encoded;
    const shape: EventShape = { type: encoded.type, head: encoded.headless ? eventHead(encoded.type, roomId) : null, skeleton, parts: skeleton === null ? null : skeletonParts(skeleton), meta: encoded.meta, audience, users };
    if (this.recent.length < RECENT_SHAPES) this.recent.push(shape);
    else this.recent[this.next] = shape;
    this.next = (this.next + 1) % RECENT_SHAPES;
    return shape;
  }
}

/**
 * A kept event read back (resume, scrollback): its serialization is at hand for the frames, and
 * the event object is decoded only if someone reads it (scrollback's page, a presence diff that
 * must leave the reader out).
 */
export class StoredEnvelope implements RoomEnvelope {
  readonly audience: Audience;
  readonly serialized: SerializedEvent | undefined;
  readonly users: readonly UserId[] | undefined;
  private decoded: RoomEvent | undefined;

  constructor(
    readonly id: EventId,
    shape: EventShape,
    kept: Kept,
  ) {
    this.audience = shape.audience;
    this.users = shape.users;
    if (typeof kept === 'string') {
      this.serialized = { type: shape.type, json: fullJson(shape, kept), meta: shape.meta };
    } else {
      this.serialized = undefined;
      this.decoded = kept;
    }
  }

  get event(): RoomEvent {
    // `decoded` is set from the start when the slot keeps the event itself.
    return (this.decoded ??= deserializeEvent(this.serialized!));
  }
}

/** The whole JSON text of a kept event from its shape and what its slot keeps. */
export function fullJson(shape: EventShape, kept: string): string {
  const text = shape.parts === null ? kept : joinJson(shape.parts, kept);
  return shape.head === null ? text : withHead(shape.head, text);
}

/** The envelope's event type, without decoding a kept event. */
export function eventType(envelope: RoomEnvelope): RoomEventType {
  return envelope.serialized?.type ?? envelope.event.type;
}

/** The users a presence event announces (undefined for other types), without decoding a kept event. */
export function presenceUsersOf(envelope: RoomEnvelope): readonly UserId[] | undefined {
  return envelope instanceof StoredEnvelope ? envelope.users : presenceUsers(envelope.event);
}

function presenceUsers(event: RoomEvent): readonly UserId[] | undefined {
  switch (event.type) {
    case 'user_joined':
    case 'user_left':
    case 'user_disconnected':
      return [event.userId];
    case 'presence_diff':
      return [...event.joins.map((j) => j.userId), ...event.leaves.map((l) => l.userId)];
    case 'message':
    case 'typing':
    case 'message_delivered':
    case 'conversation_updated':
    case 'system':
    case 'resync':
    case 'subscribed':
      return undefined;
  }
}

function sameAudience(a: Audience, b: Audience): boolean {
  return a === b || (a.exceptConnection === b.exceptConnection && a.exceptClient === b.exceptClient && a.exceptUser === b.exceptUser && sameUsers(a.onlyUsers, b.onlyUsers));
}

function sameUsers(a: readonly UserId[] | undefined, b: readonly UserId[] | undefined): boolean {
  if (a === b) return true;
  if (!a || !b || a.length !== b.length) return false;
  return a.every((user, i) => user === b[i]);
}
