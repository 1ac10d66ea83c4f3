import type { Broker } from '../broker/broker.ts';
import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { Audience, ConnectionId, EventId, ResyncReason, RoomEnvelope, RoomEvent, RoomId, UserId } from '../domain/types.ts';
import { PRESENCE_SNAPSHOT_LIMIT } from '../domain/types.ts';
import { compareEventIds, eventIdBefore, localEventIdAfter, parseEventId, type ParsedEventId } from '../history/event-id.ts';
import { eventType, presenceUsersOf } from '../history/stored-event.ts';
import type { Logger } from '../logger.ts';
import type { RoomRegistry } from '../rooms/room-registry.ts';
import { LogLimiter } from '../util/log-limiter.ts';
import { TokenBuckets } from '../util/token-bucket.ts';
import type { PresenceAnnouncer } from './presence-announcer.ts';
import type { ServiceStats } from './stats.ts';
import type { ConnectionHandle, SubscriberSink, SubscriptionHandle, SubscriptionInput } from './types.ts';

export interface SubscriptionsDeps {
  config: Pick<Config, 'maxSubscriptionsPerConnection' | 'maxRoomsPerConnection' | 'subscribeRatePerSec' | 'subscribeRateBurst' | 'maxBufferedBytes'>;
  broker: Broker;
  registry: RoomRegistry;
  presence: PresenceAnnouncer;
  stats: ServiceStats;
  log: Logger;
  /** The live connection with this id, if it is still open. */
  connection(id: ConnectionId): ConnectionHandle | undefined;
  /** Treats the connection as dropped (a slow consumer is closed). */
  closeConnection(id: ConnectionId): void;
}

/**
 * One subscription on this node, and its handle: a flat record with methods, not closures or a
 * suspended async function, so an idle subscription costs only its fields (issue 16).
 */
class LocalSubscriber implements SubscriptionHandle {
  /** Set once the connection is found, before it joins any fan-out. */
  connection!: ConnectionHandle;
  userId: UserId = '';
  /** Live events that arrive while the replay is being read; null once live. */
  held: Array<{ envelope: RoomEnvelope; redelivery: boolean }> | null = [];
  /** Its connection was closed as a slow consumer: nothing more is written to it. */
  dropped = false;
  /** The id of the last event written to it: where its client would resume from. */
  position: EventId = '';
  /** Cancelled, or ended by the server: it finishes once its start is over. */
  ending = false;
  /** Its start (limits, join, replay) is still running; that code finishes it. */
  starting = true;
  /** The registry counts it in the room: `finish` leaves. */
  joined = false;
  /** Undefined while running; once finished, null for a clean end, else its error. */
  outcome: { error: unknown } | null | undefined = undefined;
  private waiter: { promise: Promise<void>; resolve(): void; reject(error: unknown): void } | null = null;

  constructor(
    private readonly owner: Subscriptions,
    readonly roomId: RoomId,
    readonly sink: SubscriberSink,
  ) {}

  /** Ends the subscription (stop, socket close, room closed, slow consumer). */
  end(): void {
    if (this.ending) return;
    this.ending = true;
    // Deferred, as the awaited end always was: whoever ends it finishes its own loop first.
    if (!this.starting) queueMicrotask(() => this.owner.finish(this));
  }

  cancel(): void {
    this.end();
  }

  /** Made on first use only: the WebSocket transport hears the end through its sink instead. */
  get done(): Promise<void> {
    if (!this.waiter) {
      let resolve!: () => void;
      let reject!: (error: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.waiter = { promise, resolve, reject };
      this.settleWaiter();
    }
    return this.waiter.promise;
  }

  /** Its end, once: `error` undefined for a clean end. */
  settle(error: unknown): void {
    this.outcome = error === undefined ? null : { error };
    this.settleWaiter();
    this.sink.ended?.(error);
  }

  private settleWaiter(): void {
    if (!this.waiter || this.outcome === undefined) return;
    if (this.outcome === null) this.waiter.resolve();
    else this.waiter.reject(this.outcome.error);
  }
}

/** Live events held for one subscriber while its replay is read; beyond this it is a slow consumer. */
const MAX_HELD_EVENTS = 10_000;

/**
 * `conversation.events`: a subscription's life from its start to its end — the per-user start
 * rate and per-connection limits, the join, the stream's position and `subscribed`, the replay
 * (or `resync`) merged with live events held meanwhile, then the live fan-out: audience,
 * ack re-sends under stream-local ids, typing dropped for a connection behind, slow consumers cut
 * off (4008), and delivery statistics. One broker listener per room on this node.
 */
export class Subscriptions {
  private readonly subscribers = new Map<RoomId, Set<LocalSubscriber>>();
  private readonly brokerSubscriptions = new Map<RoomId, () => void>();
  /** Live subscriptions per connection (MAX_SUBSCRIPTIONS_PER_CONNECTION). */
  private readonly subscriptionCounts = new Map<ConnectionId, number>();
  private readonly subscribeRate: TokenBuckets;
  private readonly logLimiter = new LogLimiter();
  private readonly config: SubscriptionsDeps['config'];
  private readonly broker: Broker;
  private readonly registry: RoomRegistry;
  private readonly presence: PresenceAnnouncer;
  private readonly stats: ServiceStats;
  private readonly log: Logger;
  private readonly connection: SubscriptionsDeps['connection'];
  private readonly closeConnection: SubscriptionsDeps['closeConnection'];

