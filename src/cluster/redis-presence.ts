import type { MemberPresence, RoomId, UserId } from '../domain/types.ts';
import { FIELD_SEPARATOR, type ClusterKeys } from './keys.ts';
import type { RedisConnections } from './redis-connection.ts';
import type { Logger } from '../logger.ts';
import type { ClusterPresenceEvents, DepartureKind, PresenceState, PresenceStore } from '../presence/presence-store.ts';

/**
 * Cluster-wide presence, after Centrifugo's Redis presence: per room, one hash entry per
 * (node, user) with that node's connection count and typing state, and a per-user count of nodes
 * the user is present on. "First anywhere" and "gone everywhere" are decided atomically by Lua
 * on those two hashes, so `user_joined`/`user_left` go out once per user whichever nodes its tabs
 * are on. A dead node's users become ghosts (present, no connections) for PRESENCE_GRACE_MS:
 * reappearing anywhere cancels the ghost silently; otherwise a surviving node announces
 * `user_disconnected`.
 */

const ARRIVED = `
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    if redis.call('HDEL', KEYS[3], ARGV[2]) == 1 then return 0 end
    return 1
  end
end
return 0
`;

const DEPARTED = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    return 1
  end
end
return 0
`;

const SYNC = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0
`;

const REAP = `
local ghosts = {}
for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
  if string.sub(f, 1, #ARGV[1]) == ARGV[1] then
    local user = string.sub(f, #ARGV[1] + 1)
    redis.call('HDEL', KEYS[1], f)
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      redis.call('HSET', KEYS[3], user, ARGV[2])
      table.insert(ghosts, user)
    end
  end
end
return ghosts
`;

const EXPIRE_GHOST = `
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 and redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 1 end
return 0
`;

const DISTINCT_USERS = `
if #KEYS == 1 then return 0 end
redis.call('SUNIONSTORE', KEYS[1], unpack(KEYS, 2))
local n = redis.call('SCARD', KEYS[1])
redis.call('DEL', KEYS[1])
return n
`;

type Scripted = {
  rtArrived(entries: string, users: string, ghosts: string, field: string, userId: string, data: string): Promise<number>;
  rtDeparted(entries: string, users: string, field: string, userId: string): Promise<number>;
  rtSync(entries: string, field: string, data: string): Promise<number>;
  rtReap(entries: string, users: string, ghosts: string, nodePrefix: string, deadline: number): Promise<string[]>;
  rtExpireGhost(ghosts: string, users: string, userId: string): Promise<number>;
  rtDistinctUsers(numKeys: number, ...keys: string[]): Promise<number>;
};

/** What one node stores per (room, user). */
interface Entry {
  c: number;
  t: boolean;
  n?: string;
  j: number;
}

export interface RedisPresenceOptions {
  nodeId: string;
  redis: RedisConnections;
  keys: ClusterKeys;
  presenceGraceMs: number;
  log: Logger;
}

export class RedisPresence implements PresenceStore, ClusterPresenceEvents {
  /** This node's entries, to re-assert after an outage or after being taken for dead. */
  private readonly local = new Map<RoomId, Map<UserId, Entry>>();
  private readonly localUsers = new Set<UserId>();
  private readonly cmd: Scripted;
  /** The service announces these: a re-asserted user others saw leave, a ghost whose grace ran out. */
  onReappeared: (roomId: RoomId, user: { userId: UserId; name?: string }) => void = () => undefined;
  onGhostExpired: (roomId: RoomId, userId: UserId) => void = () => undefined;
  onDeferredDeparture: (roomId: RoomId, userId: UserId, how: DepartureKind) => void = () => undefined;
  /** Departures that happened while Redis was unreachable. */
  private readonly deferred = new Map<string, { roomId: RoomId; userId: UserId; how: DepartureKind }>();

  constructor(private readonly options: RedisPresenceOptions) {
    const { cmd } = options.redis;
    cmd.defineCommand('rtArrived', { numberOfKeys: 3, lua: ARRIVED });
    cmd.defineCommand('rtDeparted', { numberOfKeys: 2, lua: DEPARTED });
    cmd.defineCommand('rtSync', { numberOfKeys: 1, lua: SYNC });
    cmd.defineCommand('rtReap', { numberOfKeys: 3, lua: REAP });
    cmd.defineCommand('rtExpireGhost', { numberOfKeys: 2, lua: EXPIRE_GHOST });
    cmd.defineCommand('rtDistinctUsers', { lua: DISTINCT_USERS });
    this.cmd = cmd as unknown as Scripted;
  }

