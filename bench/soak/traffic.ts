/**
 * The soak's mixed traffic, from stock chat clients (`createChatClient`, one per user, one
 * WebSocket each): every room has at most one send in flight (so its messages' order is known,
 * see stream-check.ts), some sends ask for acks, some are preceded by typing, and the churn
 * (churn.ts) runs beside them. Every message received is classified (live, recovered after a
 * disruption, or in flight across the soak's forced GC of the server) and checked.
 */
import type { WebSocket } from 'ws';
import { createChatClient, type ChatClient, type RoomEvent } from '../../clients/chat/index.ts';
import { mintToken } from '../../src/auth/tokens.ts';
import { AckLedger } from './acks.ts';
import { Churn, type ChurnHost, type ChurnRates } from './churn.ts';
import { Disruptions } from './disruptions.ts';
import { hash, installRecordingWebSocket, withTimeout, type Membership, type Room, type User } from './population.ts';
import { StreamCheck, RoomLog, type CheckContext } from './stream-check.ts';
import { Tally, type Finding } from './tally.ts';
import { makeBody, parseBody, seededRandom, type Topology } from './topology.ts';

export interface TrafficOptions {
  wsUrl: string;
  secret: string;
  topology: Topology;
  churn: ChurnRates;
  /** Share of sends with `ack: true`. */
  ackShare: number;
  /** The server's ACK_TIMEOUT_MS. */
  ackTimeoutMs: number;
  seed: number;
}

/** Share of sends preceded by typing (50–300 ms), and of typing that never ends in a send. */
const TYPED_SHARE = 0.3;
const DRAFT_SHARE = 0.05;

