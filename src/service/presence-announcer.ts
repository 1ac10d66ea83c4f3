import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { Audience, ConnectionId, MemberPresence, Principal, RoomEvent, RoomId, UserId } from '../domain/types.ts';
import type { Logger } from '../logger.ts';
import { LocalPresence } from '../presence/local-presence.ts';
import type { ClusterPresenceEvents, PresenceStore } from '../presence/presence-store.ts';
import type { JoinResult, RoomRegistry } from '../rooms/room-registry.ts';
import type { TypingTracker } from '../typing/typing-tracker.ts';
import { TokenBuckets } from '../util/token-bucket.ts';
import { PresenceBatch } from './presence-batch.ts';
import { PresenceGrace } from './presence-grace.ts';
import type { ConnectionHandle } from './types.ts';

export interface PresenceAnnouncerDeps {
  config: Pick<Config, 'presenceGraceMs' | 'presenceBatchMs' | 'typingRatePerSec'>;
  registry: RoomRegistry;
  typing: TypingTracker;
  log: Logger;
  /** The cluster's presence store; the in-process one (over the registry) when absent. */
  store: PresenceStore | undefined;
  /** Publishes a room event without waiting (presence and reports are queued through an outage). */
  emit(roomId: RoomId, event: RoomEvent, audience: Audience, store?: boolean): void;
}

/**
 * Who is in a room and who is told so: arrivals, leaves, drops with their reconnect grace
 * (presence-grace.ts), typing, and the presence queries — over the PresenceStore seam (one node:
 * the registry; a cluster: Redis). The rules: a user (not a connection) joins once, leaves when
 * its last subscription stops (`user_left`), disconnects when its last connection drops and is
 * not back within PRESENCE_GRACE_MS (`user_disconnected`); typing changes of state only, never
 * echoed to the typist. Every announcement goes through `batch` (presence-batch.ts): a single
 * event in a quiet room, one `presence_diff` per PRESENCE_BATCH_MS window while changes keep coming.
 */
export class PresenceAnnouncer {
  readonly store: PresenceStore;
  private readonly grace: PresenceGrace;
  /** Coalesces presence announcements per room (PRESENCE_BATCH_MS; presence-batch.ts). */
  readonly batch: PresenceBatch;
  private readonly typingRate: TokenBuckets;
  private readonly registry: RoomRegistry;
  private readonly typing: TypingTracker;
  private readonly log: Logger;
  private readonly emit: PresenceAnnouncerDeps['emit'];

  constructor(deps: PresenceAnnouncerDeps) {
    ({ registry: this.registry, typing: this.typing, log: this.log, emit: this.emit } = deps);
    this.grace = new PresenceGrace(deps.config.presenceGraceMs, (roomId, userId) => this.announceDeparture(roomId, userId, 'user_disconnected'));
    this.store = deps.store ?? new LocalPresence(this.registry, this.typing, (roomId) => this.grace.inRoom(roomId));
    this.typingRate = new TokenBuckets(deps.config.typingRatePerSec, deps.config.typingRatePerSec * 2);
    const store = this.store;
    this.batch = new PresenceBatch({
      batchMs: deps.config.presenceBatchMs,
      log: this.log,
      emit: (roomId, event, audience) => this.emit(roomId, event, audience),
      ...(store.present && { present: (roomId: RoomId, userIds: UserId[]) => store.present!(roomId, userIds) }),
    });
  }

  /** A connection opened: the store learns the user is connected (on its first connection). */
  connected(userId: UserId): void {
    if (this.registry.userConnections(userId).size === 1) this.store.connected?.(userId);
  }

  /** A subscription joined the room (`join` from the registry): the others hear of a new user. */
  async joined(connection: ConnectionHandle, roomId: RoomId, join: JoinResult): Promise<void> {
    const { userId, name } = connection.principal;
    if (join.userJoined && !this.grace.cancel(roomId, userId)) {
      const user = { userId, ...(name !== undefined && { name }) };
      if (await this.store.arrived(roomId, user)) {
        this.batch.change(roomId, { kind: 'join', ...user, exceptConnection: connection.id });
      }
    }
    this.sync(roomId, userId);
  }

