import type { Audience, ConnectionId, PresenceJoin, PresenceLeave, RoomEvent, RoomId, UserId } from '../domain/types.ts';
import type { Logger } from '../logger.ts';

/** One presence change this node has decided to announce. */
export type PresenceChange =
  | { kind: 'join'; userId: UserId; name?: string; /** left out of a single `user_joined` (the joining connection) */ exceptConnection?: ConnectionId }
  | { kind: 'leave'; userId: UserId; reason: PresenceLeave['reason'] };

export interface PresenceBatchDeps {
  /** PRESENCE_BATCH_MS; 0 = every change its own single event (no coalescing). */
  batchMs: number;
  log: Logger;
  /** Publishes a stored presence event without waiting. */
  emit(roomId: RoomId, event: RoomEvent, audience: Audience): void;
  /**
   * Who of `userIds` the service-wide presence store counts as present now (a cluster's store);
   * absent on one node, where this node's announcements are the whole truth.
   */
  present?: (roomId: RoomId, userIds: UserId[]) => Promise<ReadonlySet<UserId>>;
}

/** A storm's windows grow to at most this many times PRESENCE_BATCH_MS. */
export const MAX_WINDOW_FACTOR = 8;

interface RoomWindow {
  timer: NodeJS.Timeout;
  /** This window's length: PRESENCE_BATCH_MS, doubled after every window that had changes (up to MAX_WINDOW_FACTOR ×). */
  ms: number;
  /** Net change per user against what this node last announced in the room. */
  changes: Map<UserId, PresenceChange>;
}

/**
 * Presence without storms (issue 13): a throttle with a leading edge, per room and node. A change
 * in a room with no presence announcement from this node within the last PRESENCE_BATCH_MS goes
 * out at once as today's single event (`user_joined`, `user_left`, `user_disconnected`), and
 * opens a window. Changes inside the window are gathered, net per user (a join and a leave of
 * the same user cancel out), and go out at its end as ONE `presence_diff` to every subscriber;
 * the window then restarts — twice as long, up to MAX_WINDOW_FACTOR × PRESENCE_BATCH_MS — while
 * changes keep coming, and closes after one without any. So a quiet room looks exactly as
 * before, a lone change waits at most PRESENCE_BATCH_MS, and a storm costs each member a handful
 * of presence events however long it lasts: 1,000 members reconnecting within 2 s — or within
 * 4 s on a busy node — about 10 instead of 1,000 (a fixed window would give 2000 / 50 = 40, and
 * twice that if the storm stretches to 4 s).
 *
 * Ordering: a room's pending diff is published before any other stored event this node
 * publishes in that room (`beforePublish`, called by the service's publish path), so a message
 * from a user who just joined never precedes its join. Memory: one timer and one map per room
 * with a window open; both go when a window passes without changes (`size()` proves it).
 */
export class PresenceBatch {
  private readonly windows = new Map<RoomId, RoomWindow>();
  /** Diffs waiting for the presence store's re-check (cluster): later publishes in the room wait for them. */
  private readonly inFlight = new Map<RoomId, Promise<void>>();
  private closed = false;

  constructor(private readonly deps: PresenceBatchDeps) {}

  change(roomId: RoomId, change: PresenceChange): void {
    if (this.closed) return;
    if (this.deps.batchMs === 0) {
      this.single(roomId, change);
      return;
    }
    const window = this.windows.get(roomId);
    if (!window) {
      this.single(roomId, change);
      this.open(roomId, this.deps.batchMs);
      return;
    }
    const earlier = window.changes.get(change.userId);
    // Opposite changes inside one window cancel out: the room keeps what it was last told.
    if (earlier && earlier.kind !== change.kind) window.changes.delete(change.userId);
    else window.changes.set(change.userId, change);
  }

  /**
   * Called before any other stored event of the room is published: the room's pending diff goes
   * out first. Returns a promise when the publish must wait (a diff being re-checked against a
   * cluster's presence store); undefined when it may go at once (always on one node).
   */
  beforePublish(roomId: RoomId): Promise<void> | undefined {
    const window = this.windows.get(roomId);
    if (window && window.changes.size > 0) return this.flush(roomId, window);
    return this.inFlight.get(roomId);
  }

