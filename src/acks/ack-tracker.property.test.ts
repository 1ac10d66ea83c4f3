import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { DeliveryReport } from '../domain/types.ts';
import { AckTracker, type RetryRequest, type TrackInput } from './ack-tracker.ts';

/**
 * Model-based test of the ack tracker under fake timers: any sequence of track, ack (expected,
 * duplicate, unexpected user, wrong conversation, unknown or finished message), time advancing
 * and flushAll. The model knows each message's expected users, acks and deadline; from it follow
 * the result of every call, the one report each message must end in (when, and with what
 * partition and status), and the exact re-sends: one every RETRY_MS strictly before the
 * deadline while the message is pending, each naming exactly the users who have not acked.
 */

const RETRY_MS = 30;
const MESSAGES = ['m0', 'm1', 'm2', 'm3', 'm4', 'm5'] as const;
const USERS = ['u0', 'u1', 'u2', 'u3'] as const;
const ROOMS = ['r0', 'r1'] as const;
const MAX_TIMEOUT_MS = 300;

interface ModelMessage {
  conversationId: string;
  senderId: string;
  expected: string[];
  acked: Set<string>;
  createdAt: number;
  deadline: number;
  /** Re-sends seen so far (attempts − 1). */
  retries: number;
  report: DeliveryReport | null;
}

interface Model {
  messages: Map<string, ModelMessage>;
}

interface Real {
  tracker: AckTracker;
  reports: Array<{ report: DeliveryReport; senderId: string }>;
  /** Reports already checked against the model. */
  checkedReports: number;
}

type Cmd = fc.Command<Model, Real>;

const isPending = (m: ModelMessage | undefined): m is ModelMessage => m !== undefined && m.report === null;

function command(label: string, run: (model: Model, real: Real) => void): Cmd {
  return {
    check: () => true,
    run(model, real) {
      run(model, real);
      settleReports(model, real, null);
      expectConsistent(model, real);
    },
    toString: () => label,
  };
}

/** The report a pending message must produce if it completes now. */
function expectedReport(messageId: string, m: ModelMessage, completedAt: number): DeliveryReport {
  const acked = m.expected.filter((u) => m.acked.has(u));
  const missing = m.expected.filter((u) => !m.acked.has(u));
  return {
    messageId,
    conversationId: m.conversationId,
    status: acked.length === 0 ? 'failed' : missing.length === 0 ? 'delivered' : 'partial',
    expected: [...m.expected],
    acked,
    missing,
    createdAt: new Date(m.createdAt),
    completedAt: new Date(completedAt),
    latencyMs: completedAt - m.createdAt,
  };
}

/** How many re-sends a message completed at `at` must have had (none at or after its deadline). */
function expectedRetries(m: ModelMessage, at: number, timeoutMs: number): number {
  if (timeoutMs <= RETRY_MS) return 0;
  const last = Math.min(at, m.deadline - 1);
  return Math.max(0, Math.floor((last - m.createdAt) / RETRY_MS));
}

/**
 * Checks every report the tracker made since the last call: exactly one per message, for a
 * message the model holds pending, with the model's partition. `completedAt` is when the command
 * completes it (ack, flush, empty track), or null when only deadlines may have completed it.
 */
function settleReports(model: Model, real: Real, completedAt: number | null): void {
  for (const { report, senderId } of real.reports.slice(real.checkedReports)) {
    const m = model.messages.get(report.messageId);
    expect(isPending(m), `a report for ${report.messageId}, which is not pending`).toBe(true);
    const at = completedAt ?? m!.deadline;
    expect(report.completedAt.getTime()).toBe(at);
    expect(report).toEqual(expectedReport(report.messageId, m!, at));
    expect(senderId).toBe(m!.senderId);
    expect(m!.retries).toBe(expectedRetries(m!, at, m!.deadline - m!.createdAt));
    m!.report = report;
  }
  real.checkedReports = real.reports.length;
}

