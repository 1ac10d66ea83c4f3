import { randomUUID } from 'node:crypto';
import { LocalAckRouter, type AckRouter } from '../acks/ack-router.ts';
import { AckTracker, type AckResult, type PendingAckSnapshot, type RetryRequest } from '../acks/ack-tracker.ts';
import type { Broker } from '../broker/broker.ts';
import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type {
  Audience,
  ConnectionId,
  DeliveryReport,
  EventId,
  MemberPresence,
  MessageId,
  PendingDeliveryReport,
  Principal,
  ResyncReason,
  RoomEnvelope,
  RoomEvent,
  RoomId,
  SendResult,
  UserId,
} from '../domain/types.ts';
import { PRESENCE_SNAPSHOT_LIMIT } from '../domain/types.ts';
import { checkEventData } from '../domain/event-data.ts';
import { compareEventIds, eventIdBefore, localEventIdAfter, parseEventId, type ParsedEventId } from '../history/event-id.ts';
import type { Logger } from '../logger.ts';
import { LocalPresence } from '../presence/local-presence.ts';
import type { ClusterPresenceEvents, PresenceStore } from '../presence/presence-store.ts';
import { RoomRegistry } from '../rooms/room-registry.ts';
import { TypingTracker } from '../typing/typing-tracker.ts';
import { ExpiringMap } from '../util/expiring-map.ts';
import { LogLimiter } from '../util/log-limiter.ts';
import { TokenBuckets } from '../util/token-bucket.ts';
import { PresenceGrace } from './presence-grace.ts';
import { ServiceStats } from './stats.ts';

/** Why the server ends a connection; the transport maps each to a WebSocket close code. */
export type CloseReason = 'slow_consumer' | 'token_expired' | 'kicked' | 'room_closed' | 'shutdown';

/** What the service needs of a live connection; the transport provides it. */
export interface ConnectionHandle {
  id: ConnectionId;
  principal: Principal;
  /**
   * Bytes queued for this connection that the network has not taken (frames written in the
   * current loop turn, which leave when it ends, not counted).
   */
  bufferedBytes(): number;
  /** Ends the connection; the client may resume from its last event id. */
  close(reason: CloseReason, detail?: string): void;
}

export interface SendInput {
  principal: Principal;
  /** The sending connection (excluded from the broadcast unless `echo`); null over HTTP. */
  connectionId: ConnectionId | null;
  conversationId: RoomId;
  body: string;
  clientMessageId?: string;
  ack?: boolean | { timeoutMs: number };
  echo?: boolean;
}

/**
 * Where a subscription's events go. The transport writes each one to its socket (a pre-built
 * frame on the fast path, a generator yield otherwise); the service decides what goes out and
 * when a connection is too far behind.
 */
export interface SubscriberSink {
  /** `shared`: the same envelope goes to other subscribers too (worth caching its frame). */
  write(envelope: RoomEnvelope, shared: boolean): void;
}

export interface SubscriptionInput {
  connectionId: ConnectionId;
  conversationId: RoomId;
  lastEventId?: string | null;
  sink: SubscriberSink;
  /**
   * Called once the subscription receives the room's live events and its user counts as present
   * (cluster-wide), before any event is written. The transport sends tRPC's `started` then, so
   * "started" means nothing published from now on is missed — in a cluster the room
   * subscription crosses the network first — and that the user is in the room.
   */
  onLive?: () => void;
}

export interface SubscriptionHandle {
  /** Ends the subscription (the client stopped it); `done` then resolves. */
  cancel(): void;
  done: Promise<void>;
}

interface LocalSubscriber {
  connection: ConnectionHandle;
  roomId: RoomId;
  userId: UserId;
  sink: SubscriberSink;
  /** Live events that arrive while the replay is being read; null once live. */
  held: Array<{ envelope: RoomEnvelope; redelivery: boolean }> | null;
  /** Its connection was closed as a slow consumer: nothing more is written to it. */
  dropped: boolean;
  /** The id of the last event written to it: where its client would resume from. */
  position: EventId;
  /** Ends the subscription (stop, socket close, room closed, slow consumer). */
  end: () => void;
}

