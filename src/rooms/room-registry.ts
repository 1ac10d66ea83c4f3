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

interface ConnectionState extends ConnectionUser {
  id: ConnectionId;
  connectedAt: number;
  /** Room → number of subscriptions this connection holds on it (a socket may subscribe twice). */
  rooms: Map<RoomId, number>;
}

interface RoomMember {
  userId: UserId;
  name?: string;
  joinedAt: number;
  connections: Set<ConnectionId>;
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
  private readonly users = new Map<UserId, Set<ConnectionId>>();
  readonly events = new Listeners<RegistryEvents>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Registers a connection; it belongs to no room yet. */
  connect(connectionId: ConnectionId, user: ConnectionUser): void {
    if (this.connections.has(connectionId)) throw new Error(`connection ${connectionId} is already registered`);
    this.connections.set(connectionId, { id: connectionId, ...user, connectedAt: this.now(), rooms: new Map() });
    let set = this.users.get(user.userId);
    if (!set) {
      set = new Set();
      this.users.set(user.userId, set);
    }
    set.add(connectionId);
    this.events.emit('connectionAdded', { connectionId, userId: user.userId });
  }

  /** Removes a connection from every room, then forgets it. */
  disconnect(connectionId: ConnectionId): LeaveResult[] {
    const conn = this.connections.get(connectionId);
    if (!conn) return [];
    const results = this.leaveAll(connectionId);
    this.connections.delete(connectionId);
    const set = this.users.get(conn.userId);
    set?.delete(connectionId);
    if (set?.size === 0) this.users.delete(conn.userId);
    this.events.emit('connectionRemoved', { connectionId, userId: conn.userId });
    return results;
  }

  join(connectionId: ConnectionId, roomId: RoomId): JoinResult {
    const conn = this.connections.get(connectionId);
    if (!conn) throw new Error(`connection ${connectionId} is not registered`);
    const held = conn.rooms.get(roomId) ?? 0;
    conn.rooms.set(roomId, held + 1);
    if (held > 0) return { roomCreated: false, userJoined: false, connectionJoined: false };

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
      member = { userId: conn.userId, joinedAt: now, connections: new Set() };
      if (conn.name !== undefined) member.name = conn.name;
      room.members.set(conn.userId, member);
    }
    member.connections.add(connectionId);
    if (userJoined) this.events.emit('userJoined', { roomId, userId: conn.userId, ...(conn.name !== undefined && { name: conn.name }) });
    return { roomCreated, userJoined, connectionJoined: true };
  }

  /** Drops one subscription of the connection on the room; returns null if it was not a member. */
  leave(connectionId: ConnectionId, roomId: RoomId): LeaveResult | null {
    const conn = this.connections.get(connectionId);
    const held = conn?.rooms.get(roomId);
    if (!conn || held === undefined) return null;
    if (held > 1) {
      conn.rooms.set(roomId, held - 1);
      return { roomId, userId: conn.userId, userLeft: false, roomDeleted: false };
    }
    conn.rooms.delete(roomId);
    return this.removeFromRoom(conn, roomId);
  }

  /** Removes the connection from all its rooms at once, whatever its subscription counts. */
  leaveAll(connectionId: ConnectionId): LeaveResult[] {
    const conn = this.connections.get(connectionId);
    if (!conn) return [];
    const roomIds = [...conn.rooms.keys()];
    conn.rooms.clear();
    return roomIds.map((roomId) => this.removeFromRoom(conn, roomId));
  }

  private removeFromRoom(conn: ConnectionState, roomId: RoomId): LeaveResult {
    const room = this.rooms.get(roomId);
    if (!room) return { roomId, userId: conn.userId, userLeft: false, roomDeleted: false };
    room.connections.delete(conn.id);
    const member = room.members.get(conn.userId);
    member?.connections.delete(conn.id);
    const userLeft = member !== undefined && member.connections.size === 0;
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
    return this.connections.get(connectionId)?.rooms.has(roomId) ?? false;
  }

  /** The connections of a room (live view; do not mutate). */
  roomConnections(roomId: RoomId): ReadonlySet<ConnectionId> {
    return this.rooms.get(roomId)?.connections ?? EMPTY;
  }

  /** A user's connections inside one room. */
  userConnectionsInRoom(userId: UserId, roomId: RoomId): ReadonlySet<ConnectionId> {
    return this.rooms.get(roomId)?.members.get(userId)?.connections ?? EMPTY;
  }

  /** Every connection of a user, in rooms or not. */
  userConnections(userId: UserId): ReadonlySet<ConnectionId> {
    return this.users.get(userId) ?? EMPTY;
  }

  roomMemberIds(roomId: RoomId): UserId[] {
    return [...(this.rooms.get(roomId)?.members.keys() ?? [])];
  }

  connectionUser(connectionId: ConnectionId): ConnectionUser | undefined {
    const conn = this.connections.get(connectionId);
    return conn && { userId: conn.userId, ...(conn.name !== undefined && { name: conn.name }) };
  }

  connectionRooms(connectionId: ConnectionId): RoomId[] {
    return [...(this.connections.get(connectionId)?.rooms.keys() ?? [])];
  }

  /** Rooms a user is present in through at least one connection. */
  userRooms(userId: UserId): RoomId[] {
    const rooms = new Set<RoomId>();
    for (const connectionId of this.userConnections(userId)) {
      for (const roomId of this.connections.get(connectionId)?.rooms.keys() ?? []) rooms.add(roomId);
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
        connections: m.connections.size,
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
      members.push({ userId: m.userId, ...(m.name !== undefined && { name: m.name }), joinedAt: new Date(m.joinedAt), connections: m.connections.size });
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
