/**
 * A load-generator process: holds many benchmark connections of one target, sends at the pace the
 * orchestrator asks for, and measures what its receivers get (latency from the send stamp in the
 * body, zero loss and order per sender). Driven over IPC by bench/orchestrator.ts.
 */
import { mintToken } from '../src/auth/tokens.ts';
import type { BenchClient, ReceiverState, SendOutcome, Sink } from './clients/common.ts';
import { PresenceMember } from './clients/presence.ts';
import { SocketIoClient } from './clients/socketio.ts';
import { TrpcSseClient } from './clients/sse.ts';
import { TrpcRawClient } from './clients/trpc.ts';
import { PlainWsClient } from './clients/ws.ts';
import { makeBody, nowNs, type BodyFields } from './lib/body.ts';
import { Histogram } from './lib/histogram.ts';
import { emitEvent, serveRequests } from './lib/ipc.ts';
import type { ConnSpec, Counters, CpuSample, LoadgenInit, PhaseStats, RunArgs, RunResult, VerifyResult } from './lib/types.ts';

/** One frame in this many is parsed in full and checked against the target's envelope. */
const STRUCTURE_SAMPLE = 101;

class LoadSink implements Sink {
  ackMode = false;
  frames = 0;
  deliveries = 0;
  outOfOrder = 0;
  gaps = 0;
  unexpectedCloses = 0;
  errorFrames = 0;
  structureErrors = 0;
  structureChecked = 0;
  firstProblems: string[] = [];
  private sampleCounter = 0;
  private readonly phases = new Map<number, { deliveries: number; hist: Histogram }>();
  private lastPhaseId = -1;
  private lastPhase: { deliveries: number; hist: Histogram } | null = null;
  base = 0n;

  phase(id: number): { deliveries: number; hist: Histogram } {
    let p = this.phases.get(id);
    if (!p) {
      p = { deliveries: 0, hist: new Histogram() };
      this.phases.set(id, p);
    }
    return p;
  }

  deliver(receiver: ReceiverState, f: BodyFields): void {
    const latencyUs = (nowNs(this.base) - f.sentNs) / 1000;
    this.deliveries += 1;
    if (f.phase !== this.lastPhaseId) {
      this.lastPhaseId = f.phase;
      this.lastPhase = this.phase(f.phase);
    }
    const p = this.lastPhase!;
    p.deliveries += 1;
    p.hist.record(latencyUs);
    let track = receiver.senders.get(f.sender);
    if (!track) {
      track = { last: 0, count: 0 };
      receiver.senders.set(f.sender, track);
    }
    track.count += 1;
    if (f.seq === track.last + 1) {
      track.last = f.seq;
    } else if (f.seq <= track.last) {
      this.outOfOrder += 1;
      this.problem(`out of order: sender ${f.sender} seq ${f.seq} after ${track.last} in ${receiver.room}`);
    } else {
      this.gaps += 1;
      this.problem(`gap: sender ${f.sender} seq ${f.seq} after ${track.last} in ${receiver.room}`);
      track.last = f.seq;
    }
  }

  frame(): void {
    this.frames += 1;
  }

  errorFrame(detail: string): void {
    this.errorFrames += 1;
    this.problem(detail);
  }

  unexpectedClose(detail: string): void {
    this.unexpectedCloses += 1;
    this.problem(detail);
  }

  sampleStructure(): boolean {
    this.sampleCounter += 1;
    if (this.sampleCounter < STRUCTURE_SAMPLE) return false;
    this.sampleCounter = 0;
    return true;
  }

  structure(ok: boolean, detail?: string): void {
    this.structureChecked += 1;
    if (!ok) {
      this.structureErrors += 1;
      this.problem(`unexpected envelope: ${detail ?? ''}`);
    }
  }

  problem(text: string): void {
    if (this.firstProblems.length < 5) this.firstProblems.push(text);
  }
}

let sink = new LoadSink();
let init: LoadgenInit | null = null;
const clients: BenchClient[] = [];
const receivers: Array<{ client: BenchClient; state: () => ReceiverState | null }> = [];
const senders: Array<{ client: BenchClient; index: number; rooms: string[]; seq: Map<string, number> }> = [];
let cpuMark: { usage: NodeJS.CpuUsage; at: bigint } | null = null;
/** Workload H: members that keep a presence view, by their index in the run. */
const presenceMembers: Array<{ member: PresenceMember; index: number }> = [];