/** What a cluster replaces besides the broker (all default to this process). */
export interface ServiceSeams {
  presence?: PresenceStore;
  ackRouter?: (tracker: AckTracker) => AckRouter;
}

/** Live events held for one subscriber while its replay is read; beyond this it is a slow consumer. */
const MAX_HELD_EVENTS = 10_000;

/**
 * The realtime core: membership, presence, typing, acknowledged delivery and resume, on top of
 * the pure registry and trackers. Three seams carry what a cluster must share: every event goes
 * out through the Broker (ids, history, fan-out), presence through the PresenceStore, acks and
 * report queries through the AckRouter; each has an in-process default. Transport code (tRPC
 * routers) and embedding code call this; it knows nothing of tRPC, ws or HTTP. Access rules are
 * checked at the edge, before calls reach it.
 */
export class RealtimeService {
  readonly registry: RoomRegistry;
  readonly acks: AckTracker;
  readonly typing: TypingTracker;
  readonly stats = new ServiceStats();
  private readonly grace: PresenceGrace;
  /** Service-wide presence (seam): local by default. */
  readonly presenceStore: PresenceStore;
  /** Where acks and status queries go (seam): the local tracker by default. */
  readonly ackRouter: AckRouter;
  private readonly connections = new Map<ConnectionId, ConnectionHandle>();
  private readonly subscribers = new Map<RoomId, Set<LocalSubscriber>>();
  private readonly brokerSubscriptions = new Map<RoomId, () => void>();
  /** Live subscriptions per connection (MAX_SUBSCRIPTIONS_PER_CONNECTION). */
  private readonly subscriptionCounts = new Map<ConnectionId, number>();
  /** Envelopes of messages waiting for acks, for re-sends with the same id. */
  private readonly awaitingAck = new Map<MessageId, RoomEnvelope>();
  /** Callers of broadcastWithAck waiting for their report. */
  private readonly reportWaiters = new Map<MessageId, (report: DeliveryReport) => void>();
  private readonly sent: ExpiringMap<string, Promise<SendResult>>;
  private readonly messageRate: TokenBuckets;
  private readonly typingRate: TokenBuckets;
  private readonly subscribeRate: TokenBuckets;
  private readonly logLimiter = new LogLimiter();
  private readonly sweepTimer: NodeJS.Timeout;
  private closing = false;

  constructor(
    private readonly config: Config,
    private readonly broker: Broker,
    private readonly log: Logger,
    seams: ServiceSeams = {},
  ) {
    this.registry = new RoomRegistry();
    this.registry.events.on('roomCreated', ({ roomId }) => this.broker.roomActive(roomId));
    this.registry.events.on('roomDeleted', ({ roomId }) => this.broker.roomIdle(roomId));
    this.acks = new AckTracker({
      retryMs: config.ackRetryMs,
      reportRetentionMs: config.historyTtlMs,
      maxFinished: config.maxRetainedRecords,
      onReport: (report, senderId) => this.onReport(report, senderId),
      onRetry: (request) => this.onRetry(request),
    });
    this.typing = new TypingTracker({
      timeoutMs: config.typingTimeoutMs,
      onExpire: (roomId, userId) => this.publishTyping(roomId, userId, false),
    });
    this.grace = new PresenceGrace(config.presenceGraceMs, (roomId, userId) => {
      this.announceDeparture(roomId, userId, 'user_disconnected');
    });
    this.presenceStore = seams.presence ?? new LocalPresence(this.registry, this.typing, (roomId) => this.grace.inRoom(roomId));
    this.ackRouter = seams.ackRouter?.(this.acks) ?? new LocalAckRouter(this.acks);
    // Idempotency keys: kept HISTORY_TTL_MS, at most MAX_RETAINED_RECORDS on the node, oldest first out.
    this.sent = new ExpiringMap(config.historyTtlMs, Date.now, config.maxRetainedRecords);
    this.messageRate = new TokenBuckets(config.messageRatePerSec, config.messageRateBurst);
    this.typingRate = new TokenBuckets(config.typingRatePerSec, config.typingRatePerSec * 2);
    this.subscribeRate = new TokenBuckets(config.subscribeRatePerSec, config.subscribeRateBurst);
    this.sweepTimer = setInterval(() => {
      this.sent.sweep();
      this.messageRate.sweep();
      this.typingRate.sweep();
      this.subscribeRate.sweep();
      // Messages forgotten without a report (adopted by another node in a cluster) keep no envelope.
      for (const id of this.awaitingAck.keys()) if (!this.acks.isPending(id)) this.awaitingAck.delete(id);
    }, 10_000);
    this.sweepTimer.unref();
  }

