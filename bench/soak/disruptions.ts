/**
 * Who was disrupted when, so that deliveries can be told apart (live, or recovered after a
 * disruption) and partial delivery reports explained, and so that findings come with context.
 *
 * A user-level disruption (socket drop, restart, slow-reader pause, a close the soak did not
 * cause) does not end when the connection is back: it ends when the receiver has caught up, i.e.
 * with the first message it receives that was issued after it came back (or 10 s later if none
 * comes). Until then it is still reading the replay or the backlog, and what it receives is
 * recovered, not live. A room-level disruption (a leave) ends when the room is joined again.
 */

export type DisruptionKind = 'drop' | 'restart' | 'pause' | 'close' | 'leave';

interface Interval {
  kind: DisruptionKind;
  start: number;
  /** When the connection came back (user level): catching up from then on. */
  back: number;
  end: number;
  /** Set when the disruption concerns one room only (a leave). */
  room?: string;
}

const CATCH_UP_LIMIT_MS = 10_000;

export class Disruptions {
  private readonly closed = new Map<string, Interval[]>();
  private readonly open = new Map<string, Set<Interval>>();
  /** When each user's last user-level disruption ended. */
  private readonly lastEnd = new Map<string, number>();

  /** Starts a disruption; the function returned marks the user back (or the room rejoined). */
  begin(user: string, kind: DisruptionKind, room?: string): () => void {
    const interval: Interval = { kind, start: performance.now(), back: Number.POSITIVE_INFINITY, end: Number.POSITIVE_INFINITY, ...(room !== undefined && { room }) };
    const open = this.open.get(user) ?? new Set();
    this.open.set(user, open);
    open.add(interval);
    return () => {
      if (interval.back !== Number.POSITIVE_INFINITY) return;
      interval.back = performance.now();
      if (room !== undefined) this.close(user, interval, interval.back);
      else setTimeout(() => this.close(user, interval, performance.now()), CATCH_UP_LIMIT_MS).unref();
    };
  }

  /**
   * Call for every message a user receives, after classifying it: a message issued after the user
   * came back ends the catch-up of every disruption it came back from before the issue.
   */
  received(user: string, issuedAt: number): void {
    for (const i of this.open.get(user) ?? []) if (i.room === undefined && i.back <= issuedAt) this.close(user, i, performance.now());
  }

  /** Whether the user was disrupted (not a room leave) after `since`, or still is (or is catching up). */
  disruptedSince(user: string, since: number): boolean {
    for (const i of this.open.get(user) ?? []) if (i.room === undefined) return true;
    return (this.lastEnd.get(user) ?? Number.NEGATIVE_INFINITY) > since;
  }

  /** Whether any disruption of the user (in general, or in this room) overlapped [from, to]. */
  touched(user: string, room: string, from: number, to: number): boolean {
    const hit = (i: Interval) => (i.room === undefined || i.room === room) && i.start <= to && i.end >= from;
    for (const i of this.open.get(user) ?? []) if (hit(i)) return true;
    return (this.closed.get(user) ?? []).some(hit);
  }

  /** The user's disruptions that overlap [from, to], for findings: `restart 12.3–14.0 s` (relative to `zero`). */
  describe(user: string, from: number, to: number, zero: number): string[] {
    const all = [...(this.closed.get(user) ?? []), ...(this.open.get(user) ?? [])].filter((i) => i.start <= to && i.end >= from);
    const s = (t: number) => (Number.isFinite(t) ? ((t - zero) / 1000).toFixed(1) : '…');
    return all.map((i) => `${i.kind}${i.room ? ` of ${i.room}` : ''} ${s(i.start)}–${s(i.back)} s${i.room === undefined ? ` (caught up ${s(i.end)} s)` : ''}`);
  }

  private close(user: string, interval: Interval, at: number): void {
    const open = this.open.get(user);
    if (!open?.delete(interval)) return;
    interval.end = at;
    if (interval.room === undefined) this.lastEnd.set(user, Math.max(this.lastEnd.get(user) ?? 0, at));
    const list = this.closed.get(user) ?? [];
    list.push(interval);
    // Reports are made within seconds; two minutes of history is plenty.
    while (list.length > 0 && list[0]!.end < at - 120_000) list.shift();
    this.closed.set(user, list);
  }
}
