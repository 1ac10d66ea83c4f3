import type { MemberPresence, RoomId, UserId } from '../domain/types.ts';

/**
 * The presence seam. The node's RoomRegistry decides when a user arrives in or leaves a room
 * *on this node*; the store answers whether that is also true for the whole service (so
 * `user_joined`/`user_left` go out once per user, whichever node its tabs are on) and who is
 * present. The in-process implementation (local-presence.ts) is the default; a Redis one
 * replaces it without touching the service.
 */
export interface PresenceStore {
  /** The user's first connection on this node joined the room; true if it is its first anywhere. */
  arrived(roomId: RoomId, user: { userId: UserId; name?: string }): Promise<boolean>;
  /**
   * The user is gone from the room on this node (after any grace); true if it is gone everywhere.
   * `how` is the event the service would announce (a cluster store that cannot decide now
   * announces it itself later).
   */
  departed(roomId: RoomId, userId: UserId, how: DepartureKind): Promise<boolean>;
  /** Everyone present, with connection counts and typing state. */
  members(roomId: RoomId): Promise<MemberPresence[]>;
  /**
   * At most `limit` of the members, and how many there are in all (a stream's `subscribed`
   * snapshot). Optional: without it the service takes the first `limit` of `members`.
   */
  someMembers?(roomId: RoomId, limit: number): Promise<{ members: MemberPresence[]; count: number }>;
  /**
   * Which of `userIds` are present in the room anywhere now (ghosts included). Optional: a
   * cluster store answers it so a presence diff that waited a window can be re-checked against
   * what other nodes announced meanwhile (service/presence-batch.ts); one node needs no re-check.
   */
  present?(roomId: RoomId, userIds: UserId[]): Promise<ReadonlySet<UserId>>;
  /** Rooms in which the user has at least one connection. */
  userRooms(userId: UserId): Promise<RoomId[]>;
  /**
   * A present user's state on this node changed without arriving or leaving (another tab,
   * typing, the reconnect grace began with 0 connections). Optional: local presence reads the
   * registry directly.
   */
  sync?(roomId: RoomId, userId: UserId, state: PresenceState): void;
  /** The user's first connection on this node opened / its last one closed (distinct user totals). */
  connected?(userId: UserId): void;
  disconnected?(userId: UserId): void;
}

export type DepartureKind = 'user_left' | 'user_disconnected';

export interface PresenceState {
  connections: number;
  typing: boolean;
}

/**
 * Announcements only a cluster presence store makes on its own (not in answer to the service):
 * the service binds these to room events (`bindClusterPresence`). A seam, so the service need
 * not know the Redis implementation in src/cluster/.
 */
export interface ClusterPresenceEvents {
  /** A re-asserted user that other nodes had seen leave. */
  onReappeared: (roomId: RoomId, user: { userId: UserId; name?: string }) => void;
  /** A ghost (a user of a dead node) whose grace ran out. */
  onGhostExpired: (roomId: RoomId, userId: UserId) => void;
  /** A departure decided once Redis was reachable again. */
  onDeferredDeparture: (roomId: RoomId, userId: UserId, how: DepartureKind) => void;
}
