import type { MemberPresence, RoomId, UserId } from '../domain/types.ts';
import type { RoomRegistry } from '../rooms/room-registry.ts';
import type { TypingTracker } from '../typing/typing-tracker.ts';
import type { PresenceStore } from './presence-store.ts';

/**
 * Single-node presence: this node's registry is the whole truth, so every local arrival and
 * departure is also a service-wide one. Users inside their reconnect grace (`ghosts`) are still
 * members, with `connections: 0`.
 */
export class LocalPresence implements PresenceStore {
  constructor(
    private readonly registry: RoomRegistry,
    private readonly typing: TypingTracker,
    private readonly ghosts: (roomId: RoomId) => Array<{ userId: UserId; since: Date }>,
  ) {}

  arrived(): Promise<boolean> {
    return Promise.resolve(true);
  }

  departed(): Promise<boolean> {
    return Promise.resolve(true);
  }

  members(roomId: RoomId): Promise<MemberPresence[]> {
    const members: MemberPresence[] = (this.registry.snapshot(roomId)?.members ?? []).map((m) => ({
      ...m,
      typing: this.typing.isTyping(roomId, m.userId),
    }));
    for (const ghost of this.ghosts(roomId)) {
      if (!members.some((m) => m.userId === ghost.userId)) {
        members.push({ userId: ghost.userId, connections: 0, joinedAt: ghost.since, typing: false });
      }
    }
    return Promise.resolve(members);
  }

  /** O(limit), not O(members): every join asks for one (its stream's `subscribed` event). */
  someMembers(roomId: RoomId, limit: number): Promise<{ members: MemberPresence[]; count: number }> {
    const some = this.registry.someMembers(roomId, limit);
    const members: MemberPresence[] = some.members.map((m) => ({ ...m, typing: this.typing.isTyping(roomId, m.userId) }));
    let count = some.count;
    for (const ghost of this.ghosts(roomId)) {
      if (this.registry.isMember(ghost.userId, roomId)) continue;
      count += 1;
      if (members.length < limit) members.push({ userId: ghost.userId, connections: 0, joinedAt: ghost.since, typing: false });
    }
    return Promise.resolve({ members, count });
  }

  userRooms(userId: UserId): Promise<RoomId[]> {
    return Promise.resolve(this.registry.userRooms(userId));
  }
}
