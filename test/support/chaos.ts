import { Redis } from 'ioredis';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { ChatClient, Conversation, DeliveryReport, RoomEvent } from '../../clients/chat/index.ts';
import { compareEventIds, parseEventId } from '../../src/history/event-id.ts';
import type { AckAnswer, ObservedAck } from './chaos-proxy.ts';

export { recordAck, startChaosProxy, type AckAnswer, type AckAnswers, type ChaosProxy, type ObservedAck } from './chaos-proxy.ts';

/**
 * Machinery of the chaos tests (test/chaos.test.ts): a seeded PRNG, "identities" (one user
 * whose chat client may be closed and re-created, like a page reload with a persisted last event
 * id) that log every event delivered to the application, and the checks run over those logs at
 * the end. The proxy that cuts connections and reads the acks is in chaos-proxy.ts.
 */

// ---------------------------------------------------------------- randomness

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
  between(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  chance(p: number): boolean;
}

/** mulberry32: small, fast and good enough to pick victims reproducibly. */
export function createRandom(seed: number): Random {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const int = (n: number) => Math.floor(next() * n);
  return {
    next,
    int,
    between: (min, max) => min + next() * (max - min),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from an empty list');
      return items[int(items.length)]!;
    },
    chance: (p) => next() < p,
  };
}