function createClient(spec: ConnSpec, token: string): BenchClient {
  const cfg = init!;
  const urls = cfg.urls ?? [cfg.url];
  // S: receivers over HTTP; a sender keeps its WebSocket (it is excluded from its own messages).
  const overHttp = cfg.receiversOverHttp === true && spec.sender === undefined && spec.room !== null;
  switch (cfg.target) {
    case 'realtime': {
      const server = { url: urls[(spec.node ?? 0) % urls.length]!, token };
      return overHttp ? new TrpcSseClient(server, spec, sink) : new TrpcRawClient(server, spec, sink);
    }
    case 'socketio':
      return new SocketIoClient(cfg.url, spec, sink, overHttp ? 'polling' : 'websocket');
    case 'ws':
      return new PlainWsClient(cfg.url, spec, sink);
  }
}

async function connect(args: { conns: ConnSpec[]; batch: number }): Promise<{ connected: number; failed: number; errors: string[] }> {
  const cfg = init!;
  const errors: string[] = [];
  let connected = 0;
  let failed = 0;
  const progress = setInterval(() => emitEvent('progress', { connected, failed }), 500);
  try {
    for (let start = 0; start < args.conns.length; start += args.batch) {
      const batch = args.conns.slice(start, start + args.batch);
      await Promise.all(
        batch.map(async (spec) => {
          const token = cfg.target === 'realtime' ? await mintToken(cfg.secret, { userId: spec.user, conversations: ['*'], expiresIn: '12h' }) : '';
          const client = createClient(spec, token);
          try {
            await client.open();
            connected += 1;
            clients.push(client);
            if (spec.room !== null) receivers.push({ client, state: () => receiverStateOf(client) });
            if (spec.sender) senders.push({ client, index: spec.sender.index, rooms: spec.sender.rooms, seq: new Map() });
          } catch (error) {
            failed += 1;
            client.close();
            if (errors.length < 5) errors.push(`${spec.user}: ${error instanceof Error ? error.message : String(error)}`);
          }
        }),
      );
    }
  } finally {
    clearInterval(progress);
  }
  return { connected, failed, errors };
}

/** H: opens every member's socket (authenticated, not yet in the room). */
async function presenceConnect(args: { conns: ConnSpec[]; batch: number; expected: number }): Promise<{ connected: number; failed: number; errors: string[] }> {
  const cfg = init!;
  const errors: string[] = [];
  let connected = 0;
  let failed = 0;
  for (let start = 0; start < args.conns.length; start += args.batch) {
    await Promise.all(
      args.conns.slice(start, start + args.batch).map(async (spec) => {
        const token = await mintToken(cfg.secret, { userId: spec.user, conversations: ['*'], expiresIn: '12h' });
        const member = new PresenceMember(cfg.url, token, spec.room!, args.expected);
        try {
          await member.open();
          connected += 1;
          presenceMembers.push({ member, index: spec.i });
        } catch (error) {
          failed += 1;
          member.close();
          if (errors.length < 5) errors.push(`${spec.user}: ${error instanceof Error ? error.message : String(error)}`);
        }
      }),
    );
  }
  return { connected, failed, errors };
}

/** H: member `index` joins at `t0 + index × spreadMs / total` (epoch ms); resolves when all have started. */
async function presenceJoin(args: { t0: number; spreadMs: number; total: number }): Promise<{ joined: number; failed: number; errors: string[] }> {
  const errors: string[] = [];
  let joined = 0;
  let failed = 0;
  await Promise.all(
    presenceMembers.map(async ({ member, index }) => {
      const due = args.t0 + (index * args.spreadMs) / args.total;
      await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
      try {
        await member.join();
        joined += 1;
      } catch (error) {
        failed += 1;
        if (errors.length < 5) errors.push(error instanceof Error ? error.message : String(error));
      }
    }),
  );
  return { joined, failed, errors };
}

