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

  userRooms(userId: UserId): Promise<RoomId[]> {
    return Promise.resolve(this.registry.userRooms(userId));
  }
}
