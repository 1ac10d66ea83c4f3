import type { ConnectionId, RoomId, UserId } from '../domain/types.ts';
import { Listeners } from '../util/listeners.ts';

/**
 * Rooms ↔ connections ↔ users, shaped like socket.io's in-memory adapter: two indexes kept in
 * sync (rooms → connections, connections → rooms) plus the user level that presence needs.
 * Changed only through connect/join/leave/leaveAll/disconnect; an empty room is deleted at once.
 * Pure and synchronous: no timers, no I/O; the clock is injected.
 */

export interface ConnectionUser {
  userId: UserId;
  name?: string;
}

/**
 * Connection ids of a user or a member: the one id itself, a Set from the second on. Almost every
 * user has one connection and every member one in the room: a Set for each would cost ~180 B of
 * heap per connection (issue 16: heap per idle connection).
 */
type ConnectionIds = ConnectionId | Set<ConnectionId>;

interface ConnectionState extends ConnectionUser {
  id: ConnectionId;
  connectedAt: number;
  /**
   * The rooms it is in, once per subscription it holds on each (a socket may subscribe twice),
   * in the order they were first joined: a small array, not a Map (MAX_SUBSCRIPTIONS_PER_CONNECTION
   * bounds it; almost every connection holds one).
   */
  rooms: RoomId[];
}

interface RoomMember {
  userId: UserId;
  name?: string;
  joinedAt: number;
  connections: ConnectionIds;
}

interface RoomState {
  id: RoomId;
  createdAt: number;
  lastActivityAt: number;
  messagesBroadcast: number;
  connections: Set<ConnectionId>;
  members: Map<UserId, RoomMember>;
}

export interface JoinResult {
  roomCreated: boolean;
  /** This is the user's first connection in the room. */
  userJoined: boolean;
  /** This connection was not in the room before (a second subscription on it gives false). */
  connectionJoined: boolean;
}

export interface LeaveResult {
  roomId: RoomId;
  userId: UserId;
  /** The user has no connection left in the room. */
  userLeft: boolean;
  roomDeleted: boolean;
}

export interface RoomSnapshot {
  conversationId: RoomId;
  createdAt: Date;
  lastActivityAt: Date;
  messagesBroadcast: number;
  connectionCount: number;
  members: Array<{ userId: UserId; name?: string; joinedAt: Date; connections: number }>;
}

export interface RegistryEvents extends Record<string, unknown> {
  roomCreated: { roomId: RoomId };
  roomDeleted: { roomId: RoomId };
  userJoined: { roomId: RoomId; userId: UserId; name?: string };
  userLeft: { roomId: RoomId; userId: UserId };
  connectionAdded: { connectionId: ConnectionId; userId: UserId };
  connectionRemoved: { connectionId: ConnectionId; userId: UserId };
}

export class RoomRegistry {
  private readonly rooms = new Map<RoomId, RoomState>();
  private readonly connections = new Map<ConnectionId, ConnectionState>();
  private readonly users = new Map<UserId, ConnectionIds>();
  readonly events = new Listeners<RegistryEvents>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Registers a connection; it belongs to no room yet. */
  connect(connectionId: ConnectionId, user: ConnectionUser): void {
    if (this.connections.has(connectionId)) throw new Error(`connection ${connectionId} is already registered`);
    this.connections.set(connectionId, { id: connectionId, ...user, connectedAt: this.now(), rooms: [] });
    this.users.set(user.userId, withId(this.users.get(user.userId), connectionId));
    this.events.emit('connectionAdded', { connectionId, userId: user.userId });
  }

  /** Removes a connection from every room, then forgets it. */
  disconnect(connectionId: ConnectionId): LeaveResult[] {
    const conn = this.connections.get(connectionId);
    if (!conn) return [];
    const results = this.leaveAll(connectionId);
    this.connections.delete(connectionId);
    const rest = withoutId(this.users.get(conn.userId), connectionId);
    if (rest === undefined) this.users.delete(conn.userId);
    else this.users.set(conn.userId, rest);
    this.events.emit('connectionRemoved', { connectionId, userId: conn.userId });
    return results;
  }

