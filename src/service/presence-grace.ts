import type { RoomId, UserId } from '../domain/types.ts';

/**
 * Users whose last connection in a room dropped, waiting out PRESENCE_GRACE_MS before they are
 * announced as `user_disconnected`. Coming back within the grace cancels the announcement (and
 * the `user_joined` it would otherwise cause). A grace of 0 announces at once.
 */
export class PresenceGrace {
  private readonly pending = new Map<RoomId, Map<UserId, { since: Date; timer: NodeJS.Timeout | null }>>();

  constructor(
    private readonly graceMs: number,
    private readonly onExpire: (roomId: RoomId, userId: UserId) => void,
  ) {}

  start(roomId: RoomId, userId: UserId): void {
    if (this.graceMs === 0) {
      this.onExpire(roomId, userId);
      return;
    }
    let room = this.pending.get(roomId);
    if (!room) {
      room = new Map();
      this.pending.set(roomId, room);
    }
    if (room.has(userId)) return;
    const timer = setTimeout(() => {
      if (this.remove(roomId, userId)) this.onExpire(roomId, userId);
    }, this.graceMs);
    timer.unref();
    room.set(userId, { since: new Date(), timer });
  }

  /** The user is back: returns true if a pending announcement was cancelled. */
  cancel(roomId: RoomId, userId: UserId): boolean {
    return this.remove(roomId, userId);
  }

  inRoom(roomId: RoomId): Array<{ userId: UserId; since: Date }> {
    return [...(this.pending.get(roomId) ?? [])].map(([userId, e]) => ({ userId, since: e.since }));
  }

  size(): number {
    let n = 0;
    for (const room of this.pending.values()) n += room.size;
    return n;
  }

  close(): void {
    for (const room of this.pending.values()) for (const e of room.values()) if (e.timer) clearTimeout(e.timer);
    this.pending.clear();
  }

  private remove(roomId: RoomId, userId: UserId): boolean {
    const room = this.pending.get(roomId);
    const entry = room?.get(userId);
    if (!room || !entry) return false;
    if (entry.timer) clearTimeout(entry.timer);
    room.delete(userId);
    if (room.size === 0) this.pending.delete(roomId);
    return true;
  }
}
