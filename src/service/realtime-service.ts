import { LocalAckRouter, type AckItem, type AckOutcome, type AckRouter } from '../acks/ack-router.ts';
import { AckTracker, type AckResult, type PendingAckSnapshot } from '../acks/ack-tracker.ts';
import type { Broker } from '../broker/broker.ts';
import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import { checkEventData } from '../domain/event-data.ts';
import type { Audience, ConnectionId, DeliveryReport, MemberPresence, MessageId, PendingDeliveryReport, Principal, RoomEnvelope, RoomEvent, RoomId, SendResult, UserId } from '../domain/types.ts';
import type { Logger } from '../logger.ts';
import type { ClusterPresenceEvents, PresenceStore } from '../presence/presence-store.ts';
import { RoomRegistry } from '../rooms/room-registry.ts';
import { TypingTracker } from '../typing/typing-tracker.ts';
import { Messages } from './messages.ts';
import { PresenceAnnouncer } from './presence-announcer.ts';
import { ServiceStats } from './stats.ts';
import { Subscriptions } from './subscriptions.ts';
import { readHistory, type HistoryPage, type HistoryQuery } from './scrollback.ts';
import type { CloseReason, ConnectionHandle, SendInput, ServiceFigures, ServiceSeams, SubscriptionHandle, SubscriptionInput, TransportKind } from './types.ts';

export type { CloseReason, ConnectionHandle, SendInput, ServiceFigures, ServiceSeams, SubscriberSink, SubscriptionHandle, SubscriptionInput, TransportKind } from './types.ts';
export { clientKey } from './types.ts';
export type { EventId } from '../domain/types.ts';

/** Presence events: they never wait for a pending presence diff (they are what it orders). */
const PRESENCE_TYPES: ReadonlySet<RoomEvent['type']> = new Set(['user_joined', 'user_left', 'user_disconnected', 'presence_diff']);

/**
 * The realtime core's one entry: a facade over parts with one job each —
 * subscriptions (subscriptions.ts: replay, fan-out, slow consumers), messages (messages.ts: the
 * send pipeline, re-sends, reports) and presence (presence-announcer.ts: joins, leaves, the
 * reconnect grace, typing) — on top of the pure registry and trackers. Three seams carry what a
 * cluster must share: every event goes out through the Broker (ids, history, fan-out), presence
 * through the PresenceStore, acks and report queries through the AckRouter; each has an
 * in-process default. It knows nothing of tRPC, ws or HTTP; access rules are checked at the
 * edge, before calls reach it.
 */
export class RealtimeService {
  readonly registry = new RoomRegistry();
  readonly acks: AckTracker;
  readonly typing: TypingTracker;
  readonly stats = new ServiceStats();
  /** Service-wide presence (seam): local by default. */
  readonly presenceStore: PresenceStore;
  /** Where acks and status queries go (seam): the local tracker by default. */
  readonly ackRouter: AckRouter;
  /** The read model for the admin plane, metrics and the cluster (snapshots and counters). */
  readonly figures: ServiceFigures = {
    counts: () => this.registry.counts(),
    connectionsByTransport: () => ({ ...this.byTransport }),
    roomIds: () => this.registry.roomIds(),
    room: (roomId) => this.registry.snapshot(roomId),
    typingUsers: (roomId) => this.typing.typingUsers(roomId),
    userConnectionCount: (userId) => this.registry.userConnections(userId).size,
    pendingAckCount: () => this.acks.pendingCount,
    deliveryReport: async (messageId) => (await this.ackRouter.status(messageId))?.report ?? null,
    stats: this.stats,
  };
  private readonly connections = new Map<ConnectionId, ConnectionHandle>();
  private readonly byTransport: Record<TransportKind, number> = { websocket: 0, sse: 0 };
  private readonly presenceParts: PresenceAnnouncer;
  private readonly messages: Messages;
  private readonly subscriptions: Subscriptions;
  private readonly sweepTimer: NodeJS.Timeout;
  private closing = false;

