import type { MessageId, RoomId, UserId } from '../domain/types.ts';

/**
 * Every Redis key and channel the cluster uses, in one place. Keys of one room share the hash
 * tag `{<roomId>}` and keys of one acknowledged message share `{ack:<messageId>}`, so each Lua
 * script touches one slot and runs unchanged on Redis Cluster; node-level keys share `{nodes}`.
 */
export class ClusterKeys {
  constructor(readonly prefix: string) {}

  /** Room meta hash: `e` epoch, `s` last stored seq, `u` ephemeral sub-seq after it. */
  roomMeta(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:meta`;
  }

  /** Room history stream; entry id `<seq>-0`, field `d` the serialized envelope. */
  roomStream(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:stream`;
  }

  /** Room fan-out channel (sharded pub/sub, same slot as the room's keys). */
  roomChannel(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:events`;
  }

  /** Presence entries: field `<nodeId>\x1f<userId>`, value JSON { c, t, n, j }. */
  presenceEntries(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:presence`;
  }

  /** Per user: on how many nodes the user is present in the room. */
  presenceUsers(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:users`;
  }

  /** Users of a dead node inside their grace period: user → deadline (ms). */
  presenceGhosts(roomId: RoomId): string {
    return `${this.prefix}{${roomId}}:ghosts`;
  }

  /** Rooms a user is present in, cluster-wide. */
  userRooms(userId: UserId): string {
    return `${this.prefix}user:{${userId}}:rooms`;
  }

  /** Live nodes: node id → last heartbeat (Redis time, ms). */
  get nodes(): string {
    return `${this.prefix}{nodes}`;
  }

  /** A random value set once per cluster state: it changes only if Redis loses its data. */
  get generation(): string {
    return `${this.prefix}{nodes}:generation`;
  }

  /** A node's self-description, refreshed with each heartbeat. */
  nodeInfo(nodeId: string): string {
    return `${this.prefix}{nodes}:info:${nodeId}`;
  }

  /** Users with at least one connection on a node (for distinct user totals). */
  nodeUsers(nodeId: string): string {
    return `${this.prefix}{nodes}:users:${nodeId}`;
  }

  /** Rooms in which a node holds presence entries (what survivors clean up when it dies). */
  nodeRooms(nodeId: string): string {
    return `${this.prefix}{nodes}:rooms:${nodeId}`;
  }

  /** Acknowledged messages a node owns (what survivors take over when it dies). */
  nodeAcks(nodeId: string): string {
    return `${this.prefix}{nodes}:acks:${nodeId}`;
  }

  /** Ghost deadlines across rooms: `<roomId>\x1f<userId>` → deadline (ms). */
  get ghosts(): string {
    return `${this.prefix}{nodes}:ghosts`;
  }

  /** Node-to-node requests and notifications. */
  nodeChannel(nodeId: string): string {
    return `${this.prefix}{node:${nodeId}}`;
  }

  /** A pending acknowledged message: owner, conversation, sender, expected, times. */
  ack(messageId: MessageId): string {
    return `${this.prefix}{ack:${messageId}}`;
  }

  /** Users who acked it. */
  ackAcked(messageId: MessageId): string {
    return `${this.prefix}{ack:${messageId}}:acked`;
  }

  /** Its final report, kept for the retention period. */
  ackReport(messageId: MessageId): string {
    return `${this.prefix}{ack:${messageId}}:report`;
  }
}

export const FIELD_SEPARATOR = '\x1f';