  constructor(deps: SubscriptionsDeps) {
    ({ config: this.config, broker: this.broker, registry: this.registry, presence: this.presence, stats: this.stats, log: this.log, connection: this.connection, closeConnection: this.closeConnection } = deps);
    this.subscribeRate = new TokenBuckets(deps.config.subscribeRatePerSec, deps.config.subscribeRateBurst);
  }

  /**
   * Joins the room and streams its events to `sink`: first what the subscriber missed since
   * `lastEventId` (or a `resync`), then live events. The live listener is registered before the
   * history is read, so nothing falls in between; duplicates from that overlap are dropped by
   * id. Returns at once: `done` settles when the subscription ends (cancel, socket close, room
   * closed, slow consumer) and rejects if it could not start.
   */
  open(input: SubscriptionInput): SubscriptionHandle {
    const sub = new LocalSubscriber(this, input.conversationId, input.sink);
    void this.start(sub, input);
    return sub;
  }

  /**
   * The subscription's start, up to its going live. Then this function is over — nothing of it
   * stays suspended for the subscription's life — and `finish` does what the end needs.
   */
  private async start(sub: LocalSubscriber, input: SubscriptionInput): Promise<void> {
    let failure: { error: unknown } | null = null;
    let live = false;
    try {
      live = await this.run(sub, input);
    } catch (error) {
      failure = { error };
    } finally {
      sub.starting = false;
      // Not live: it could not start, or it was ended (or its connection closed) meanwhile.
      if (failure) this.finish(sub, failure.error);
      else if (!live || sub.ending) this.finish(sub);
    }
  }

  /** Once, when a subscription ends: out of the fan-out, out of the room, its sink told. */
  finish(sub: LocalSubscriber, error?: unknown): void {
    if (sub.outcome !== undefined) return;
    let failure = error;
    try {
      this.removeSubscriber(sub);
      if (sub.joined) this.presence.left(sub.connection.id, sub.roomId);
    } catch (cleanup) {
      failure ??= cleanup;
    }
    sub.settle(failure);
  }