// ---------------------------------------------------------------- commands

const trackCmd = (input: TrackInput) =>
  command(`track(${JSON.stringify(input)})`, (model, real) => {
    const { messageId, conversationId, senderId, expected, timeoutMs } = input;
    if (model.messages.has(messageId)) {
      expect(() => real.tracker.track(input)).toThrow(/already tracked/);
      return;
    }
    const now = Date.now();
    model.messages.set(messageId, { conversationId, senderId, expected: [...new Set(expected)], acked: new Set(), createdAt: now, deadline: now + timeoutMs, retries: 0, report: null });
    real.tracker.track(input);
    // With nobody to wait for, the report (failed) is made at once.
    expect(real.reports.length - real.checkedReports).toBe(expected.length === 0 ? 1 : 0);
    settleReports(model, real, now);
  });

const ackCmd = (messageId: string, conversationId: string, userId: string) =>
  command(`ack(${messageId}, ${conversationId}, ${userId})`, (model, real) => {
    const m = model.messages.get(messageId);
    const ack = () => real.tracker.ack(messageId, conversationId, userId);
    if (!m || m.conversationId !== conversationId) {
      expect(ack).toThrow(expect.objectContaining({ code: 'ACK_UNKNOWN' }));
      return;
    }
    if (!m.expected.includes(userId)) {
      expect(ack).toThrow(expect.objectContaining({ code: 'ACK_NOT_EXPECTED' }));
      return;
    }
    if (m.report) {
      // After the report: late, and a duplicate iff the report counted this user.
      expect(ack()).toEqual({ accepted: false, duplicate: m.report.acked.includes(userId), late: true });
      return;
    }
    const duplicate = m.acked.has(userId);
    const result = ack();
    expect(result).toEqual({ accepted: true, duplicate, late: false });
    m.acked.add(userId);
    // The last missing ack completes the message at once.
    expect(real.reports.length - real.checkedReports).toBe(!duplicate && m.acked.size === m.expected.length ? 1 : 0);
    settleReports(model, real, Date.now());
  });

/** Reports made by deadlines are checked by `command` once the time has passed. */
const advanceCmd = (ms: number) => command(`advance(${ms})`, () => vi.advanceTimersByTime(ms));

const flushCmd = () =>
  command('flushAll()', (model, real) => {
    const pending = [...model.messages.values()].filter(isPending).length;
    real.tracker.flushAll();
    expect(real.reports.length - real.checkedReports).toBe(pending);
    settleReports(model, real, Date.now());
  });

/** Each message id belongs to one room; acks name it, or (sometimes) the other room. */
const roomOf = (messageId: string): string => ROOMS[MESSAGES.indexOf(messageId as (typeof MESSAGES)[number]) % ROOMS.length]!;
const otherRoom = (roomId: string): string => (roomId === ROOMS[0] ? ROOMS[1] : ROOMS[0]);

/** Mostly someone to wait for (repeats allowed: they count once), sometimes nobody. */
const expectedArb = fc.oneof(
  { weight: 1, arbitrary: fc.constant<string[]>([]) },
  { weight: 6, arbitrary: fc.array(fc.constantFrom(...USERS), { minLength: 1, maxLength: 4 }) },
);
const trackArb = fc
  .tuple(fc.constantFrom(...MESSAGES), fc.constantFrom(...USERS), expectedArb, fc.integer({ min: 1, max: MAX_TIMEOUT_MS }))
  .map(([messageId, senderId, expected, timeoutMs]) => trackCmd({ messageId, conversationId: roomOf(messageId), senderId, expected, timeoutMs }));
const ackArb = fc
  .tuple(fc.constantFrom(...MESSAGES), fc.constantFrom(...USERS), fc.integer({ min: 0, max: 9 }))
  .map(([m, u, dice]) => ackCmd(m, dice === 0 ? otherRoom(roomOf(m)) : roomOf(m), u));