  // ---------------------------------------------------------------- connections

  openConnection(connection: ConnectionHandle): void {
    if (this.closing) throw new DomainError('SHUTTING_DOWN', 'server is shutting down');
    const { userId, name } = connection.principal;
    if (this.registry.userConnections(userId).size >= this.config.maxConnectionsPerUser) {
      throw new DomainError('LIMIT_EXCEEDED', `too many connections for user ${userId} on this node (max ${this.config.maxConnectionsPerUser}); close one first`);
    }
    this.connections.set(connection.id, connection);
    this.registry.connect(connection.id, { userId, ...(name !== undefined && { name }) });
    if (this.registry.userConnections(userId).size === 1) this.presenceStore.connected?.(userId);
  }

  /** The socket is gone: every room it was in sees the user disconnect (after the grace period). */
  closeConnection(connectionId: ConnectionId): void {
    if (!this.connections.delete(connectionId)) return;
    const rooms = this.registry.connectionRooms(connectionId);
    const user = this.registry.connectionUser(connectionId);
    for (const roomId of rooms) {
      if (user && this.typing.clearConnection(roomId, user.userId, connectionId)) this.publishTyping(roomId, user.userId, false);
    }
    for (const left of this.registry.disconnect(connectionId)) {
      if (!left.userLeft) {
        this.syncPresence(left.roomId, left.userId);
        continue;
      }
      if (this.typing.clear(left.roomId, left.userId)) this.publishTyping(left.roomId, left.userId, false);
      this.presenceStore.sync?.(left.roomId, left.userId, { connections: 0, typing: false });
      this.grace.start(left.roomId, left.userId);
    }
    if (user && this.registry.userConnections(user.userId).size === 0) this.presenceStore.disconnected?.(user.userId);
  }

  connection(connectionId: ConnectionId): ConnectionHandle | undefined {
    return this.connections.get(connectionId);
  }

  /** Closes every connection of a user; returns how many. */
  disconnectUser(userId: UserId, reason: CloseReason = 'kicked', detail?: string): number {
    const ids = [...this.registry.userConnections(userId)];
    for (const id of ids) this.connections.get(id)?.close(reason, detail);
    return ids.length;
  }

  // ---------------------------------------------------------------- subscriptions

  /**
   * Joins the room and streams its events to `sink`: first what the subscriber missed since
   * `lastEventId` (or a `resync`), then live events. The live listener is registered before the
   * history is read, so nothing falls in between; duplicates from that overlap are dropped by
   * id. Returns at once: `done` settles when the subscription ends (cancel, socket close, room
   * closed, slow consumer) and rejects if it could not start.
   */
  openSubscription(input: SubscriptionInput): SubscriptionHandle {
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const state = { cancelled: false };
    const cancel = () => {
      state.cancelled = true;
      end();
    };
    return { cancel, done: this.runSubscription(input, ended, end, state) };
  }

