import type { ConnectionId, RoomId, UserId } from '../domain/types.ts';

/**
 * Typing state per (room, user). `set` reports only changes of state; a typing user who neither
 * refreshes nor stops is turned off after `timeoutMs` (through `onExpire`). The state remembers the
 * connection that set it, so that connection leaving or dropping turns it off at once.
 */

export interface TypingTrackerOptions {
  timeoutMs: number;
  onExpire: (roomId: RoomId, userId: UserId) => void;
}

interface TypingEntry {
  connectionId: ConnectionId | null;
  timer: NodeJS.Timeout;
}

export class TypingTracker {
  private readonly rooms = new Map<RoomId, Map<UserId, TypingEntry>>();

  constructor(private readonly options: TypingTrackerOptions) {}

  /** Returns true when the user's state in the room changed. */
  set(roomId: RoomId, userId: UserId, isTyping: boolean, connectionId: ConnectionId | null): boolean {
    const room = this.rooms.get(roomId);
    const entry = room?.get(userId);
    if (!isTyping) return this.clear(roomId, userId);
    if (entry) {
      // A refresh: restart the expiry, keep the state.
      entry.connectionId = connectionId;
      entry.timer.refresh();
      return false;
    }
    const timer = setTimeout(() => {
      if (this.clear(roomId, userId)) this.options.onExpire(roomId, userId);
    }, this.options.timeoutMs);
    timer.unref();
    const users = room ?? new Map<UserId, TypingEntry>();
    if (!room) this.rooms.set(roomId, users);
    users.set(userId, { connectionId, timer });
    return true;
  }

  /** Turns the user's typing off; true if it was on. */
  clear(roomId: RoomId, userId: UserId): boolean {
    const room = this.rooms.get(roomId);
    const entry = room?.get(userId);
    if (!room || !entry) return false;
    clearTimeout(entry.timer);
    room.delete(userId);
    if (room.size === 0) this.rooms.delete(roomId);
    return true;
  }

  /** Turns off typing that this connection set in this room; true if it was on. */
  clearConnection(roomId: RoomId, userId: UserId, connectionId: ConnectionId): boolean {
    const entry = this.rooms.get(roomId)?.get(userId);
    if (!entry || entry.connectionId !== connectionId) return false;
    return this.clear(roomId, userId);
  }

  isTyping(roomId: RoomId, userId: UserId): boolean {
    return this.rooms.get(roomId)?.has(userId) ?? false;
  }

  typingUsers(roomId: RoomId): UserId[] {
    return [...(this.rooms.get(roomId)?.keys() ?? [])];
  }

  /** Number of typing entries, all rooms together (for leak checks). */
  size(): number {
    let n = 0;
    for (const room of this.rooms.values()) n += room.size;
    return n;
  }

  close(): void {
    for (const room of this.rooms.values()) for (const entry of room.values()) clearTimeout(entry.timer);
    this.rooms.clear();
  }
}