function presenceStatus(): { members: number; complete: number; frames: number[]; lastJoinedAt: number; lastCompleteAt: number; errors: string[] } {
  const all = presenceMembers.map((p) => p.member);
  return {
    members: all.length,
    complete: all.filter((m) => m.viewComplete).length,
    frames: all.map((m) => m.presenceFrames),
    lastJoinedAt: Math.max(0, ...all.map((m) => m.joinedAt ?? 0)),
    lastCompleteAt: Math.max(0, ...all.map((m) => m.completeAt ?? 0)),
    errors: all.flatMap((m) => (m.error ? [m.error] : [])).slice(0, 5),
  };
}

function receiverStateOf(client: BenchClient): ReceiverState | null {
  return (client as unknown as { receiver: ReceiverState | null }).receiver;
}

async function run(args: RunArgs): Promise<RunResult> {
  const base = sink.base;
  const started = process.hrtime.bigint();
  const deadline = Date.now() + args.durationMs;
  const max = args.maxMessages ?? Number.POSITIVE_INFINITY;
  const errors: string[] = [];
  const sentInPhase: Record<string, number> = {};
  let sent = 0;
  let failed = 0;
  let acked = 0;
  let expected = 0;
  let notDelivered = 0;
  const reportTime = new Histogram();
  const ack = args.mode === 'ack';
  let issued = 0;
  let firstIssue = 0n;
  let lastIssue = 0n;

  const sendOne = async (s: (typeof senders)[number]): Promise<void> => {
    const room = s.rooms.length === 1 ? s.rooms[0]! : s.rooms[Math.floor(Math.random() * s.rooms.length)]!;
    const seq = (s.seq.get(room) ?? 0) + 1;
    s.seq.set(room, seq);
    const t = nowNs(base);
    lastIssue = process.hrtime.bigint();
    if (issued++ === 0) firstIssue = lastIssue;
    const body = makeBody({ sender: s.index, seq, sentNs: t, phase: args.phase });
    const outcome: SendOutcome = await s.client.send(room, body, ack);
    if (!outcome.ok) {
      failed += 1;
      if (errors.length < 5) errors.push(outcome.error ?? 'send failed');
      return;
    }
    sent += 1;
    sentInPhase[room] = (sentInPhase[room] ?? 0) + 1;
    if (ack) {
      reportTime.record((nowNs(base) - t) / 1000);
      acked += outcome.acked ?? 0;
      expected += outcome.expected ?? 0;
      if (outcome.status !== 'delivered') notDelivered += 1;
    }
  };

  if (args.mode === 'once') {
    await Promise.all(senders.flatMap((s) => s.rooms.map(() => sendOne(s))));
  } else if (args.mode === 'flood' || args.mode === 'ack') {
    const window = args.window ?? 1;
    await Promise.all(
      senders.map(async (s) => {
        let issued = 0;
        const lane = async () => {
          while (Date.now() < deadline && issued < max) {
            issued += 1;
            await sendOne(s);
          }
        };
        await Promise.all(Array.from({ length: window }, lane));
      }),
    );
  } else {
    // Open loop at a fixed rate (all senders together), whatever the server answers.
    const rate = args.rate ?? 1;
    const perSender = rate / Math.max(1, senders.length);
    const inflight: Array<Promise<void>> = [];
    await Promise.all(
      senders.map(
        (s) =>
          new Promise<void>((resolve) => {
            const t0 = Date.now();
            let issued = 0;
            const tick = () => {
              const now = Date.now();
              const due = Math.min(max, Math.floor(((now - t0) / 1000) * perSender) + 1);
              while (issued < due && now < deadline) {
                issued += 1;
                inflight.push(sendOne(s));
              }
              if (now >= deadline || issued >= max) return resolve();
              const next = t0 + (issued / perSender) * 1000;
              setTimeout(tick, Math.max(0, Math.ceil(next - Date.now())));
            };
            tick();
          }),
      ),
    );
    await Promise.all(inflight);
  }

  const lastSeq: Record<string, Record<number, number>> = {};
  for (const s of senders) {
    for (const [room, seq] of s.seq) (lastSeq[room] ??= {})[s.index] = seq;
  }
  return {
    lastSeq,
    sentInPhase,
    sent,
    failed,
    errors,
    wallMs: Number(process.hrtime.bigint() - started) / 1e6,
    issued,
    issueSpanMs: Number(lastIssue - firstIssue) / 1e6,
    ...(ack && { reportTime: reportTime.toSparse(), acked, expected, reportsNotDelivered: notDelivered }),
  };
}