  constructor(
    private readonly config: Config,
    private readonly broker: Broker,
    private readonly log: Logger,
    seams: ServiceSeams = {},
  ) {
    this.registry.events.on('roomCreated', ({ roomId }) => this.broker.roomActive(roomId));
    this.registry.events.on('roomDeleted', ({ roomId }) => this.broker.roomIdle(roomId));
    const emit = (roomId: RoomId, event: RoomEvent, audience: Audience, store?: boolean) => this.emit(roomId, event, audience, store);
    this.acks = new AckTracker({
      retryMs: config.ackRetryMs,
      reportRetentionMs: config.historyTtlMs,
      maxFinished: config.maxRetainedRecords,
      onReport: (report, senderId) => this.messages.onReport(report, senderId),
      onRetry: (request) => this.messages.onRetry(request),
    });
    this.typing = new TypingTracker({ timeoutMs: config.typingTimeoutMs, onExpire: (roomId, userId) => this.presenceParts.publishTyping(roomId, userId, false) });
    this.presenceParts = new PresenceAnnouncer({ config, registry: this.registry, typing: this.typing, log, store: seams.presence, emit });
    this.presenceStore = this.presenceParts.store;
    this.ackRouter = seams.ackRouter?.(this.acks) ?? new LocalAckRouter(this.acks);
    this.messages = new Messages({
      config,
      broker,
      registry: this.registry,
      acks: this.acks,
      ackRouter: this.ackRouter,
      stats: this.stats,
      members: (roomId) => this.presenceStore.members(roomId),
      publish: (roomId, event, audience) => this.publish(roomId, event, audience),
      emit,
    });
    this.subscriptions = new Subscriptions({
      config,
      broker,
      registry: this.registry,
      presence: this.presenceParts,
      stats: this.stats,
      log,
      connection: (id) => this.connections.get(id),
      closeConnection: (id) => this.closeConnection(id),
    });
    this.sweepTimer = setInterval(() => {
      this.messages.sweep();
      this.presenceParts.sweep();
      this.subscriptions.sweep();
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
    this.byTransport[connection.transport] += 1;
    this.registry.connect(connection.id, { userId, ...(name !== undefined && { name }) });
    this.presenceParts.connected(userId);
  }

  /** The socket is gone: every room it was in sees the user disconnect (after the grace period). */
  closeConnection(connectionId: ConnectionId): void {
    const connection = this.connections.get(connectionId);
    if (!connection) return;
    this.connections.delete(connectionId);
    this.byTransport[connection.transport] -= 1;
    this.presenceParts.disconnected(connectionId);
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

  // ---------------------------------------------------------------- the parts' operations

  /** Joins the room and streams its events (subscriptions.ts). */
  openSubscription(input: SubscriptionInput): SubscriptionHandle {
    return this.subscriptions.open(input);
  }

  /** Ends every subscription of the room; returns how many connections were in it. */
  closeRoom(conversationId: RoomId): number {
    return this.subscriptions.closeRoom(conversationId);
  }

  sendMessage(input: SendInput): Promise<SendResult> {
    return this.messages.send(input);
  }

  /** Server-side send with acks: resolves with the final report. */
  broadcastWithAck(input: Omit<SendInput, 'ack' | 'connectionId'> & { timeoutMs?: number }): Promise<DeliveryReport> {
    return this.messages.broadcastWithAck(input);
  }

  ack(principal: Principal, conversationId: RoomId, messageId: MessageId): Promise<AckResult> {
    return this.messages.ack(principal, conversationId, messageId);
  }

  /** A `message.ack` list: one outcome per item, in order (items refused change nothing). */
  ackMany(principal: Principal, items: readonly AckItem[]): Promise<AckOutcome[]> {
    return this.messages.ackMany(principal, items);
  }

  deliveryStatus(principal: Principal, messageId: MessageId): Promise<DeliveryReport | PendingDeliveryReport> {
    return this.messages.deliveryStatus(principal, messageId);
  }

  /** Scrollback: a page of the room's stored events, newest first, as this caller may see them (scrollback.ts). */
  history(principal: Principal, query: HistoryQuery): Promise<HistoryPage> {
    return readHistory(this.broker, principal, query);
  }

  pendingAcks(filter: { conversationId?: RoomId } = {}): Promise<PendingAckSnapshot[]> {
    return this.messages.pendingAcks(filter);
  }

  setTyping(principal: Principal, connectionId: ConnectionId | null, conversationId: RoomId, isTyping: boolean): void {
    this.presenceParts.setTyping(principal, connectionId, conversationId, isTyping);
  }

  /** Server-side typing for any user (embedding API); bypasses membership and rate checks. */
  broadcastTyping(conversationId: RoomId, userId: UserId, isTyping: boolean): void {
    this.presenceParts.broadcastTyping(conversationId, userId, isTyping);
  }

  /** One page of members ordered by user id (`conversation.presence`). */
  presencePage(conversationId: RoomId, after: UserId | undefined, limit: number): Promise<{ members: MemberPresence[]; memberCount: number; next: UserId | null }> {
    return this.presenceParts.page(conversationId, after, limit);
  }

  /** Members of the room: connected users plus those inside their reconnect grace period. */
  presence(conversationId: RoomId): Promise<MemberPresence[]> {
    return this.presenceParts.members(conversationId);
  }

  userRooms(userId: UserId): Promise<RoomId[]> {
    return this.presenceParts.userRooms(userId);
  }

  /** Wires a cluster presence store's own announcements (re-asserted users, expired ghosts). */
  bindClusterPresence(presence: ClusterPresenceEvents): void {
    this.presenceParts.bindCluster(presence);
  }

  /** Counts a call refused at the edge (by its tRPC code), for /metrics. */
  countRejection(code: string): void {
    this.stats.rejected(code);
  }

  // ---------------------------------------------------------------- publishers

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

  private publish(roomId: RoomId, event: RoomEvent, audience: Audience, options: { store?: boolean; queue?: boolean } = {}): Promise<RoomEnvelope> {
    this.stats.published(event.type);
    const store = options.store ?? true;
    const go = () => this.broker.publish(roomId, event, { audience, store, queueWhileUnavailable: options.queue ?? false });
    // The room's pending presence diff goes first (a message never precedes its sender's join);
    // in a cluster it may be awaiting its re-check, and later publishes of the room wait behind it.
    const before = store && !PRESENCE_TYPES.has(event.type) ? this.presenceParts.batch.beforePublish(roomId) : undefined;
    return before ? before.then(go) : go();
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
    this.subscriptions.endAll();
    this.acks.close();
    this.typing.close();
    this.presenceParts.close();
    clearInterval(this.sweepTimer);
    await this.ackRouter.drain?.(1000);
    await this.broker.close();
  }

  /** Sizes of every internal structure, for leak tests and the admin plane. */
  internals(): Record<string, number> {
    const counts = this.registry.counts();
    return {
      'registry.rooms': counts.rooms,
      'registry.connections': counts.connections,
      'registry.users': counts.users,
      connections: this.connections.size,
      ...this.subscriptions.sizes(),
      ...this.messages.sizes(),
      pendingAcks: this.acks.pendingCount,
      typing: this.typing.size(),
      graceTimers: this.presenceParts.graceTimers(),
      presenceWindows: this.presenceParts.batch.size().windows,
      presencePending: this.presenceParts.batch.size().pending,
      registryListeners: this.registry.events.count(),
    };
  }
}
