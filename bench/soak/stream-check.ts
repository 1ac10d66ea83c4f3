/**
 * What each receiver must see, and the tally of what it did see.
 *
 * The soak keeps at most one send in flight per room, so the order in which it issues a room's
 * messages is the order the server gives them ids: every message carries its room sequence
 * number, and a room's `RoomLog` knows, per number, who sent it and whether the send succeeded.
 *
 * A `StreamCheck` follows one subscription (one user in one room) across socket drops, restarts
 * with `lastEventId` and slow reads. From the moment its subscription has started (its *floor*),
 * it must receive every successfully sent message of the room except the user's own, exactly
 * once and in order. Messages issued before the floor, the user's own, and sends that failed
 * (their fate is unknown) are optional, but still must not repeat or come out of order. A
 * `resync` event moves the floor to "now": what was missed before it is excused, as the contract
 * says. A gap is counted as lost when a later message arrives, or when the subscription ends
 * (leaves, or the run drains) without it.
 */
import type { Finding, Tally } from './tally.ts';

export type SendState = 'pending' | 'ok' | 'failed';

export interface LogEntry {
  sender: string;
  state: SendState;
  /** performance.now() when the send was issued. */
  issuedAt: number;
  /** Sent with `ack: true`. */
  ack: boolean;
}

export class RoomLog {
  private readonly entries: LogEntry[] = [];
  /** Highest sequence number whose send has completed, either way. */
  lastDone = 0;

  constructor(readonly roomId: string) {}

  get nextSeq(): number {
    return this.entries.length + 1;
  }

  issue(sender: string, issuedAt: number, ack = false): number {
    this.entries.push({ sender, state: 'pending', issuedAt, ack });
    return this.entries.length;
  }

  settle(seq: number, ok: boolean): void {
    this.entries[seq - 1]!.state = ok ? 'ok' : 'failed';
    this.lastDone = Math.max(this.lastDone, seq);
  }

  get(seq: number): LogEntry | undefined {
    return this.entries[seq - 1];
  }
}

/** Grows as needed; one bit per sequence number. */
class BitSet {
  private bits = new Uint8Array(1024);

  has(i: number): boolean {
    return i >> 3 < this.bits.length && (this.bits[i >> 3]! & (1 << (i & 7))) !== 0;
  }

  add(i: number): void {
    if (i >> 3 >= this.bits.length) {
      const grown = new Uint8Array(Math.max(this.bits.length * 2, (i >> 3) + 1));
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[i >> 3]! |= 1 << (i & 7);
  }
}

export interface CheckContext {
  /** The current interval's tally (swapped every interval). */
  tally(): Tally;
  finding(f: Omit<Finding, 'atS'>): void;
}

export class StreamCheck {
  /** Sequence numbers below this are optional; Infinity until the subscription has started. */
  private floor = Number.POSITIVE_INFINITY;
  private last = 0;
  private readonly got = new BitSet();
  /** Counted as lost; un-counted (and counted out of order instead) if they turn up after all. */
  private readonly declaredLost = new Set<number>();

  constructor(
    readonly log: RoomLog,
    readonly userId: string,
    private readonly ctx: CheckContext,
  ) {}

  /** The subscription has started: every message issued from now on is required. */
  started(): void {
    if (this.floor === Number.POSITIVE_INFINITY) this.floor = this.log.nextSeq;
  }

  /** A resync (or a resume without a resume point): what came before is excused. */
  refloor(): void {
    this.floor = this.log.nextSeq;
  }

  resync(): void {
    this.ctx.tally().resyncs += 1;
    this.refloor();
  }

  message(seq: number): void {
    const tally = this.ctx.tally();
    tally.deliveries += 1;
    if (this.got.has(seq)) {
      tally.duplicates += 1;
      this.ctx.finding({ kind: 'duplicate', room: this.log.roomId, user: this.userId, seq });
      return;
    }
    this.got.add(seq);
    if (seq < this.last) {
      if (this.declaredLost.delete(seq)) tally.lost -= 1;
      tally.outOfOrder += 1;
      this.ctx.finding({ kind: 'out-of-order', room: this.log.roomId, user: this.userId, seq });
      return;
    }
    for (let j = Math.max(this.last + 1, this.floor); j < seq; j += 1) this.declareLost(j);
    this.last = seq;
    // At receipt the send is usually still in flight (the server fans out before it answers):
    // count it as required unless it is known to have failed.
    const entry = this.log.get(seq);
    if (seq >= this.floor && entry !== undefined && entry.state !== 'failed' && entry.sender !== this.userId) tally.required += 1;
  }

  /** Required messages up to `target` (default: every completed send) not received yet. */
  outstanding(target = this.log.lastDone): number {
    let n = 0;
    for (let j = Math.max(this.last + 1, this.floor); j <= target; j += 1) if (this.required(j)) n += 1;
    return n;
  }

  /** The subscription ends: what it still lacks up to `target` is lost. */
  finish(target = this.log.lastDone): void {
    for (let j = Math.max(this.last + 1, this.floor); j <= target; j += 1) this.declareLost(j);
    this.last = Math.max(this.last, target);
  }

  private declareLost(j: number): void {
    if (!this.required(j) || this.got.has(j) || this.declaredLost.has(j)) return;
    this.declaredLost.add(j);
    this.ctx.tally().lost += 1;
    this.ctx.finding({ kind: 'lost', room: this.log.roomId, user: this.userId, seq: j });
  }

  private required(j: number): boolean {
    if (j < this.floor) return false;
    const entry = this.log.get(j);
    return entry !== undefined && entry.state === 'ok' && entry.sender !== this.userId;
  }
}