  /** Starts it; true once it is live, false when it ended before. */
  private async run(sub: LocalSubscriber, input: SubscriptionInput): Promise<boolean> {
    const connection = this.connection(input.connectionId);
    if (!connection) throw new DomainError('WEBSOCKET_REQUIRED', 'connection is closed');
    if (sub.ending) return false;
    const roomId = input.conversationId;
    const userId = connection.principal.userId;
    if ((this.subscriptionCounts.get(connection.id) ?? 0) >= this.config.maxSubscriptionsPerConnection) {
      throw new DomainError('LIMIT_EXCEEDED', `too many subscriptions on this connection (max ${this.config.maxSubscriptionsPerConnection})`);
    }
    if (!this.registry.isConnectionInRoom(connection.id, roomId) && this.registry.connectionRooms(connection.id).length >= this.config.maxRoomsPerConnection) {
      throw new DomainError('LIMIT_EXCEEDED', `too many rooms on this connection (max ${this.config.maxRoomsPerConnection}); leave one first`);
    }
    // Every start may leave a room history behind: the rate per user is bounded (and what empty
    // rooms leave behind has a node-wide budget, in the broker's history).
    const wait = this.subscribeRate.take(userId);
    if (wait > 0) throw new DomainError('RATE_LIMITED', `too many subscriptions started; retry in ${wait} ms (SUBSCRIBE_RATE_PER_SEC)`, wait);

    sub.connection = connection;
    sub.userId = userId;
    this.addSubscriber(sub);
    // A cluster broker subscribes over the network: receive the room before joining it.
    await this.broker.subscribed?.(roomId);
    if (sub.ending || !this.connection(connection.id)) return false;
    const join = this.registry.join(connection.id, roomId);
    sub.joined = true;
    await this.presence.joined(connection, roomId, join);
    // `started` once the user counts as present, not before: the stock client moving a
    // subscription to a new socket (or node) stops it on the old one as soon as the new one has
    // started, and that stop must not find the user gone everywhere (a leave, then a join).
    // Events published meanwhile are held, so nothing after `started` is missed.
    if (sub.ending) return false;
    input.sink.live?.();

    // The stream's position: where a fresh subscriber starts (the room's head), or the point a
    // resume replays from. It is the id of the stream's first event, `subscribed`, so a client
    // that drops before anything else happens still resumes without loss.
    let position: EventId;
    let cutoff: ParsedEventId | null;
    let replay: RoomEnvelope[] = [];
    let resync: ResyncReason | null = null;
    if (input.lastEventId) {
      const resume = await this.broker.readSince(roomId, input.lastEventId);
      if (resume.kind === 'resync') {
        position = resume.head;
        resync = resume.reason;
      } else {
        position = input.lastEventId;
        replay = resume.events;
      }
      cutoff = parseEventId(resume.head);
    } else {
      // Every event held since the stream went live is delivered: the position must come
      // before the first of them (a send right after `started` may precede the head read).
      position = await this.broker.head(roomId);
      cutoff = null;
    }
    const present = await this.presence.someMembers(roomId, PRESENCE_SNAPSHOT_LIMIT);
    if (sub.ending) return false;
    if (!input.lastEventId) position = positionBeforeHeld(sub.held ?? [], position);
    const snapshot: RoomEvent = {
      type: 'subscribed',
      conversationId: roomId,
      at: new Date(),
      resumed: input.lastEventId !== undefined && input.lastEventId !== null && resync === null,
      members: present.members,
      memberCount: present.count,
    };
    this.writeOwn(sub, { id: position, event: snapshot, audience: {} });
    if (resync) {
      const event: RoomEvent = { type: 'resync', conversationId: roomId, at: new Date(), reason: resync };
      const envelope: RoomEnvelope = { id: localEventIdAfter(position) ?? position, event, audience: {} };
      this.writeOwn(sub, envelope);
      this.countDeliveries(envelope, 1, false);
    }
    for (const stored of replay) {
      // A user never hears its own presence live (the event skips the joining connection,
      // and no other tab exists then); a replay from an older point must not show it either —
      // nor a replayed `presence_diff` (its own entries are left out of it, an empty one skipped).
      const envelope = withoutOwnPresence(stored, userId);
      if (!envelope) continue;
      if (isFor(envelope.audience, connection.id, userId, connection.clientKey) && this.deliver(sub, envelope, false)) this.countDeliveries(envelope, 1, false);
    }
    // Live events that came in meanwhile; those at or before the position (or covered by the
    // replay) are dropped. Ack re-sends are not: they carry ids of their own (deliver).
    const held = sub.held ?? [];
    sub.held = null;
    for (const { envelope, redelivery } of held) {
      if (!redelivery && cutoff && isCovered(envelope.id, cutoff)) continue;
      if (this.deliver(sub, envelope, redelivery)) this.countDeliveries(envelope, 1, !redelivery);
    }
    return true;
  }

  /** Ends every subscription of the room; returns how many connections were in it. */
  closeRoom(conversationId: RoomId): number {
    const subs = [...(this.subscribers.get(conversationId) ?? [])];
    for (const sub of subs) sub.end();
    return new Set(subs.map((s) => s.connection.id)).size;
  }

  private addSubscriber(sub: LocalSubscriber): void {
    this.subscriptionCounts.set(sub.connection.id, (this.subscriptionCounts.get(sub.connection.id) ?? 0) + 1);
    let set = this.subscribers.get(sub.roomId);
    if (!set) {
      set = new Set();
      this.subscribers.set(sub.roomId, set);
      const roomId = sub.roomId;
      this.brokerSubscriptions.set(roomId, this.broker.subscribe(roomId, (envelope, redelivery) => this.fanOut(roomId, envelope, redelivery)));
    }
    set.add(sub);
  }