  /** Rooms with a window open (timers), and changes waiting in them — for leak checks. */
  size(): { windows: number; pending: number } {
    let pending = 0;
    for (const window of this.windows.values()) pending += window.changes.size;
    return { windows: this.windows.size, pending };
  }

  close(): void {
    this.closed = true;
    for (const window of this.windows.values()) clearTimeout(window.timer);
    this.windows.clear();
  }

  private open(roomId: RoomId, ms: number): void {
    const timer = setTimeout(() => this.windowEnded(roomId), ms);
    timer.unref();
    const window = this.windows.get(roomId);
    if (window) {
      window.timer = timer;
      window.ms = ms;
    } else this.windows.set(roomId, { timer, ms, changes: new Map() });
  }

  private windowEnded(roomId: RoomId): void {
    const window = this.windows.get(roomId);
    if (!window || this.closed) return;
    if (window.changes.size === 0 && !this.inFlight.has(roomId)) {
      this.windows.delete(roomId); // a quiet window: the next change goes out at once again
      return;
    }
    // At most one presence event per window while changes keep coming, the windows growing.
    const grown = window.changes.size > 0 ? Math.min(window.ms * 2, this.deps.batchMs * MAX_WINDOW_FACTOR) : window.ms;
    if (window.changes.size > 0) void this.flush(roomId, window);
    this.open(roomId, grown);
  }

  private flush(roomId: RoomId, window: RoomWindow): Promise<void> | undefined {
    const changes = [...window.changes.values()];
    window.changes.clear();
    const previous = this.inFlight.get(roomId);
    const { present } = this.deps;
    if (!present && !previous) {
      this.diff(roomId, changes);
      return undefined;
    }
    const done = (async () => {
      if (previous) await previous;
      this.diff(roomId, await this.recheck(roomId, changes));
    })();
    this.inFlight.set(roomId, done);
    void done.finally(() => {
      if (this.inFlight.get(roomId) === done) this.inFlight.delete(roomId);
    });
    return done;
  }

  /**
   * In a cluster, who is present anywhere is the presence store's decision, and other nodes
   * announce what they decide at once. A diff that waited a window must not contradict them:
   * a buffered join of a user the store no longer counts (it left through another node, which
   * announced it) and a buffered leave of a user present again (back through another node) are
   * dropped. What remains agrees with the store at the moment of the flush; a member applying
   * events in room order ends with the store's view. If the store cannot answer (Redis down),
   * the diff goes out as gathered, like a single event would have.
   */
  private async recheck(roomId: RoomId, changes: PresenceChange[]): Promise<PresenceChange[]> {
    const { present } = this.deps;
    if (!present || changes.length === 0) return changes;
    try {
      const now = await present(roomId, changes.map((c) => c.userId));
      return changes.filter((c) => (c.kind === 'join') === now.has(c.userId));
    } catch (error) {
      this.deps.log.warn({ err: error, roomId }, 'presence re-check failed: diff published as gathered');
      return changes;
    }
  }

  private single(roomId: RoomId, change: PresenceChange): void {
    const at = new Date();
    if (change.kind === 'join') {
      const { userId, name, exceptConnection } = change;
      this.deps.emit(roomId, { type: 'user_joined', conversationId: roomId, at, userId, ...(name !== undefined && { name }) }, exceptConnection !== undefined ? { exceptConnection } : {});
    } else {
      this.deps.emit(roomId, { type: change.reason === 'left' ? 'user_left' : 'user_disconnected', conversationId: roomId, at, userId: change.userId }, {});
    }
  }

  private diff(roomId: RoomId, changes: PresenceChange[]): void {
    if (changes.length === 0 || this.closed) return;
    const joins: PresenceJoin[] = [];
    const leaves: PresenceLeave[] = [];
    for (const c of changes) {
      if (c.kind === 'join') joins.push({ userId: c.userId, ...(c.name !== undefined && { name: c.name }) });
      else leaves.push({ userId: c.userId, reason: c.reason });
    }
    this.deps.emit(roomId, { type: 'presence_diff', conversationId: roomId, at: new Date(), joins, leaves }, {});
  }
}