  /**
   * The socket is gone: the registry forgets it, its typing stops, and every room it was the
   * user's last connection in starts the grace (the user is announced disconnected after it).
   */
  disconnected(connectionId: ConnectionId): void {
    const rooms = this.registry.connectionRooms(connectionId);
    const user = this.registry.connectionUser(connectionId);
    for (const roomId of rooms) {
      if (user && this.typing.clearConnection(roomId, user.userId, connectionId)) this.publishTyping(roomId, user.userId, false);
    }
    for (const left of this.registry.disconnect(connectionId)) {
      if (!left.userLeft) {
        this.sync(left.roomId, left.userId);
        continue;
      }
      if (this.typing.clear(left.roomId, left.userId)) this.publishTyping(left.roomId, left.userId, false);
      this.store.sync?.(left.roomId, left.userId, { connections: 0, typing: false });
      this.grace.start(left.roomId, left.userId);
    }
    if (user && this.registry.userConnections(user.userId).size === 0) this.store.disconnected?.(user.userId);
  }

  /** A subscription was stopped while its socket stays open: an explicit leave. */
  left(connectionId: ConnectionId, roomId: RoomId): void {
    const user = this.registry.connectionUser(connectionId);
    if (!user || !this.registry.isConnectionInRoom(connectionId, roomId)) return; // socket closed: handled there
    if (this.typing.clearConnection(roomId, user.userId, connectionId)) this.publishTyping(roomId, user.userId, false);
    const left = this.registry.leave(connectionId, roomId);
    if (left?.userLeft) {
      if (this.typing.clear(roomId, user.userId)) this.publishTyping(roomId, user.userId, false);
      this.announceDeparture(roomId, user.userId, 'user_left');
    } else if (left) {
      this.sync(roomId, user.userId);
    }
  }

  /** Tells a cluster presence store this node's current figures for a present user. */
  sync(roomId: RoomId, userId: UserId): void {
    if (!this.store.sync) return;
    const connections = this.registry.snapshot(roomId)?.members.find((m) => m.userId === userId)?.connections ?? 0;
    this.store.sync(roomId, userId, { connections, typing: this.typing.isTyping(roomId, userId) });
  }

  /** Wires a cluster presence store's own announcements (re-asserted users, expired ghosts). */
  bindCluster(presence: ClusterPresenceEvents): void {
    presence.onReappeared = (roomId, user) => this.batch.change(roomId, { kind: 'join', ...user });
    presence.onGhostExpired = (roomId, userId) => this.batch.change(roomId, { kind: 'leave', userId, reason: 'disconnected' });
    presence.onDeferredDeparture = (roomId, userId, how) => this.batch.change(roomId, { kind: 'leave', userId, reason: how === 'user_left' ? 'left' : 'disconnected' });
  }

  /** Tells the room the user is gone, if the presence store says it is gone everywhere. */
  private announceDeparture(roomId: RoomId, userId: UserId, type: 'user_left' | 'user_disconnected'): void {
    this.store.departed(roomId, userId, type).then(
      (gone) => {
        if (gone) this.batch.change(roomId, { kind: 'leave', userId, reason: type === 'user_left' ? 'left' : 'disconnected' });
      },
      (error: unknown) => this.log.error({ err: error, roomId, userId }, 'presence update failed'),
    );
  }


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

  publishTyping(roomId: RoomId, userId: UserId, isTyping: boolean): void {
    this.sync(roomId, userId);
    this.emit(roomId, { type: 'typing', conversationId: roomId, at: new Date(), userId, isTyping }, { exceptUser: userId }, false);
  }

  /** Members of the room: connected users plus those inside their reconnect grace period. */
  members(conversationId: RoomId): Promise<MemberPresence[]> {
    return this.store.members(conversationId);
  }

  userRooms(userId: UserId): Promise<RoomId[]> {
    return this.store.userRooms(userId);
  }

  /**
   * One page of `conversation.presence`: members ordered by user id, after `after`, at most
   * `limit`; `next` is the last listed user id when more follow (pass it as `after`).
   */
  async page(roomId: RoomId, after: UserId | undefined, limit: number): Promise<{ members: MemberPresence[]; memberCount: number; next: UserId | null }> {
    const all = (await this.store.members(roomId)).sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
    const from = after === undefined ? 0 : all.findIndex((m) => m.userId > after);
    const members = from < 0 ? [] : all.slice(from, from + limit);
    const more = from >= 0 && from + limit < all.length;
    return { members, memberCount: all.length, next: more ? members.at(-1)!.userId : null };
  }

  async someMembers(roomId: RoomId, limit: number): Promise<{ members: MemberPresence[]; count: number }> {
    if (this.store.someMembers) return this.store.someMembers(roomId, limit);
    const all = await this.store.members(roomId);
    return { members: all.slice(0, limit), count: all.length };
  }

  /** Forgets refilled rate buckets (the owner's periodic sweep). */
  sweep(): void {
    this.typingRate.sweep();
  }

  close(): void {
    this.grace.close();
    this.batch.close();
  }

  /** Grace timers running (for leak checks). */
  graceTimers(): number {
    return this.grace.size();
  }
}