  private removeSubscriber(sub: LocalSubscriber): void {
    const set = this.subscribers.get(sub.roomId);
    if (!set?.delete(sub)) return;
    const count = (this.subscriptionCounts.get(sub.connection.id) ?? 1) - 1;
    if (count > 0) this.subscriptionCounts.set(sub.connection.id, count);
    else this.subscriptionCounts.delete(sub.connection.id);
    if (set.size === 0) {
      this.subscribers.delete(sub.roomId);
      this.brokerSubscriptions.get(sub.roomId)?.();
      this.brokerSubscriptions.delete(sub.roomId);
    }
  }

  private fanOut(roomId: RoomId, envelope: RoomEnvelope, redelivery: boolean): void {
    const set = this.subscribers.get(roomId);
    if (!set) return;
    let written = 0;
    for (const sub of set) {
      if (!isFor(envelope.audience, sub.connection.id, sub.userId, sub.connection.clientKey)) continue;
      if (sub.held) {
        if (sub.held.length >= MAX_HELD_EVENTS) this.closeSlowConsumer(sub);
        else sub.held.push({ envelope, redelivery });
        continue;
      }
      if (this.deliver(sub, envelope, redelivery)) written += 1;
    }
    this.countDeliveries(envelope, written, !redelivery);
  }

  /**
   * Writes one event to one subscriber, unless its connection is too far behind: past
   * MAX_BUFFERED_BYTES unsent it is closed as a slow consumer (it resumes from its last id when
   * it reconnects); past a quarter of that, ephemeral typing events are dropped for it first.
   * An ack re-send (`redelivery`) goes out under an id of this stream's own, after its position,
   * naming the original id in `resendOf`: the client's resume point never moves back. (The
   * fan-out's hot loop: kept small.)
   */
  private deliver(sub: LocalSubscriber, envelope: RoomEnvelope, redelivery: boolean): boolean {
    if (sub.dropped) return false;
    const buffered = sub.connection.bufferedBytes();
    if (buffered > this.config.maxBufferedBytes) {
      this.closeSlowConsumer(sub);
      return false;
    }
    if (eventType(envelope) === 'typing' && buffered > this.config.maxBufferedBytes / 4) {
      this.stats.typingDropped += 1;
      return false;
    }
    if (redelivery) return this.resend(sub, envelope);
    sub.position = envelope.id;
    try {
      sub.sink.write(envelope, true);
    } catch (error) {
      this.undeliverable(sub, envelope, error);
    }
    return true;
  }

  /**
   * The safety net behind checking events before they are published: an event whose frame
   * cannot be built (it should never happen) is not skipped silently. The subscriber gets
   * `resync` right after it — its position moves past the event, so a resume does not meet it
   * again — and the failure is logged (at most once a minute).
   */
  private undeliverable(sub: LocalSubscriber, envelope: RoomEnvelope, error: unknown): void {
    this.stats.undeliverable += 1;
    const allowed = this.logLimiter.allow('undeliverable');
    if (allowed) this.log.error({ err: error, roomId: sub.roomId, eventId: envelope.id, type: eventType(envelope), heldBack: allowed.suppressed }, 'event could not be delivered: subscriber told to resync');
    const id = localEventIdAfter(envelope.id) ?? envelope.id;
    this.writeOwn(sub, { id, event: { type: 'resync', conversationId: sub.roomId, at: new Date(), reason: 'event_undeliverable' }, audience: {} });
  }

  private resend(sub: LocalSubscriber, envelope: RoomEnvelope): boolean {
    const id = localEventIdAfter(sub.position);
    if (!id || envelope.event.type !== 'message') return false;
    this.writeOwn(sub, { id, event: { ...envelope.event, resendOf: envelope.id }, audience: envelope.audience });
    return true;
  }

  /** An event for this subscriber only (its `subscribed`, `resync`, a re-send): its position moves to it. */
  private writeOwn(sub: LocalSubscriber, envelope: RoomEnvelope): void {
    sub.position = envelope.id;
    sub.sink.write(envelope, false);
  }

