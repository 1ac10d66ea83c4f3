import type { Config } from '../config.ts';
import { DomainError } from '../domain/errors.ts';
import type { UserId } from '../domain/types.ts';
import { TokenBuckets } from '../util/token-bucket.ts';

/**
 * Per-user rate of the read procedures (`conversation.history`, `conversation.presence`,
 * `conversation.mine`, `message.deliveryStatus`): one token bucket per user and node,
 * READ_RATE_PER_SEC tokens a second up to READ_RATE_BURST, for every role alike.
 *
 * A read costs tokens in proportion to its work, about 0.5–2 ms of CPU a token (measured on one
 * node, superjson included):
 * - `conversation.history`: one per 25 events of `limit`, paid before the read (default page of 50:
 *   2; the largest, 100: 4) — only the page's events are decoded, so its cost follows `limit`;
 * - `conversation.presence` and `conversation.mine`: one before the read, then one per 250 member
 *   entries the server had to read (`memberCount`; for `mine`, of every room read), paid after it
 *   — a page is built from the room's whole member list whatever its `limit` (a page of one in a
 *   room of 10,000 costs as much as a page of 1,000), and only the answer says how large that was;
 * - `message.deliveryStatus`: one.
 *
 * A refusal spends nothing and reads nothing: RATE_LIMITED (TOO_MANY_REQUESTS) with
 * `retryAfterMs`, the wait until that call's own cost is back. What is paid after a read may
 * leave the bucket in debt (at most one burst), which the user's next reads wait out.
 */
export class ReadRates {
  private readonly buckets: TokenBuckets;
  private lastSweep: number;

  constructor(
    config: Pick<Config, 'readRatePerSec' | 'readRateBurst'>,
    private readonly now: () => number = Date.now,
  ) {
    this.buckets = new TokenBuckets(config.readRatePerSec, config.readRateBurst, now, MAX_READ_RATE_USERS);
    this.lastSweep = now();
  }

  /** Spends `cost` of `userId`'s tokens, or throws RATE_LIMITED naming the wait (nothing spent). */
  take(userId: UserId, cost: number): void {
    this.sweepNowAndThen();
    const wait = this.buckets.take(userId, cost);
    if (wait > 0) throw new DomainError('RATE_LIMITED', `too many reads; retry in ${wait} ms (READ_RATE_PER_SEC)`, wait);
  }

  /** Spends what a read turned out to cost beyond what `take` paid (never refuses: it is done). */
  charge(userId: UserId, cost: number): void {
    this.buckets.charge(userId, cost);
  }

  /** Buckets held: at most MAX_READ_RATE_USERS, and only users who read within about a refill. */
  get size(): number {
    return this.buckets.size;
  }

  /** Refilled buckets are forgotten at most every SWEEP_MS, on a read (no timer to own or stop). */
  private sweepNowAndThen(): void {
    const now = this.now();
    if (now - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = now;
    this.buckets.sweep();
  }
}

/** Tokens of a `conversation.history` page of `limit` events. */
export const historyReadCost = (limit: number): number => Math.ceil(limit / 25);

/** Tokens paid after a presence read of `entries` member entries, beyond the one paid before it. */
export const memberReadCost = (entries: number): number => Math.floor(entries / 250);

/**
 * Most users with a bucket at once, per node. Beyond, the least recently active user's bucket is
 * forgotten (it restarts full): getting there takes that many distinct valid tokens reading
 * within one refill, and its memory is bounded (~150 bytes a user) whatever happens.
 */
export const MAX_READ_RATE_USERS = 100_000;

const SWEEP_MS = 10_000;