  join(connectionId: ConnectionId, roomId: RoomId): JoinResult {
    const conn = this.connections.get(connectionId);
    if (!conn) throw new Error(`connection ${connectionId} is not registered`);
    const held = conn.rooms.includes(roomId);
    conn.rooms.push(roomId);
    if (held) return { roomCreated: false, userJoined: false, connectionJoined: false };

    const now = this.now();
    let room = this.rooms.get(roomId);
    const roomCreated = !room;
    if (!room) {
      room = { id: roomId, createdAt: now, lastActivityAt: now, messagesBroadcast: 0, connections: new Set(), members: new Map() };
      this.rooms.set(roomId, room);
      this.events.emit('roomCreated', { roomId });
    }
    room.connections.add(connectionId);
    let member = room.members.get(conn.userId);
    const userJoined = !member;
    if (!member) {
      member = { userId: conn.userId, joinedAt: now, connections: connectionId };
      if (conn.name !== undefined) member.name = conn.name;
      room.members.set(conn.userId, member);
    } else member.connections = withId(member.connections, connectionId);
    if (userJoined) this.events.emit('userJoined', { roomId, userId: conn.userId, ...(conn.name !== undefined && { name: conn.name }) });
    return { roomCreated, userJoined, connectionJoined: true };
  }

  /** Drops one subscription of the connection on the room; returns null if it was not a member. */
  leave(connectionId: ConnectionId, roomId: RoomId): LeaveResult | null {
    const conn = this.connections.get(connectionId);
    const at = conn?.rooms.lastIndexOf(roomId) ?? -1;
    if (!conn || at === -1) return null;
    // The last of its holds goes: the room keeps its place in the order while one is left.
    conn.rooms.splice(at, 1);
    if (conn.rooms.includes(roomId)) return { roomId, userId: conn.userId, userLeft: false, roomDeleted: false };
    return this.removeFromRoom(conn, roomId);
  }

  /** Removes the connection from all its rooms at once, whatever its subscription counts. */
  leaveAll(connectionId: ConnectionId): LeaveResult[] {
    const conn = this.connections.get(connectionId);
    if (!conn) return [];
    const roomIds = distinct(conn.rooms);
    conn.rooms = [];
    return roomIds.map((roomId) => this.removeFromRoom(conn, roomId));
  }

  private removeFromRoom(conn: ConnectionState, roomId: RoomId): LeaveResult {
    const room = this.rooms.get(roomId);
    if (!room) return { roomId, userId: conn.userId, userLeft: false, roomDeleted: false };
    room.connections.delete(conn.id);
    const member = room.members.get(conn.userId);
    const rest = member && withoutId(member.connections, conn.id);
    if (member && rest !== undefined) member.connections = rest;
    const userLeft = member !== undefined && rest === undefined;
    if (userLeft) {
      room.members.delete(conn.userId);
      this.events.emit('userLeft', { roomId, userId: conn.userId });
    }
    const roomDeleted = room.connections.size === 0;
    if (roomDeleted) {
      this.rooms.delete(roomId);
      this.events.emit('roomDeleted', { roomId });
    }
    return { roomId, userId: conn.userId, userLeft, roomDeleted };
  }

  /** Marks a broadcast in the room (for stats); a room without members is not created by it. */
  recordActivity(roomId: RoomId): void {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.lastActivityAt = this.now();
    room.messagesBroadcast += 1;
  }

  hasRoom(roomId: RoomId): boolean {
    return this.rooms.has(roomId);
  }

  isMember(userId: UserId, roomId: RoomId): boolean {
    return this.rooms.get(roomId)?.members.has(userId) ?? false;
  }

  isConnectionInRoom(connectionId: ConnectionId, roomId: RoomId): boolean {
    return this.connections.get(connectionId)?.rooms.includes(roomId) ?? false;
  }

  /** The connections of a room (live view; do not mutate). */
  roomConnections(roomId: RoomId): ReadonlySet<ConnectionId> {
    return this.rooms.get(roomId)?.connections ?? EMPTY;
  }