  async arrived(roomId: RoomId, user: { userId: UserId; name?: string }): Promise<boolean> {
    const entry: Entry = { c: 1, t: false, j: Date.now(), ...(user.name !== undefined && { n: user.name }) };
    let room = this.local.get(roomId);
    if (!room) {
      room = new Map();
      this.local.set(roomId, room);
    }
    room.set(user.userId, entry);
    this.options.redis.assertAvailable();
    const { keys } = this.options;
    if (room.size === 1) void this.options.redis.cmd.sadd(keys.nodeRooms(this.options.nodeId), roomId).catch(() => undefined);
    const first = await this.cmd.rtArrived(keys.presenceEntries(roomId), keys.presenceUsers(roomId), keys.presenceGhosts(roomId), this.field(user.userId), user.userId, JSON.stringify(entry));
    if (first === 1) void this.options.redis.cmd.sadd(keys.userRooms(user.userId), roomId).catch(() => undefined);
    return first === 1;
  }

  async departed(roomId: RoomId, userId: UserId, how: DepartureKind): Promise<boolean> {
    const room = this.local.get(roomId);
    room?.delete(userId);
    const { keys } = this.options;
    if (room && room.size === 0) {
      this.local.delete(roomId);
      if (this.options.redis.available) void this.options.redis.cmd.srem(keys.nodeRooms(this.options.nodeId), roomId).catch(() => undefined);
    }
    if (!this.options.redis.available) {
      // Decided when Redis is back (reassert), and announced then if the user is gone everywhere.
      this.deferred.set(`${roomId}${FIELD_SEPARATOR}${userId}`, { roomId, userId, how });
      return false;
    }
    const gone = await this.cmd.rtDeparted(keys.presenceEntries(roomId), keys.presenceUsers(roomId), this.field(userId), userId);
    if (gone === 1) void this.options.redis.cmd.srem(keys.userRooms(userId), roomId).catch(() => undefined);
    return gone === 1;
  }

  sync(roomId: RoomId, userId: UserId, state: PresenceState): void {
    const entry = this.local.get(roomId)?.get(userId);
    if (!entry) return;
    if (entry.c === state.connections && entry.t === state.typing) return;
    entry.c = state.connections;
    entry.t = state.typing;
    if (!this.options.redis.available) return; // re-asserted when Redis is back
    this.cmd.rtSync(this.options.keys.presenceEntries(roomId), this.field(userId), JSON.stringify(entry)).catch((error: unknown) => {
      this.options.log.warn({ err: error, roomId, userId }, 'presence sync failed');
    });
  }

  connected(userId: UserId): void {
    this.localUsers.add(userId);
    if (this.options.redis.available) void this.options.redis.cmd.sadd(this.options.keys.nodeUsers(this.options.nodeId), userId).catch(() => undefined);
  }

  disconnected(userId: UserId): void {
    this.localUsers.delete(userId);
    if (this.options.redis.available) void this.options.redis.cmd.srem(this.options.keys.nodeUsers(this.options.nodeId), userId).catch(() => undefined);
  }

  async members(roomId: RoomId): Promise<MemberPresence[]> {
    this.options.redis.assertAvailable();
    const { keys } = this.options;
    const [entries, ghosts] = await Promise.all([this.options.redis.cmd.hgetall(keys.presenceEntries(roomId)), this.options.redis.cmd.hgetall(keys.presenceGhosts(roomId))]);
    const byUser = new Map<UserId, MemberPresence>();
    for (const [field, raw] of Object.entries(entries)) {
      const userId = field.slice(field.indexOf(FIELD_SEPARATOR) + 1);
      const entry = JSON.parse(raw) as Entry;
      const member = byUser.get(userId);
      if (member) {
        member.connections += entry.c;
        member.typing = member.typing || entry.t;
        if (entry.j < member.joinedAt.getTime()) member.joinedAt = new Date(entry.j);
        if (member.name === undefined && entry.n !== undefined) member.name = entry.n;
      } else {
        byUser.set(userId, { userId, connections: entry.c, joinedAt: new Date(entry.j), typing: entry.t, ...(entry.n !== undefined && { name: entry.n }) });
      }
    }
    for (const [userId, deadline] of Object.entries(ghosts)) {
      if (!byUser.has(userId)) byUser.set(userId, { userId, connections: 0, joinedAt: new Date(Number(deadline) - this.options.presenceGraceMs), typing: false });
    }
    return [...byUser.values()];
  }

  /** Present anywhere: counted on a live node or a ghost of a dead one (for the presence diff's re-check). */
  async present(roomId: RoomId, userIds: UserId[]): Promise<ReadonlySet<UserId>> {
    this.options.redis.assertAvailable();
    if (userIds.length === 0) return new Set();
    const { keys } = this.options;
    const [users, ghosts] = await Promise.all([this.options.redis.cmd.hmget(keys.presenceUsers(roomId), ...userIds), this.options.redis.cmd.hmget(keys.presenceGhosts(roomId), ...userIds)]);
    return new Set(userIds.filter((_, i) => users[i] !== null || ghosts[i] !== null));
  }