/** Live deliveries slower than this are kept as (diagnostic) findings. */
const SLOW_LIVE_US = 1_000_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class SoakTraffic implements ChurnHost {
  readonly disruptions = new Disruptions();
  readonly ledger: AckLedger;
  readonly findings: Finding[] = [];
  /** Send errors, by message. */
  readonly sendErrors = new Map<string, number>();
  running = false;
  private current = new Tally();
  private readonly userMap = new Map<string, User>();
  private readonly roomList: Room[];
  private readonly churn: Churn;
  private readonly rng: () => number;
  private readonly ctx: CheckContext;
  private startedAt = 0;
  private readonly loops: Array<Promise<void>> = [];
  private readonly operations = new Set<Promise<void>>();
  /** Wakes the churn's sleepers (pauses, restarts) when the run drains. */
  private readonly wakers = new Set<() => void>();
  /** The soak's forced GCs of the server, [start, end] in performance.now() ms. */
  private readonly gcWindows: Array<[number, number]> = [];
  /** This process's own event-loop stalls over 100 ms in the last 30 s, [end, length ms], for findings. */
  private readonly stalls: Array<[number, number]> = [];
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(private readonly options: TrafficOptions) {
    this.rng = seededRandom(options.seed ^ 0x5eed);
    this.ctx = { tally: () => this.current, finding: (f) => this.finding(f) };
    this.ledger = new AckLedger({
      ackTimeoutMs: options.ackTimeoutMs,
      disruptions: this.disruptions,
      tally: () => this.current,
      finding: (f) => this.finding(f),
      query: (sender, messageId) => {
        const user = this.userMap.get(sender);
        return user?.state === 'up' && user.client ? user.client.deliveryStatus(messageId) : null;
      },
    });
    this.churn = new Churn(this, options.churn);
    this.roomList = options.topology.rooms.map((plan) => ({ plan, log: new RoomLog(plan.id), members: [] }));
    for (const id of options.topology.users) this.userMap.set(id, { id, token: '', client: null, state: 'connecting', memberships: [], socket: null, sending: 0, endReopen: null, lastAckRequiredAt: Number.NEGATIVE_INFINITY });
    for (const room of this.roomList) {
      for (const userId of room.plan.members) {
        const user = this.userMap.get(userId)!;
        const m: Membership = { room, user, joined: true, busy: false, conversation: null, check: null, generation: 0 };
        room.members.push(m);
        user.memberships.push(m);
      }
    }
    installRecordingWebSocket((userId, ws) => this.socketCreated(userId, ws));
  }

  get userCount(): number {
    return this.userMap.size;
  }

  get subscriptionCount(): number {
    return this.roomList.reduce((n, r) => n + r.members.length, 0);
  }

  // ---------------------------------------------------------------- ChurnHost

  users(): Iterable<User> {
    return this.userMap.values();
  }

  rooms(): readonly Room[] {
    return this.roomList;
  }

  tally(): Tally {
    return this.current;
  }

  random(): number {
    return this.rng();
  }

  newClient(user: User): ChatClient {
    return createChatClient({ url: `${this.options.wsUrl}?soak=${user.id}`, token: user.token });
  }

  async subscribe(m: Membership, lastEventId: string | undefined): Promise<void> {
    const generation = ++m.generation;
    const fresh = lastEventId === undefined || !m.check;
    if (fresh) m.check = new StreamCheck(m.room.log, m.user.id, this.ctx);
    const check = m.check!;
    m.conversation = m.user.client!.join(m.room.plan.id, {
      ...(lastEventId !== undefined && { lastEventId }),
      onEvent: (event) => {
        if (m.generation === generation) this.onEvent(m, check, event);
      },
      onError: (error) => {
        if (m.generation !== generation) return;
        this.current.subscriptionErrors += 1;
        this.finding({ kind: 'subscription-error', room: m.room.plan.id, user: m.user.id, seq: -1, detail: error instanceof Error ? error.message : String(error) });
      },
    });
    await withTimeout(m.conversation.started, 15_000, `${m.user.id} joining ${m.room.plan.id}`);
    if (fresh) check.started();
  }

  nap(ms: number): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  track(operation: Promise<void>): void {
    const p = operation.catch((error: unknown) => {
      this.finding({ kind: 'subscription-error', room: '-', user: '-', seq: -1, detail: `churn: ${error instanceof Error ? error.message : String(error)}` });
    });
    this.operations.add(p);
    void p.finally(() => this.operations.delete(p));
  }

  // ---------------------------------------------------------------- the run

  /** Connects every user and joins every room; resolves once every subscription has started. */
  async connect(): Promise<void> {
    const users = [...this.userMap.values()];
    for (const user of users) user.token = await mintToken(this.options.secret, { userId: user.id, name: user.id, conversations: ['*'], expiresIn: '24h' });
    for (let i = 0; i < users.length; i += 25) {
      await Promise.all(
        users.slice(i, i + 25).map(async (user) => {
          user.client = this.newClient(user);
          await Promise.all(user.memberships.map((m) => this.subscribe(m, undefined)));
          user.state = 'up';
        }),
      );
    }
  }

  /** Starts sending and churning. */
  start(): void {
    this.running = true;
    this.startedAt = performance.now();
    let last = performance.now();
    this.stallTimer = setInterval(() => {
      const now = performance.now();
      if (now - last - 50 > 100) this.stalls.push([now, now - last - 50]);
      while (this.stalls.length > 0 && this.stalls[0]![0] < now - 30_000) this.stalls.shift();
      last = now;
    }, 50);
    this.stallTimer.unref();
    for (const room of this.roomList) this.loops.push(this.roomLoop(room));
    this.loops.push(this.churn.loop(this.startedAt));
    this.loops.push(this.sweepLoop());
  }

  /** The current interval's tally, replaced by a fresh one. */
  takeTally(): Tally {
    const done = this.current;
    this.current = new Tally();
    return done;
  }

  /** Marks a forced GC of the server; the function returned marks its end. */
  gcStarted(): () => void {
    const window: [number, number] = [performance.now(), Number.POSITIVE_INFINITY];
    this.gcWindows.push(window);
    if (this.gcWindows.length > 8) this.gcWindows.shift();
    return () => (window[1] = performance.now());
  }

  /**
   * Stops sending and churning, lets paused readers catch up, waits (at most `settleMs`) until
   * every subscription has every message it must get, ends every subscription's check, and waits
   * for the outstanding delivery reports. Returns what was still missing when the wait ended.
   */
  async drain(settleMs = 30_000): Promise<{ outstanding: number; pendingReports: number }> {
    this.running = false;
    if (this.stallTimer) clearInterval(this.stallTimer);
    this.churn.cancelRejoins();
    for (const wake of this.wakers) wake();
    await Promise.all(this.loops);
    while (this.operations.size > 0) await Promise.all([...this.operations]);
    const memberships = [...this.userMap.values()].flatMap((u) => u.memberships.filter((m) => m.joined && m.check));
    const deadline = performance.now() + settleMs;
    let outstanding = 0;
    for (;;) {
      outstanding = memberships.reduce((n, m) => n + m.check!.outstanding(), 0);
      if (outstanding === 0 || performance.now() > deadline) break;
      await sleep(100);
    }
    for (const m of memberships) m.check!.finish();
    const reportsBy = performance.now() + this.options.ackTimeoutMs + 15_000;
    while (this.ledger.size > 0 && performance.now() < reportsBy) {
      await this.ledger.sweep(performance.now(), { giveUpMs: 10_000, now: true });
      await sleep(250);
    }
    return { outstanding, pendingReports: this.ledger.size };
  }

  async close(): Promise<void> {
    await Promise.all([...this.userMap.values()].map((u) => u.client?.close()));
  }

  // ---------------------------------------------------------------- receiving

  private onEvent(m: Membership, check: StreamCheck, event: RoomEvent): void {
    switch (event.type) {
      case 'message': {
        const parsed = parseBody(event.message.body);
        if (!parsed) return;
        const now = performance.now();
        if (event.message.ackRequired) m.user.lastAckRequiredAt = now;
        const us = (now - parsed.issuedAtMs) * 1000;
        if (this.disruptions.disruptedSince(m.user.id, parsed.issuedAtMs)) this.current.recovered.record(us);
        else if (this.gcWindows.some(([a, b]) => parsed.issuedAtMs <= b && now >= a)) this.current.gcAffected.record(us);
        else {
          this.current.live.record(us);
          if (us >= SLOW_LIVE_US) this.finding({ kind: 'slow-live-delivery', room: m.room.plan.id, user: m.user.id, seq: parsed.seq, detail: `${(us / 1e6).toFixed(2)} s, ${event.message.body.length} chars` });
        }
        this.disruptions.received(m.user.id, parsed.issuedAtMs);
        check.message(parsed.seq);
        return;
      }
      case 'typing':
        this.current.typing += 1;
        return;
      case 'resync':
        check.resync();
        return;
      case 'message_delivered':
        this.ledger.report(event.report);
        return;
      case 'user_joined':
      case 'user_left':
      case 'user_disconnected':
      case 'presence_diff':
      case 'conversation_updated':
      case 'system':
      case 'subscribed':
        return; // presence and the rest: seen, not checked here
    }
  }

  /** Every socket a client opens (installRecordingWebSocket): reconnects, and closes the soak did not cause. */
  private socketCreated(userId: string, ws: WebSocket): void {
    const user = this.userMap.get(userId);
    if (!user) return;
    const previous = user.socket;
    user.socket = ws;
    ws.once('open', () => {
      if (previous === null || user.socket !== ws) return; // the first socket of a client
      if (user.state === 'dropped') user.state = 'up';
      this.current.reconnects += 1;
      user.endReopen?.();
      user.endReopen = null;
    });
    ws.once('close', (code: number) => {
      if (user.socket !== ws || !this.running) return;
      if (user.state === 'dropped' || user.state === 'restarting') return; // the churn's doing
      this.current.serverCloses += 1;
      this.current.closeCodes.set(code, (this.current.closeCodes.get(code) ?? 0) + 1);
      user.endReopen?.();
      user.endReopen = this.disruptions.begin(user.id, 'close');
      if (user.state === 'up') user.state = 'dropped';
    });
  }

  // ---------------------------------------------------------------- sending

  private async roomLoop(room: Room): Promise<void> {
    const random = seededRandom(this.options.seed ^ hash(room.plan.id));
    while (this.running) {
      await sleep((-Math.log(1 - random()) * 1000) / room.plan.rate);
      if (!this.running) break;
      const senders = room.members.filter((m) => this.canSend(m));
      if (senders.length === 0) continue;
      const m = senders[Math.floor(random() * senders.length)]!;
      const { user } = m;
      const client = user.client!;
      user.sending += 1;
      try {
        const typed = random() < TYPED_SHARE;
        if (typed) {
          client.setTyping(room.plan.id, true);
          await sleep(50 + random() * 250);
          if (!this.canSend(m)) continue;
        } else if (random() < DRAFT_SHARE) {
          client.setTyping(room.plan.id, true); // a draft never sent: typing stops by itself
          continue;
        }
        const ack = random() < this.options.ackShare;
        const issuedAt = performance.now();
        const seq = room.log.issue(user.id, issuedAt, ack);
        try {
          const result = await client.send(room.plan.id, makeBody(seq, issuedAt, random), ack ? { ack: true } : {});
          room.log.settle(seq, true);
          this.current.sent += 1;
          if (ack) {
            this.current.ackedSent += 1;
            this.ledger.add(result.messageId, room.plan.id, user.id, issuedAt);
          }
        } catch (error) {
          room.log.settle(seq, false);
          this.current.sendFailed += 1;
          const text = error instanceof Error ? error.message : String(error);
          this.sendErrors.set(text, (this.sendErrors.get(text) ?? 0) + 1);
        }
        if (typed) client.setTyping(room.plan.id, false);
      } finally {
        user.sending -= 1;
      }
    }
  }

  private canSend(m: Membership): boolean {
    return m.joined && !m.busy && m.check !== null && m.user.state === 'up' && m.user.client !== null;
  }

  private async sweepLoop(): Promise<void> {
    while (this.running) {
      await sleep(1000);
      await this.ledger.sweep(performance.now());
    }
  }

  /** Keeps the first 20 findings of each kind, with what the user went through around then. */
  private finding(f: Omit<Finding, 'atS'>): void {
    if (this.findings.filter((x) => x.kind === f.kind).length >= 20) return;
    const now = performance.now();
    const context: string[] = [];
    const entry = f.seq >= 0 ? this.roomList.find((r) => r.plan.id === f.room)?.log.get(f.seq) : undefined;
    if (entry) context.push(`sent by ${entry.sender} at ${((entry.issuedAt - this.startedAt) / 1000).toFixed(1)} s${entry.ack ? ', ack required' : ''}`);
    if (f.kind === 'slow-live-delivery' && entry) {
      const z = (t: number) => ((t - this.startedAt) / 1000).toFixed(1);
      const during = this.stalls.filter(([end, ms]) => end >= entry.issuedAt && end - ms <= now);
      context.push(during.length ? `the soak's own event loop stalled meanwhile: ${during.map(([end, ms]) => `${Math.round(ms)} ms at ${z(end - ms)} s`).join(', ')}` : "the soak's own event loop did not stall over 100 ms meanwhile");
    }
    if (f.user !== '-' && !f.user.includes(',')) {
      const around = this.disruptions.describe(f.user, (entry?.issuedAt ?? now) - 15_000, now, this.startedAt);
      context.push(around.length ? `${f.user}: ${around.join(', ')}` : `${f.user}: no disruption in the 15 s before`);
    }
    const detail = [f.detail, ...context].filter(Boolean).join('; ');
    this.findings.push({ ...f, ...(detail && { detail }), atS: Math.round((now - this.startedAt) / 100) / 10 });
  }
}