/** CHAOS_SEED from the environment, or a fresh one; printed so that a failing run can be repeated. */
export function chaosSeed(label: string): number {
  const fromEnv = process.env.CHAOS_SEED;
  const seed = fromEnv !== undefined && fromEnv !== '' ? Number(fromEnv) >>> 0 : Math.floor(Math.random() * 2 ** 32);
  console.log(`[chaos ${label}] seed ${seed} (repeat with CHAOS_SEED=${seed})`);
  return seed;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Resolves with `promise`'s outcome, or with 'timeout' after `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A full garbage collection (`--expose-gc` switched on at run time), for heap comparisons. */
export function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

// ---------------------------------------------------------------- identities

/** One event as the application got it. */
export interface LoggedEvent {
  id: string;
  event: RoomEvent;
  /** Date.now() when it was delivered. */
  at: number;
  /** Which incarnation of the identity delivered it. */
  incarnation: number;
}

/** One chat client of an identity, from its creation to its close. */
export interface Incarnation {
  index: number;
  client: ChatClient;
  conversation: Conversation;
  /** Index of the node (proxy) it talks to. */
  node: number;
  /** The last event id it joined with (the previous incarnation's), if any. */
  resumedFrom: string | undefined;
  log: LoggedEvent[];
  /** Events delivered after close() resolved: must stay empty. */
  afterClose: LoggedEvent[];
  errors: unknown[];
  closed: boolean;
}

export type Disruption = 'drop' | 'sever' | 'reload' | 'node_killed';

/** How an identity's chat clients are made: a real client for `userId` on `node`. */
export type Connect = (userId: string, node: number) => ChatClient;

/**
 * A user whose chat client may be closed and created again (a page reload that kept the last
 * event id), with every event delivered to the application logged across those incarnations.
 * Actions on one identity run one at a time (`serial`).
 */
export class Identity {
  readonly incarnations: Incarnation[] = [];
  readonly disruptions: Array<{ at: number; kind: Disruption }> = [];
  /** True while an action (reload, send) runs or waits. */
  busy = false;
  /** Called for every event delivered to the application, after it is logged. */
  onEvent: ((e: LoggedEvent, incarnation: Incarnation) => void) | undefined;
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;

  constructor(
    readonly userId: string,
    readonly room: string,
    private readonly connect: Connect,
  ) {}

  get current(): Incarnation {
    const last = this.incarnations.at(-1);
    if (!last) throw new Error(`${this.userId} has no client yet`);
    return last;
  }

  /** Creates the next chat client on `node` and joins, resuming after `lastEventId` if given. */
  incarnate(node: number, lastEventId?: string): Incarnation {
    const client = this.connect(this.userId, node);
    const incarnation: Incarnation = {
      index: this.incarnations.length,
      client,
      node,
      resumedFrom: lastEventId,
      log: [],
      afterClose: [],
      errors: [],
      closed: false,
      conversation: undefined as unknown as Conversation,
    };
    incarnation.conversation = client.join(this.room, {
      ...(lastEventId !== undefined && { lastEventId }),
      onEvent: (event, id) => {
        const logged = { id, event, at: Date.now(), incarnation: incarnation.index };
        (incarnation.closed ? incarnation.afterClose : incarnation.log).push(logged);
        this.onEvent?.(logged, incarnation);
      },
      onError: (error) => incarnation.errors.push(error),
    });
    this.incarnations.push(incarnation);
    return incarnation;
  }

  /**
   * A page reload: the client is closed, and after `pauseMs` a new one joins on `node` with the
   * last event id the old one delivered. Resolves once the new subscription has started (or after
   * a few seconds if its node died meanwhile: the caller moves it on).
   */
  async reload(node: number, pauseMs: number, kind: Disruption = 'reload'): Promise<void> {
    const old = this.current;
    this.disrupted(kind);
    await within(old.client.close(), 5000);
    old.closed = true;
    await sleep(pauseMs);
    const next = this.incarnate(node, old.conversation.lastEventId);
    await within(next.conversation.started, 5000);
  }

  disrupted(kind: Disruption, at = Date.now()): void {
    this.disruptions.push({ at, kind });
  }

  /** Runs `action` after every action queued before it; `busy` while any is queued. */
  serial(action: () => Promise<void>): Promise<void> {
    this.queued += 1;
    this.busy = true;
    const run = this.chain.then(action);
    this.chain = run
      .catch(() => undefined)
      .finally(() => {
        this.queued -= 1;
        this.busy = this.queued > 0;
      });
    return run;
  }

  /** Every event delivered to the application, incarnation after incarnation. */
  events(): LoggedEvent[] {
    return this.incarnations.flatMap((i) => i.log);
  }

  async close(): Promise<void> {
    await within(this.current.client.close(), 5000);
    this.current.closed = true;
  }
}

// ---------------------------------------------------------------- what was sent

export interface SentMessage {
  /** Index of the node the send went through (cluster: the message's owner). */
  owner?: number;
  senderId: string;
  body: string;
  messageId: string;
  eventId: string;
  expected: string[];
}

function compareIds(a: string, b: string): number | null {
  const pa = parseEventId(a);
  const pb = parseEventId(b);
  return pa && pb ? compareEventIds(pa, pb) : null;
}

export function byEventId(a: SentMessage, b: SentMessage): number {
  return compareIds(a.eventId, b.eventId) ?? 0;
}

// ---------------------------------------------------------------- checks

export interface StreamCheck {
  problems: string[];
  resyncs: number;
  /** Messages not delivered because a `resync` said the stream had a gap. */
  excused: number;
}

/**
 * The stream an identity's application saw, across its incarnations: event ids strictly
 * increasing, and every message of `sent` (but the identity's own) exactly once, in event-id
 * order — except messages inside a gap that a `resync` event announced.
 */
export function checkStream(identity: Identity, sent: readonly SentMessage[]): StreamCheck {
  const problems: string[] = [];
  const who = identity.userId;
  const events = identity.events();
  for (let i = 1; i < events.length; i += 1) {
    const [a, b] = [events[i - 1]!, events[i]!];
    const order = compareIds(a.id, b.id);
    if (order === null || order >= 0) problems.push(`${who}: event ${b.id} (${b.event.type}, incarnation ${b.incarnation}) after ${a.id} (${a.event.type}, incarnation ${a.incarnation})`);
  }
  for (const incarnation of identity.incarnations) {
    if (incarnation.afterClose.length > 0) problems.push(`${who}: incarnation ${incarnation.index} delivered ${incarnation.afterClose.length} event(s) after close()`);
    for (const error of incarnation.errors) problems.push(`${who}: incarnation ${incarnation.index} subscription error: ${String(error)}`);
  }

  const want = sent.filter((m) => m.senderId !== who).sort(byEventId);
  const position = new Map(want.map((m, i) => [m.messageId, i]));
  let next = 0;
  let resyncs = 0;
  let excused = 0;
  for (const e of events) {
    if (e.event.type === 'resync') {
      resyncs += 1;
      while (next < want.length && (compareIds(want[next]!.eventId, e.id) ?? 1) <= 0) {
        next += 1;
        excused += 1;
      }
      continue;
    }
    if (e.event.type !== 'message' || e.event.message.senderId === who) continue; // own messages may come back in a replay
    const at = position.get(e.event.message.id);
    const where = `${e.event.message.body} (${e.id}, incarnation ${e.incarnation})`;
    if (at === undefined) problems.push(`${who}: got ${where}, which no send returned`);
    else if (at < next) problems.push(`${who}: got ${where} again`);
    else {
      if (at > next) problems.push(`${who}: missed ${at - next} message(s), ${want[next]!.body} to ${want[at - 1]!.body}, before ${where}`);
      next = at + 1;
    }
  }
  if (next < want.length) problems.push(`${who}: never got the last ${want.length - next} message(s), from ${want[next]!.body}`);
  return { problems, resyncs, excused };
}

export interface ReportCheckOptions {
  sent: readonly SentMessage[];
  /** Every identity, senders included: who received what, and the senders' reports. */
  identities: readonly Identity[];
  ackTimeoutMs: number;
  /** The final report of each message as `deliveryStatus` answers it now. */
  statuses: ReadonlyMap<string, DeliveryReport | { status: 'pending' } | Error>;
  /** Every ack the server answered, by message and user. */
  answers: ReadonlyMap<string, ReadonlyMap<string, readonly ObservedAck[]>>;
  /**
   * How the answers were taken. `service` (single node, on the service itself): the check is
   * exact, `acked` is precisely the users whose ack was counted, each once. `wire` (cluster, by
   * the proxies): an answer can be lost with its connection, and the owner node may fire the
   * deadline before it hears of an ack another node already counted in Redis; so `acked` must
   * lie within the counted-or-unanswered acks, and every ack answered `counted` more than
   * `raceMs` before the deadline must be in it.
   */
  taken: 'service' | 'wire';
  raceMs?: number;
}

export interface ReportCheck {
  problems: string[];
  outcomes: Record<'delivered' | 'partial' | 'failed', number>;
  /** Expected recipients reported missing. */
  missing: number;
  /** (wire) Acks answered `counted` within `raceMs` of the deadline that the report left out. */
  raced: Array<{ messageId: string; userId: string; beforeDeadlineMs: number }>;
}

const sortedCopy = (xs: readonly string[]) => [...xs].sort();
const sameSet = (a: readonly string[], b: readonly string[]) => JSON.stringify(sortedCopy(a)) === JSON.stringify(sortedCopy(b));

/**
 * Every acknowledged send ended in exactly one `message_delivered` event to its sender (across
 * the sender's incarnations), that report agrees with `deliveryStatus`, names exactly the
 * recipients expected at send time, splits them into acked and missing consistently with its
 * status, acked only users who did receive the message, and agrees with the acks the server
 * answered (see `taken`).
 */
export function checkReports(options: ReportCheckOptions): ReportCheck {
  const { sent, identities, statuses, answers, taken, raceMs = 0, ackTimeoutMs } = options;
  const problems: string[] = [];
  const outcomes = { delivered: 0, partial: 0, failed: 0 };
  const raced: ReportCheck['raced'] = [];
  let missing = 0;
  const byUser = new Map(identities.map((i) => [i.userId, i]));

  // First delivery of each message to each user: when, and by which incarnation.
  const received = new Map<string, Map<string, LoggedEvent>>();
  const reports = new Map<string, DeliveryReport[]>();
  for (const identity of identities) {
    for (const e of identity.events()) {
      if (e.event.type === 'message') {
        const users = received.get(e.event.message.id) ?? new Map<string, LoggedEvent>();
        received.set(e.event.message.id, users);
        if (!users.has(identity.userId)) users.set(identity.userId, e);
      } else if (e.event.type === 'message_delivered') {
        if (e.event.report.conversationId !== identity.room) problems.push(`${identity.userId}: report of ${e.event.report.messageId} for another room`);
        const list = reports.get(e.event.report.messageId) ?? [];
        reports.set(e.event.report.messageId, list);
        list.push(e.event.report);
      }
    }
  }

  for (const m of sent) {
    const label = `${m.body} (${m.messageId})`;
    const own = (byUser.get(m.senderId)?.events() ?? []).flatMap((e) => (e.event.type === 'message_delivered' && e.event.report.messageId === m.messageId ? [e.event.report] : []));
    const all = reports.get(m.messageId) ?? [];
    if (all.length !== own.length) problems.push(`${label}: ${all.length - own.length} report(s) delivered to users other than the sender`);
    if (own.length === 0) {
      problems.push(`${label}: no message_delivered event to its sender ${m.senderId}`);
      continue;
    }
    if (own.length > 1) problems.push(`${label}: ${own.length} message_delivered events to its sender ${m.senderId}`);
    const report = own[0]!;
    outcomes[report.status] += 1;
    missing += report.missing.length;

    const status = statuses.get(m.messageId);
    if (status === undefined || status instanceof Error || status.status === 'pending') problems.push(`${label}: deliveryStatus answers ${status instanceof Error ? status.message : status?.status}`);
    else if (status.status !== report.status || !sameSet(status.acked, report.acked) || !sameSet(status.missing, report.missing)) {
      problems.push(`${label}: deliveryStatus (${status.status}, acked ${status.acked.length}) differs from the report (${report.status}, acked ${report.acked.length})`);
    }

    // Each report (one, unless the check above failed) must be right on its own.
    const receivers = received.get(m.messageId) ?? new Map<string, LoggedEvent>();
    const byAcker = answers.get(m.messageId) ?? new Map<string, readonly ObservedAck[]>();
    const answered = (u: string, ...kinds: AckAnswer[]) => (byAcker.get(u) ?? []).filter((a) => kinds.includes(a.answer));
    for (const r of own) {
      if (!sameSet(r.expected, m.expected)) problems.push(`${label}: report expects ${r.expected.length} users, the send returned ${m.expected.length}`);
      if (!sameSet([...r.acked, ...r.missing], r.expected) || r.acked.some((u) => r.missing.includes(u))) {
        problems.push(`${label}: acked (${r.acked.length}) and missing (${r.missing.length}) do not split expected (${r.expected.length})`);
      }
      const shouldBe = r.acked.length === 0 ? 'failed' : r.missing.length === 0 ? 'delivered' : 'partial';
      if (r.status !== shouldBe) problems.push(`${label}: status ${r.status}, but acked ${r.acked.length} of ${r.expected.length}`);
      if (r.expected.includes(m.senderId)) problems.push(`${label}: the sender is among the expected`);
      for (const u of r.acked) if (!receivers.has(u)) problems.push(`${label}: ${u} is reported acked but never received it`);
      if (taken === 'wire') {
        for (const u of r.acked) {
          if (answered(u, 'counted', 'unanswered').length === 0) problems.push(`${label}: ${u} is reported acked, but none of its acks was counted (or lost with its connection)`);
        }
      }
    }

    for (const [u, list] of byAcker) {
      const refused = list.find((a) => a.answer === 'refused');
      if (refused && report.expected.includes(u)) problems.push(`${label}: ${u}'s ack was refused although expected (${refused.error ?? 'no error shown'})`);
      if (list.some((a) => a.answer === 'counted') && !report.expected.includes(u)) problems.push(`${label}: ${u}'s ack was counted although not expected`);
    }
    if (taken === 'service') {
      for (const [u] of byAcker) {
        const counted = answered(u, 'counted').length;
        if (counted > 1) problems.push(`${label}: ${u}'s ack was counted ${counted} times`);
        if (counted === 1 && !report.acked.includes(u)) problems.push(`${label}: ${u}'s ack was counted, but the report says missing`);
      }
      for (const u of report.acked) if (answered(u, 'counted').length === 0) problems.push(`${label}: ${u} is reported acked, but no ack of it was counted`);
    } else {
      const deadline = report.createdAt.getTime() + ackTimeoutMs;
      for (const u of m.expected) {
        if (own.some((r) => r.acked.includes(u))) continue;
        const first = answered(u, 'counted')[0];
        if (!first) continue;
        if (first.at >= deadline - raceMs) raced.push({ messageId: m.messageId, userId: u, beforeDeadlineMs: deadline - first.at });
        else problems.push(`${label}: ${u}'s ack was answered counted ${deadline - first.at} ms before the deadline, but the report says missing`);
      }
    }
  }
  return { problems, outcomes, missing, raced };
}

/** At most `n` problems, with a count of the rest: failure messages stay readable. */
export function firstProblems(problems: readonly string[], n = 25): string[] {
  return problems.length <= n ? [...problems] : [...problems.slice(0, n), `… and ${problems.length - n} more`];
}

// ---------------------------------------------------------------- cluster leftovers

/** A node's pino JSON line, or undefined for anything else. */
export function parseLogLine(line: string): Record<string, unknown> | undefined {
  try {
    return line.startsWith('{') ? (JSON.parse(line) as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Every key under `prefix`, with its PTTL (-1: no expiry). */
export async function keysUnder(url: string, prefix: string): Promise<Array<{ key: string; pttl: number }>> {
  const redis = new Redis(url);
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, page] = await redis.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 500);
      keys.push(...page);
      cursor = next;
    } while (cursor !== '0');
    const ttls = await Promise.all(keys.map((k) => redis.pttl(k)));
    return keys.map((key, i) => ({ key: key.slice(prefix.length), pttl: ttls[i]! }));
  } finally {
    redis.disconnect();
  }
}