  private async runSubscription(input: SubscriptionInput, ended: Promise<void>, end: () => void, state: { cancelled: boolean }): Promise<void> {
    const connection = this.connections.get(input.connectionId);
    if (!connection) throw new DomainError('WEBSOCKET_REQUIRED', 'connection is closed');
    if (state.cancelled) return;
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

    const sub: LocalSubscriber = { connection, roomId, userId, sink: input.sink, held: [], end, dropped: false, position: '' };
    this.addSubscriber(sub);
    let joined = false;
    try {
      // A cluster broker subscribes over the network: receive the room before joining it.
      await this.broker.subscribed?.(roomId);
      if (state.cancelled || !this.connections.has(connection.id)) return;
      const join = this.registry.join(connection.id, roomId);
      joined = true;
      if (join.userJoined && !this.grace.cancel(roomId, userId)) {
        const { name } = connection.principal;
        const user = { userId, ...(name !== undefined && { name }) };
        if (await this.presenceStore.arrived(roomId, user)) {
          this.emit(roomId, { type: 'user_joined', conversationId: roomId, at: new Date(), ...user }, { exceptConnection: connection.id });
        }
      }
      this.syncPresence(roomId, userId);
      // `started` once the user counts as present, not before: the stock client moving a
      // subscription to a new socket (or node) stops it on the old one as soon as the new one has
      // started, and that stop must not find the user gone everywhere (a leave, then a join).
      // Events published meanwhile are held, so nothing after `started` is missed.
      if (state.cancelled) return;
      input.onLive?.();

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
      const present = await this.someMembers(roomId, PRESENCE_SNAPSHOT_LIMIT);
      if (state.cancelled) return;
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
      for (const envelope of replay) {
        // A user never hears its own presence live (the event skips the joining connection,
        // and no other tab exists then); a replay from an older point must not show it either.
        if (isOwnPresence(envelope, userId)) continue;
        if (isFor(envelope.audience, connection.id, userId) && this.deliver(sub, envelope, false)) this.countDeliveries(envelope, 1, false);
      }
      // Live events that came in meanwhile; those at or before the position (or covered by the
      // replay) are dropped. Ack re-sends are not: they carry ids of their own (deliver).
      const held = sub.held ?? [];
      sub.held = null;
      for (const { envelope, redelivery } of held) {
        if (!redelivery && cutoff && isCovered(envelope.id, cutoff)) continue;
        if (this.deliver(sub, envelope, redelivery)) this.countDeliveries(envelope, 1, !redelivery);
      }
      await ended;
    } finally {
      this.removeSubscriber(sub);
      if (joined) this.leaveRoom(connection.id, roomId);
    }
  }

  /** A subscription was stopped while its socket stays open: an explicit leave. */
  private leaveRoom(connectionId: ConnectionId, roomId: RoomId): void {
    const user = this.registry.connectionUser(connectionId);
    if (!user || !this.registry.isConnectionInRoom(connectionId, roomId)) return; // socket closed: handled there
    if (this.typing.clearConnection(roomId, user.userId, connectionId)) this.publishTyping(roomId, user.userId, false);
    const left = this.registry.leave(connectionId, roomId);
    if (left?.userLeft) {
      if (this.typing.clear(roomId, user.userId)) this.publishTyping(roomId, user.userId, false);
      this.announceDeparture(roomId, user.userId, 'user_left');
    } else if (left) {
      this.syncPresence(roomId, user.userId);
    }
  }

  /** Tells a cluster presence store this node's current figures for a present user. */
  private syncPresence(roomId: RoomId, userId: UserId): void {
    if (!this.presenceStore.sync) return;
    const connections = this.registry.snapshot(roomId)?.members.find((m) => m.userId === userId)?.connections ?? 0;
    this.presenceStore.sync(roomId, userId, { connections, typing: this.typing.isTyping(roomId, userId) });
  }

  /** Wires a cluster presence store's own announcements (re-asserted users, expired ghosts). */
  bindClusterPresence(presence: ClusterPresenceEvents): void {
    presence.onReappeared = (roomId, user) => this.emit(roomId, { type: 'user_joined', conversationId: roomId, at: new Date(), ...user }, {});
    presence.onGhostExpired = (roomId, userId) => this.emit(roomId, { type: 'user_disconnected', conversationId: roomId, at: new Date(), userId }, {});
    presence.onDeferredDeparture = (roomId, userId, how) => this.emit(roomId, { type: how, conversationId: roomId, at: new Date(), userId }, {});
  }