  /** A user's connections inside one room. */
  userConnectionsInRoom(userId: UserId, roomId: RoomId): ReadonlySet<ConnectionId> {
    return asSet(this.rooms.get(roomId)?.members.get(userId)?.connections);
  }

  /** Every connection of a user, in rooms or not. */
  userConnections(userId: UserId): ReadonlySet<ConnectionId> {
    return asSet(this.users.get(userId));
  }

  roomMemberIds(roomId: RoomId): UserId[] {
    return [...(this.rooms.get(roomId)?.members.keys() ?? [])];
  }

  connectionUser(connectionId: ConnectionId): ConnectionUser | undefined {
    const conn = this.connections.get(connectionId);
    return conn && { userId: conn.userId, ...(conn.name !== undefined && { name: conn.name }) };
  }

  connectionRooms(connectionId: ConnectionId): RoomId[] {
    return distinct(this.connections.get(connectionId)?.rooms ?? []);
  }

  /** Rooms a user is present in through at least one connection. */
  userRooms(userId: UserId): RoomId[] {
    const rooms = new Set<RoomId>();
    for (const connectionId of this.userConnections(userId)) {
      for (const roomId of this.connections.get(connectionId)?.rooms ?? []) rooms.add(roomId);
    }
    return [...rooms];
  }

  snapshot(roomId: RoomId): RoomSnapshot | undefined {
    const room = this.rooms.get(roomId);
    if (!room) return undefined;
    return {
      conversationId: room.id,
      createdAt: new Date(room.createdAt),
      lastActivityAt: new Date(room.lastActivityAt),
      messagesBroadcast: room.messagesBroadcast,
      connectionCount: room.connections.size,
      members: [...room.members.values()].map((m) => ({
        userId: m.userId,
        ...(m.name !== undefined && { name: m.name }),
        joinedAt: new Date(m.joinedAt),
        connections: idCount(m.connections),
      })),
    };
  }

  /** The first `limit` members of the room (in join order) and how many there are: O(limit). */
  someMembers(roomId: RoomId, limit: number): { members: RoomSnapshot['members']; count: number } {
    const room = this.rooms.get(roomId);
    if (!room) return { members: [], count: 0 };
    const members: RoomSnapshot['members'] = [];
    for (const m of room.members.values()) {
      if (members.length >= limit) break;
      members.push({ userId: m.userId, ...(m.name !== undefined && { name: m.name }), joinedAt: new Date(m.joinedAt), connections: idCount(m.connections) });
    }
    return { members, count: room.members.size };
  }

  roomIds(): RoomId[] {
    return [...this.rooms.keys()];
  }

  counts(): { rooms: number; connections: number; users: number } {
    return { rooms: this.rooms.size, connections: this.connections.size, users: this.users.size };
  }
}

const EMPTY: ReadonlySet<never> = new Set();

/** `ids` with `id` added. */
function withId(ids: ConnectionIds | undefined, id: ConnectionId): ConnectionIds {
  if (ids === undefined || ids === id) return id;
  if (typeof ids === 'string') return new Set([ids, id]);
  ids.add(id);
  return ids;
}

/** `ids` without `id`; undefined when none is left. */
function withoutId(ids: ConnectionIds | undefined, id: ConnectionId): ConnectionIds | undefined {
  if (ids === undefined || ids === id) return undefined;
  if (typeof ids === 'string') return ids;
  ids.delete(id);
  if (ids.size > 1) return ids;
  return ids.size === 0 ? undefined : ids.values().next().value;
}

function idCount(ids: ConnectionIds): number {
  return typeof ids === 'string' ? 1 : ids.size;
}

/** A read-only Set of the ids (a new one for a single id: only queries ask, never the fan-out). */
function asSet(ids: ConnectionIds | undefined): ReadonlySet<ConnectionId> {
  if (ids === undefined) return EMPTY;
  return typeof ids === 'string' ? new Set([ids]) : ids;
}

function distinct(rooms: RoomId[]): RoomId[] {
  return rooms.length < 2 ? [...rooms] : [...new Set(rooms)];
}