function verify(args: { expected: Record<string, Record<number, number>> }): VerifyResult {
  let expected = 0;
  let received = 0;
  let missing = 0;
  let duplicates = 0;
  let count = 0;
  const senderIndexOf = new Map(senders.map((s) => [s.client, s.index]));
  for (const r of receivers) {
    const state = r.state();
    if (!state) continue;
    count += 1;
    const want = args.expected[state.room] ?? {};
    for (const [senderKey, lastSeq] of Object.entries(want)) {
      const sender = Number(senderKey);
      // A sender does not get its own messages.
      if (senderIndexOf.get(r.client) === sender) continue;
      const track = state.senders.get(sender);
      expected += lastSeq;
      const got = track?.count ?? 0;
      received += got;
      if (got < lastSeq) missing += lastSeq - got;
      if (got > lastSeq) duplicates += got - lastSeq;
    }
    for (const [sender, track] of state.senders) {
      if (!(String(sender) in want)) {
        duplicates += track.count;
        sink.problem(`messages from sender ${sender} that ${state.room} should not have received`);
      }
    }
  }
  return {
    receivers: count,
    expected,
    received,
    missing,
    outOfOrder: sink.outOfOrder,
    duplicates,
    gaps: sink.gaps,
    structureErrors: sink.structureErrors,
    structureChecked: sink.structureChecked,
    unexpectedCloses: sink.unexpectedCloses,
    errorFrames: sink.errorFrames,
  };
}

serveRequests(async (cmd, args) => {
  switch (cmd) {
    case 'init': {
      init = args as LoadgenInit;
      sink.ackMode = init.ackMode;
      sink.base = BigInt(init.base);
      return true;
    }
    case 'connect':
      return connect(args as { conns: ConnSpec[]; batch: number });
    case 'counters': {
      const phaseDeliveries: Record<number, number> = {};
      const wanted = (args as { phase?: number } | undefined)?.phase;
      if (wanted !== undefined) phaseDeliveries[wanted] = sink.phase(wanted).deliveries;
      return {
        connected: clients.length,
        frames: sink.frames,
        deliveries: sink.deliveries,
        phaseDeliveries,
        unexpectedCloses: sink.unexpectedCloses,
        errorFrames: sink.errorFrames,
      } satisfies Counters;
    }
    case 'run':
      return run(args as RunArgs);
    case 'presenceConnect':
      return presenceConnect(args as { conns: ConnSpec[]; batch: number; expected: number });
    case 'presenceJoin':
      return presenceJoin(args as { t0: number; spreadMs: number; total: number });
    case 'presenceStatus':
      return presenceStatus();
    case 'phaseStats': {
      const p = sink.phase((args as { phase: number }).phase);
      return { deliveries: p.deliveries, latency: p.hist.toSparse() } satisfies PhaseStats;
    }
    case 'cpuMark':
      cpuMark = { usage: process.cpuUsage(), at: process.hrtime.bigint() };
      return true;
    case 'cpu': {
      if (!cpuMark) throw new Error('cpu without cpuMark');
      const d = process.cpuUsage(cpuMark.usage);
      return { userUs: d.user, systemUs: d.system, wallUs: Number(process.hrtime.bigint() - cpuMark.at) / 1000 } satisfies CpuSample;
    }
    case 'verify':
      return verify(args as { expected: Record<string, Record<number, number>> });
    case 'problems':
      return sink.firstProblems;
    case 'closeAll':
    case 'reset': {
      for (const c of clients) c.close();
      clients.length = 0;
      for (const { member } of presenceMembers) member.close();
      presenceMembers.length = 0;
      receivers.length = 0;
      senders.length = 0;
      if (cmd === 'reset') {
        const { ackMode, base } = sink;
        sink = new LoadSink();
        sink.ackMode = ackMode;
        sink.base = base;
      }
      return true;
    }
    default:
      throw new Error(`unknown command ${cmd}`);
  }
});
emitEvent('ready');