const commands = [
  trackArb,
  trackArb,
  ackArb,
  ackArb,
  ackArb,
  fc.integer({ min: 1, max: 50 }).map((ms) => advanceCmd(ms)),
  // flushAll (graceful shutdown) now and then: it ends every pending message at once.
  fc.integer({ min: 0, max: 5 }).map((dice) => (dice === 0 ? flushCmd() : advanceCmd(dice * 7))),
];

// ---------------------------------------------------------------- the invariants

function expectConsistent(model: Model, { tracker }: Real): void {
  const pending = [...model.messages].filter(([, m]) => isPending(m));
  expect(tracker.pendingCount).toBe(pending.length);
  expect(new Set(tracker.pending().map((p) => p.messageId))).toEqual(new Set(pending.map(([id]) => id)));
  for (const messageId of MESSAGES) {
    const m = model.messages.get(messageId);
    const status = tracker.status(messageId);
    if (!m) {
      expect(status).toBeUndefined();
    } else if (m.report) {
      expect(status).toEqual({ senderId: m.senderId, report: m.report });
    } else {
      expect(status?.senderId).toBe(m.senderId);
      expect(status?.report).toMatchObject({
        status: 'pending',
        expected: m.expected,
        acked: m.expected.filter((u) => m.acked.has(u)),
        missing: m.expected.filter((u) => !m.acked.has(u)),
        completedAt: null,
        expiresAt: new Date(m.deadline),
      });
    }
  }
}

describe('AckTracker (model-based)', () => {
  let model: Model;
  let real: Real;

  beforeEach(() => {
    vi.useFakeTimers();
  });

  afterEach(() => {
    vi.useRealTimers();
  });

  function setup(): { model: Model; real: Real } {
    const reports: Real['reports'] = [];
    real = {
      reports,
      checkedReports: 0,
      tracker: new AckTracker({
        retryMs: RETRY_MS,
        // Longer than any run: every finished report stays, so every later ack is `late`.
        reportRetentionMs: 1_000_000,
        onReport: (report, senderId) => reports.push({ report, senderId }),
        onRetry: (request) => onRetry(request),
        now: () => Date.now(),
      }),
    };
    model = { messages: new Map() };
    return { model, real };
  }

  /** A re-send: only for a pending message, on the retry grid before its deadline, naming exactly who has not acked. */
  function onRetry(request: RetryRequest): void {
    const m = model.messages.get(request.messageId);
    expect(isPending(m), `a re-send of ${request.messageId}, which is not pending`).toBe(true);
    const now = Date.now();
    m!.retries += 1;
    expect(request).toEqual({ messageId: request.messageId, conversationId: m!.conversationId, missing: m!.expected.filter((u) => !m!.acked.has(u)), attempt: m!.retries + 1 });
    expect(now).toBe(m!.createdAt + m!.retries * RETRY_MS);
    expect(now).toBeLessThan(m!.deadline);
  }

  it('every tracked message ends in exactly one report with the model’s partition, re-sends name only who has not acked', () => {
    let runs = 0;
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 60, size: 'medium' }), (cmds) => {
        runs += 1;
        vi.setSystemTime(1_000_000 * runs);
        try {
          fc.modelRun(setup, cmds);
          // Past every deadline: nothing pending, one report per tracked message, no timer but the sweep.
          vi.advanceTimersByTime(MAX_TIMEOUT_MS + 1);
          settleReports(model, real, null);
          expectConsistent(model, real);
          expect(real.tracker.pendingCount).toBe(0);
          const perMessage = new Map<string, number>();
          for (const { report } of real.reports) perMessage.set(report.messageId, (perMessage.get(report.messageId) ?? 0) + 1);
          expect(perMessage).toEqual(new Map([...model.messages.keys()].map((id) => [id, 1])));
          expect(vi.getTimerCount()).toBe(1);
        } finally {
          real.tracker.close();
        }
      }),
      { numRuns: 300 },
    );
  });
});