  async userRooms(userId: UserId): Promise<RoomId[]> {
    this.options.redis.assertAvailable();
    return (await this.options.redis.cmd.smembers(this.options.keys.userRooms(userId))).sort();
  }

  /** Distinct users connected anywhere in the cluster (live nodes' user sets, unioned in Redis). */
  distinctUsers(nodeIds: string[]): Promise<number> {
    return this.distinct(nodeIds.map((id) => this.options.keys.nodeUsers(id)));
  }

  /** Distinct rooms with members on live nodes. */
  distinctRooms(nodeIds: string[]): Promise<number> {
    return this.distinct(nodeIds.map((id) => this.options.keys.nodeRooms(id)));
  }

  private distinct(sets: string[]): Promise<number> {
    this.options.redis.assertAvailable();
    const temp = this.options.keys.nodeUsers(`tmp-${this.options.nodeId}-${process.hrtime.bigint()}`);
    return this.cmd.rtDistinctUsers(sets.length + 1, temp, ...sets);
  }

  /**
   * This node (re)joined the cluster: write back everything it holds. A user whose entries were
   * reaped while this node was cut off (survivors announced it disconnected) is "first anywhere"
   * again and is announced as joined; after Redis lost everything nobody announced anything, and
   * `announce` is false.
   */
  async reassert({ announce }: { announce: boolean }): Promise<void> {
    const { keys, nodeId } = this.options;
    for (const [key, { roomId, userId, how }] of this.deferred) {
      this.deferred.delete(key);
      if (this.local.get(roomId)?.has(userId)) continue; // back on this node meanwhile
      if (await this.departed(roomId, userId, how)) this.onDeferredDeparture(roomId, userId, how);
    }
    const pipeline = this.options.redis.cmd.pipeline();
    pipeline.del(keys.nodeUsers(nodeId));
    if (this.localUsers.size > 0) pipeline.sadd(keys.nodeUsers(nodeId), ...this.localUsers);
    if (this.local.size > 0) pipeline.sadd(keys.nodeRooms(nodeId), ...this.local.keys());
    await pipeline.exec();
    for (const [roomId, users] of this.local) {
      for (const [userId, entry] of users) {
        const first = await this.cmd.rtArrived(keys.presenceEntries(roomId), keys.presenceUsers(roomId), keys.presenceGhosts(roomId), this.field(userId), userId, JSON.stringify(entry));
        if (first === 1) {
          await this.options.redis.cmd.sadd(keys.userRooms(userId), roomId);
          if (announce) this.onReappeared(roomId, { userId, ...(entry.n !== undefined && { name: entry.n }) });
        } else {
          await this.cmd.rtSync(keys.presenceEntries(roomId), this.field(userId), JSON.stringify(entry));
        }
      }
    }
  }

  /** A dead node's users become ghosts until PRESENCE_GRACE_MS has passed (see `expireGhosts`). */
  async reapNode(deadNodeId: string): Promise<number> {
    const { keys } = this.options;
    const rooms = await this.options.redis.cmd.smembers(keys.nodeRooms(deadNodeId));
    const deadline = Date.now() + this.options.presenceGraceMs;
    let ghosts = 0;
    for (const roomId of rooms) {
      const users = await this.cmd.rtReap(keys.presenceEntries(roomId), keys.presenceUsers(roomId), keys.presenceGhosts(roomId), `${deadNodeId}${FIELD_SEPARATOR}`, deadline);
      if (users.length > 0) await this.options.redis.cmd.zadd(keys.ghosts, ...users.flatMap((u) => [deadline, `${roomId}${FIELD_SEPARATOR}${u}`]));
      ghosts += users.length;
    }
    await this.options.redis.cmd.del(keys.nodeRooms(deadNodeId), keys.nodeUsers(deadNodeId));
    return ghosts;
  }

  /** Ghosts past their deadline: whoever claims one announces `user_disconnected` unless the user came back. */
  async expireGhosts(): Promise<void> {
    const { keys } = this.options;
    const due = await this.options.redis.cmd.zrangebyscore(keys.ghosts, '-inf', Date.now(), 'LIMIT', 0, 500);
    for (const member of due) {
      if ((await this.options.redis.cmd.zrem(keys.ghosts, member)) !== 1) continue; // another node claimed it
      const at = member.indexOf(FIELD_SEPARATOR);
      const roomId = member.slice(0, at);
      const userId = member.slice(at + 1);
      if ((await this.cmd.rtExpireGhost(keys.presenceGhosts(roomId), keys.presenceUsers(roomId), userId)) === 1) {
        await this.options.redis.cmd.srem(keys.userRooms(userId), roomId);
        this.onGhostExpired(roomId, userId);
      }
    }
  }

  private field(userId: UserId): string {
    return `${this.options.nodeId}${FIELD_SEPARATOR}${userId}`;
  }
}