  /** Tells the room the user is gone, if the presence store says it is gone everywhere. */
  private announceDeparture(roomId: RoomId, userId: UserId, type: 'user_left' | 'user_disconnected'): void {
    this.presenceStore.departed(roomId, userId, type).then(
      (gone) => {
        if (gone) this.emit(roomId, { type, conversationId: roomId, at: new Date(), userId }, {});
      },
      (error: unknown) => this.log.error({ err: error, roomId, userId }, 'presence update failed'),
    );
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
      if (!isFor(envelope.audience, sub.connection.id, sub.userId)) continue;
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
    if (envelope.event.type === 'typing' && buffered > this.config.maxBufferedBytes / 4) {
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
    if (allowed) this.log.error({ err: error, roomId: sub.roomId, eventId: envelope.id, type: envelope.event.type, heldBack: allowed.suppressed }, 'event could not be delivered: subscriber told to resync');
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
    const { event } = envelope;
    const sent = envelope.publishedAt ?? (event.type === 'message' ? event.message.sentAt.getTime() : null);
    const latency = live && event.type === 'message' && sent !== null ? Math.max(0, performance.timeOrigin + performance.now() - sent) : null;
    this.stats.delivered(event.type, count, latency);
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
    if (!this.connections.has(connection.id)) return;
    this.stats.slowConsumerCloses += 1;
    this.log.warn({ connectionId: connection.id, userId: sub.userId, buffered: connection.bufferedBytes() }, 'closing slow consumer');
    this.closeConnection(connection.id);
    connection.close('slow_consumer');
  }

  // ---------------------------------------------------------------- messages and acks

  sendMessage(input: SendInput): Promise<SendResult> {
    const { principal, conversationId: roomId } = input;
    if (Buffer.byteLength(input.body, 'utf8') > this.config.maxMessageBytes) {
      throw new DomainError('MESSAGE_TOO_LARGE', `body: must be at most ${this.config.maxMessageBytes} UTF-8 bytes (MAX_MESSAGE_BYTES)`);
    }
    const key = input.clientMessageId === undefined ? undefined : `${principal.userId}\u0000${roomId}\u0000${input.clientMessageId}`;
    const earlier = key === undefined ? undefined : this.sent.get(key);
    if (earlier) return earlier;
    const wait = this.messageRate.take(principal.userId);
    if (wait > 0) throw new DomainError('RATE_LIMITED', `too many messages; retry in ${wait} ms`, wait);
    if (input.ack && this.acks.pendingOf(principal.userId) >= this.config.maxPendingAcksPerSender) {
      throw new DomainError('RATE_LIMITED', `too many acknowledged messages pending (${this.config.maxPendingAcksPerSender})`, this.config.ackTimeoutMs);
    }
    const result = this.doSend(input);
    if (key !== undefined) {
      this.sent.set(key, result);
      result.catch(() => this.sent.delete(key));
    }
    return result;
  }

  private async doSend(input: SendInput): Promise<SendResult> {
    const { principal, conversationId: roomId } = input;
    const sentAt = new Date();
    const messageId = randomUUID();
    const ackRequired = Boolean(input.ack);
    const expected = ackRequired ? (await this.presenceStore.members(roomId)).map((m) => m.userId).filter((u) => u !== principal.userId) : undefined;
    const event: RoomEvent = {
      type: 'message',
      conversationId: roomId,
      at: sentAt,
      message: {
        id: messageId,
        senderId: principal.userId,
        ...(principal.name !== undefined && { senderName: principal.name }),
        body: input.body,
        sentAt,
        ...(input.clientMessageId !== undefined && { clientMessageId: input.clientMessageId }),
        ackRequired,
      },
    };
    const audience: Audience = input.echo || input.connectionId === null ? {} : { exceptConnection: input.connectionId };
    if (expected) {
      // Tracked before it is published: in a cluster an ack from another node may come back at once.
      const timeoutMs = typeof input.ack === 'object' ? input.ack.timeoutMs : this.config.ackTimeoutMs;
      await this.ackRouter.track({ messageId, conversationId: roomId, senderId: principal.userId, expected, timeoutMs });
    }
    let envelope: RoomEnvelope;
    try {
      envelope = await this.publish(roomId, event, audience);
    } catch (error) {
      if (expected) this.ackRouter.cancel(messageId);
      throw error;
    }
    this.registry.recordActivity(roomId);
    if (expected && this.acks.isPending(messageId)) this.awaitingAck.set(messageId, envelope);
    return { messageId, eventId: envelope.id, sentAt, ...(expected && { expected }) };
  }

  /** Server-side send with acks: resolves with the final report. */
  async broadcastWithAck(input: Omit<SendInput, 'ack' | 'connectionId'> & { timeoutMs?: number }): Promise<DeliveryReport> {
    const { timeoutMs, ...rest } = input;
    const { messageId } = await this.doSend({ ...rest, connectionId: null, ack: { timeoutMs: timeoutMs ?? this.config.ackTimeoutMs } });
    // A room without recipients has already reported; finished reports stay queryable.
    const status = await this.ackRouter.status(messageId);
    if (status && status.report.status !== 'pending') return status.report as DeliveryReport;
    return new Promise((resolve) => this.reportWaiters.set(messageId, resolve));
  }

  ack(principal: Principal, conversationId: RoomId, messageId: MessageId): Promise<AckResult> {
    return this.ackRouter.ack(messageId, conversationId, principal.userId);
  }

  async deliveryStatus(principal: Principal, messageId: MessageId): Promise<DeliveryReport | PendingDeliveryReport> {
    const status = await this.ackRouter.status(messageId);
    if (!status) throw new DomainError('MESSAGE_NOT_FOUND', `no delivery report for message ${messageId}`);
    if (status.senderId !== principal.userId) throw new DomainError('NOT_SENDER', 'only the sender may read the delivery report');
    return status.report;
  }

  pendingAcks(filter: { conversationId?: RoomId } = {}): Promise<PendingAckSnapshot[]> {
    return this.ackRouter.pending(filter);
  }

  private onReport(report: DeliveryReport, senderId: UserId): void {
    this.awaitingAck.delete(report.messageId);
    if (this.ackRouter.reported) this.ackRouter.reported(report, senderId, () => this.announceReport(report, senderId));
    else this.announceReport(report, senderId);
  }

  private announceReport(report: DeliveryReport, senderId: UserId): void {
    this.stats.ackReported(report.status, report.latencyMs);
    this.emit(report.conversationId, { type: 'message_delivered', conversationId: report.conversationId, at: report.completedAt, report }, { onlyUsers: [senderId] });
    const waiter = this.reportWaiters.get(report.messageId);
    if (waiter) {
      this.reportWaiters.delete(report.messageId);
      waiter(report);
    }
  }

  private onRetry(request: RetryRequest): void {
    const envelope = this.awaitingAck.get(request.messageId);
    if (!envelope || request.missing.length === 0) return;
    this.broker.redeliver(request.conversationId, { ...envelope, audience: { onlyUsers: request.missing } });
  }

  // ---------------------------------------------------------------- typing and presence

  setTyping(principal: Principal, connectionId: ConnectionId | null, conversationId: RoomId, isTyping: boolean): void {
    const wait = this.typingRate.take(principal.userId);
    if (wait > 0) throw new DomainError('RATE_LIMITED', `too many typing updates; retry in ${wait} ms`, wait);
    if (isTyping && !this.registry.isMember(principal.userId, conversationId)) {
      throw new DomainError('NOT_A_MEMBER', `not present in conversation ${conversationId}: subscribe to conversation.events first`);
    }
    if (this.typing.set(conversationId, principal.userId, isTyping, connectionId)) {
      this.publishTyping(conversationId, principal.userId, isTyping);
    }
  }

  /** Server-side typing for any user (embedding API); bypasses membership and rate checks. */
  broadcastTyping(conversationId: RoomId, userId: UserId, isTyping: boolean): void {
    if (this.typing.set(conversationId, userId, isTyping, null)) this.publishTyping(conversationId, userId, isTyping);
  }

  private publishTyping(roomId: RoomId, userId: UserId, isTyping: boolean): void {
    this.syncPresence(roomId, userId);
    this.emit(roomId, { type: 'typing', conversationId: roomId, at: new Date(), userId, isTyping }, { exceptUser: userId }, false);
  }

  /** Members of the room: connected users plus those inside their reconnect grace period. */
  presence(conversationId: RoomId): Promise<MemberPresence[]> {
    return this.presenceStore.members(conversationId);
  }

  userRooms(userId: UserId): Promise<RoomId[]> {
    return this.presenceStore.userRooms(userId);
  }

  private async someMembers(roomId: RoomId, limit: number): Promise<{ members: MemberPresence[]; count: number }> {
    if (this.presenceStore.someMembers) return this.presenceStore.someMembers(roomId, limit);
    const all = await this.presenceStore.members(roomId);
    return { members: all.slice(0, limit), count: all.length };
  }

  // ---------------------------------------------------------------- other publishers

  /**
   * Publisher events carry free-form JSON: checked before they take a sequence number
   * (domain/event-data.ts), so nothing is stored that cannot be delivered.
   */
  broadcastSystemEvent(conversationId: RoomId, event: string, data: unknown): Promise<RoomEnvelope> {
    if (typeof event !== 'string' || event.length === 0 || event.length > 128) {
      return Promise.reject(new DomainError('INVALID_EVENT_DATA', 'event: must be a name of 1–128 characters'));
    }
    try {
      checkEventData(data, 'data', this.config.maxMessageBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.publish(conversationId, { type: 'system', conversationId, at: new Date(), event, data }, {});
  }

  updateConversation(conversationId: RoomId, changes: Record<string, unknown>): Promise<RoomEnvelope> {
    try {
      if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) throw new DomainError('INVALID_EVENT_DATA', 'changes: must be a JSON object');
      checkEventData(changes, 'changes', this.config.maxMessageBytes);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.publish(conversationId, { type: 'conversation_updated', conversationId, at: new Date(), changes }, {});
  }

  /** Ends every subscription of the room; returns how many connections were in it. */
  closeRoom(conversationId: RoomId): number {
    const subs = [...(this.subscribers.get(conversationId) ?? [])];
    for (const sub of subs) sub.end();
    return new Set(subs.map((s) => s.connection.id)).size;
  }

  private publish(roomId: RoomId, event: RoomEvent, audience: Audience, options: { store?: boolean; queue?: boolean } = {}): Promise<RoomEnvelope> {
    this.stats.published(event.type);
    return this.broker.publish(roomId, event, { audience, store: options.store ?? true, queueWhileUnavailable: options.queue ?? false });
  }

  /**
   * Publishes without waiting; a broker failure is logged, never thrown into a caller. Stored
   * events (presence, reports) wait out a cluster outage in the broker's bounded outbox; typing
   * is ephemeral and simply dropped then.
   */
  private emit(roomId: RoomId, event: RoomEvent, audience: Audience, store = true): void {
    this.publish(roomId, event, audience, { store, queue: store }).catch((error: unknown) => {
      this.log.error({ err: error, roomId, type: event.type }, 'publish failed');
    });
  }

  // ---------------------------------------------------------------- lifecycle

  get isClosing(): boolean {
    return this.closing;
  }

  /** Stops taking connections; pending acks keep their deadlines until `flushAcks`. */
  beginShutdown(): void {
    this.closing = true;
  }

  /** Reports every pending ack now, as it stands (the end of a drain). */
  flushAcks(): void {
    this.acks.flushAll();
  }

  async close(): Promise<void> {
    this.beginShutdown();
    this.flushAcks();
    for (const set of this.subscribers.values()) for (const sub of set) sub.end();
    this.acks.close();
    this.typing.close();
    this.grace.close();
    clearInterval(this.sweepTimer);
    await this.ackRouter.drain?.(1000);
    await this.broker.close();
  }

  /** Sizes of every internal structure, for leak tests and the admin plane. */
  internals(): Record<string, number> {
    return {
      ...prefix('registry', this.registry.counts()),
      connections: this.connections.size,
      subscribedRooms: this.subscribers.size,
      subscriptionCounts: this.subscriptionCounts.size,
      brokerSubscriptions: this.brokerSubscriptions.size,
      awaitingAck: this.awaitingAck.size,
      reportWaiters: this.reportWaiters.size,
      pendingAcks: this.acks.pendingCount,
      typing: this.typing.size(),
      graceTimers: this.grace.size(),
      registryListeners: this.registry.events.count(),
    };
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

function isOwnPresence(envelope: RoomEnvelope, userId: UserId): boolean {
  const { event } = envelope;
  return (event.type === 'user_joined' || event.type === 'user_left' || event.type === 'user_disconnected') && event.userId === userId;
}

function isFor(audience: Audience, connectionId: ConnectionId, userId: UserId): boolean {
  if (audience.exceptConnection === connectionId) return false;
  if (audience.exceptUser === userId) return false;
  if (audience.onlyUsers && !audience.onlyUsers.includes(userId)) return false;
  return true;
}

function prefix(name: string, counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${name}.${k}`, v]));
}

export type { EventId };