  /**
   * One stats update per fan-out, not per recipient: its deliveries are written in one
   * synchronous loop and share one latency (publish to write, sub-millisecond clock). Only
   * first live deliveries are timed: replays and ack re-sends are late on purpose.
   */
  private countDeliveries(envelope: RoomEnvelope, count: number, live: boolean): void {
    if (count === 0) return;
    const type = eventType(envelope);
    let latency: number | null = null;
    // Only live events are timed; a replayed one (kept serialized) is not decoded for this.
    if (live && envelope.event.type === 'message') {
      const sent = envelope.publishedAt ?? envelope.event.message.sentAt.getTime();
      latency = Math.max(0, performance.timeOrigin + performance.now() - sent);
    }
    this.stats.delivered(type, count, latency);
  }

  /**
   * Closes a connection that is too far behind (4008), once. It counts as a dropped socket from
   * this moment: every subscription of it leaves the fan-out at once (nothing more is written to
   * it), presence sees a disconnect (after the grace), not a leave, and its subscriptions are not
   * ended here: a clean end would tell the client its stream is complete and it would not resume.
   * The transport ends them when the socket is closed.
   */
  private closeSlowConsumer(sub: LocalSubscriber): void {
    const { connection } = sub;
    const rooms = new Set([sub.roomId, ...this.registry.connectionRooms(connection.id)]);
    for (const roomId of rooms) {
      for (const other of [...(this.subscribers.get(roomId) ?? [])]) {
        if (other.connection.id !== connection.id) continue;
        other.dropped = true;
        other.held = null;
        this.removeSubscriber(other);
      }
    }
    sub.dropped = true;
    sub.held = null;
    if (!this.connection(connection.id)) return;
    this.stats.slowConsumerCloses += 1;
    this.log.warn({ connectionId: connection.id, userId: sub.userId, buffered: connection.bufferedBytes() }, 'closing slow consumer');
    this.closeConnection(connection.id);
    connection.close('slow_consumer');
  }

  /** Ends every subscription (shutdown). */
  endAll(): void {
    for (const set of this.subscribers.values()) for (const sub of set) sub.end();
  }

  /** Forgets refilled rate buckets (the owner's periodic sweep). */
  sweep(): void {
    this.subscribeRate.sweep();
  }

  sizes(): { subscribedRooms: number; subscriptionCounts: number; brokerSubscriptions: number } {
    return { subscribedRooms: this.subscribers.size, subscriptionCounts: this.subscriptionCounts.size, brokerSubscriptions: this.brokerSubscriptions.size };
  }
}

/** `head`, or just before the first live event held for a fresh stream if that is not after it. */
function positionBeforeHeld(held: ReadonlyArray<{ envelope: RoomEnvelope; redelivery: boolean }>, head: EventId): EventId {
  const first = held.find((h) => !h.redelivery)?.envelope.id;
  if (first === undefined) return head;
  const [a, b] = [parseEventId(first), parseEventId(head)];
  const order = a && b && compareEventIds(a, b);
  if (order === null || order === undefined || order > 0) return head;
  return eventIdBefore(first) ?? head;
}

/** True when the replay up to `cutoff` already contained this event. */
function isCovered(eventId: EventId, cutoff: ParsedEventId): boolean {
  const parsed = parseEventId(eventId);
  const order = parsed && compareEventIds(parsed, cutoff);
  return order !== null && order <= 0;
}

/**
 * A replayed event as `userId` may see it: its own single presence events dropped, its own
 * entries left out of a `presence_diff` (an empty one dropped). Decided from who the event
 * announces — a kept event is decoded only for a diff that lists the user.
 */
function withoutOwnPresence(envelope: RoomEnvelope, userId: UserId): RoomEnvelope | null {
  const users = presenceUsersOf(envelope);
  if (!users?.includes(userId)) return envelope;
  const { event } = envelope;
  if (event.type !== 'presence_diff') return null;
  const joins = event.joins.filter((j) => j.userId !== userId);
  const leaves = event.leaves.filter((l) => l.userId !== userId);
  return joins.length + leaves.length === 0 ? null : { id: envelope.id, event: { ...event, joins, leaves }, audience: envelope.audience };
}

function isFor(audience: Audience, connectionId: ConnectionId, userId: UserId, clientKey: string | undefined): boolean {
  if (audience.exceptConnection === connectionId) return false;
  if (audience.exceptClient !== undefined && audience.exceptClient === clientKey) return false;
  if (audience.exceptUser === userId) return false;
  if (audience.onlyUsers && !audience.onlyUsers.includes(userId)) return false;
  return true;
}
