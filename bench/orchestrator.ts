/**
 * The benchmark orchestrator: for each target, workload and run it starts a fresh server process
 * (pinned to CPU 0) and fresh load-generator processes (pinned to the other CPUs), connects the
 * workload's clients, runs warm-up and measured phases, and collects server CPU per delivery,
 * latency, memory and the zero-loss/order verdict. `runBench` is what `npm run bench` and the
 * smoke test call.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Histogram, type SparseHistogram } from './lib/histogram.ts';
import type { IpcChild } from './lib/ipc.ts';
import { cpuBusyUs, cpuPlan, killAll, openFilesLimit, spawnChild } from './lib/proc.ts';
import type { Counters, CpuSample, LoadgenInit, MemorySample, PhaseStats, RunArgs, RunResult, SendMode, Target, VerifyResult } from './lib/types.ts';
import { checkStockIdentity, type IdentityResult } from './identity.ts';
import { FULL, planFor, QUICK, type Plan, type Sizes, type Workload } from './workloads.ts';

export interface BenchOptions {
  targets: Target[];
  workloads: Workload[];
  runs: number;
  quick: boolean;
  /** Run the stock-client identity check (realtime target). */
  identity: boolean;
  sizes?: Sizes;
  log?: (line: string) => void;
  /** Repeat a run when other processes took more than this % of a core on our CPUs (default 20; quick: never). */
  maxOtherCpuPct?: number;
  /** At most this many repeats per run (default 2). */
  maxRepeats?: number;
}

/** Everything that decides pass/fail for a run: nothing lost, nothing out of order. */
export interface Checks {
  expected: number;
  received: number;
  missing: number;
  outOfOrder: number;
  duplicates: number;
  structureErrors: number;
  structureChecked: number;
  unexpectedCloses: number;
  errorFrames: number;
  sendFailures: number;
  connectFailures: number;
  problems: string[];
}

export interface CaseRun {
  metrics: Record<string, number>;
  checks: Checks;
}

export interface CaseResult {
  target: Target;
  workload: Workload;
  /** e.g. "50 msgs/s" for B; "" otherwise. */
  variant: string;
  description: string;
  runs: CaseRun[];
  errors: string[];
}

export interface BenchResult {
  startedAt: string;
  finishedAt: string;
  durationS: number;
  quick: boolean;
  runs: number;
  sizes: Sizes;
  pinning: string;
  /** Cores the load generators may use: above 90 % of them, they set the pace. */
  loadgenCores: number;
  /** 1-minute load average when the bench started (includes the tail of any earlier bench run). */
  loadAverageAtStart: number;
  /** CPU other processes used in the second before the bench started, in % of one core. */
  otherCpuAtStartPct: number;
  openFilesLimit: number;
  cases: CaseResult[];
  identity: IdentityResult | null;
  notes: string[];
}

const SERVER_SCRIPTS: Record<Target, string> = {
  realtime: 'servers/realtime.ts',
  socketio: 'servers/socketio.ts',
  ws: 'servers/ws.ts',
};

function urlFor(target: Target, port: number): string {
  switch (target) {
    case 'realtime':
      return `ws://127.0.0.1:${port}/trpc`;
    case 'socketio':
      return `http://127.0.0.1:${port}`;
    case 'ws':
      return `ws://127.0.0.1:${port}`;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const sizes = options.sizes ?? (options.quick ? QUICK : FULL);
  const t0 = Date.now();
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const stamp = () => {
    const s = Math.floor((Date.now() - t0) / 1000);
    return `[${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}]`;
  };
  const say = (line: string) => log(`${stamp()} ${line}`);
  const pins = cpuPlan();
  const nofile = await openFilesLimit();
  const notes: string[] = [];
  const loadAverageAtStart = os.loadavg()[0]!;
  const otherCpuAtStartPct = options.quick ? Number.NaN : await otherCpuNow();
  if (otherCpuAtStartPct > 20) {
    const warning = `the machine was busy when the bench started (other processes used ${otherCpuAtStartPct.toFixed(0)} % of a core): latency, throughput and CPU % may be disturbed; CPU µs per delivery much less so.`;
    notes.push(warning);
    say(`warning: ${warning}`);
  }
  say(`bench: targets ${options.targets.join(', ')}; workloads ${options.workloads.join(', ')}; ${options.runs} run(s) each; ${pins.note}; open files per process ${nofile}`);
  say(`phases: ${sizes.warmupMs} ms warm-up then ${sizes.measureMs} ms measured${sizes.maxMessages ? ` (at most ${sizes.maxMessages} messages per sender)` : ''}, each followed by a drain until every receiver has everything`);

  const cases = new Map<string, CaseResult>();
  const caseFor = (target: Target, workload: Workload, variant: string, description: string): CaseResult => {
    const key = `${target}/${workload}/${variant}`;
    let c = cases.get(key);
    if (!c) {
      c = { target, workload, variant, description, runs: [], errors: [] };
      cases.set(key, c);
    }
    return c;
  };

  const maxOtherCpuPct = options.maxOtherCpuPct ?? (options.quick ? Number.POSITIVE_INFINITY : 20);
  const maxRepeats = options.maxRepeats ?? 2;
  let repeats = 0;
  let identity: IdentityResult | null = null;
  for (const target of options.targets) {
    // Quick mode: one server and one set of load generators per target, reused by every workload.
    const maxProcs = Math.max(...options.workloads.map((w) => planFor(w, sizes, nofile).procs.length));
    const shared = options.quick ? await openSession(target, maxProcs) : null;
    try {
      if (target === 'realtime' && options.identity) {
        say(`realtime · identity check: stock @trpc/client clients vs raw-frame clients`);
        identity = await runIdentity(options.quick, shared);
        say(`realtime · identity check: ${identity.ok ? 'identical' : 'DIFFERENT'} (${identity.events} events × ${identity.clients} clients)${identity.ok ? '' : `: ${identity.mismatches.join('; ')}`}`);
      }
      for (const workload of options.workloads) {
        const plan = planFor(workload, sizes, nofile);
        if (workload === 'F' && plan.connections < sizes.F.total) {
          const note = `F: ${plan.connections.toLocaleString('en-US')} connections instead of ${sizes.F.total.toLocaleString('en-US')}: the hard open-files limit is ${nofile} per process and one server process holds every socket.`;
          if (!notes.includes(note)) notes.push(note);
        }
        for (let run = 1; run <= options.runs; run += 1) {
          for (let attempt = 0; ; attempt += 1) {
            const label = `${target} · ${workload} · run ${run}/${options.runs}${attempt ? ` (repeat ${attempt})` : ''}`;
            const session = shared ?? (await openSession(target, plan.procs.length));
            let repeat = false;
            try {
              const outcome = await runOnce({ target, workload, plan, sizes, say: (m) => say(`${label} · ${m}`) }, session);
              // A busy neighbour on our cores spoils latency and throughput: measure again (a few times at most).
              const other = Math.max(...outcome.map((v) => v.metrics.otherCpuPct ?? 0));
              if (other > maxOtherCpuPct && attempt < maxRepeats) {
                repeat = true;
                repeats += 1;
                say(`${label} · other processes took ${other.toFixed(0)} % of a core on the bench's CPUs: repeating this run`);
              } else {
                for (const v of outcome) caseFor(target, workload, v.variant, describePlan(plan)).runs.push({ metrics: v.metrics, checks: v.checks });
                say(`${label} · done: ${summarizeChecks(outcome[0]!.checks)}`);
              }
            } catch (error) {
              const message = error instanceof Error ? error.message : String(error);
              say(`${label} · FAILED: ${message}`);
              caseFor(target, workload, '', describePlan(plan)).errors.push(`run ${run}: ${message}`);
            } finally {
              if (shared) await resetSession(shared);
              else await closeSession(session);
            }
            if (!repeat) break;
          }
        }
      }
    } finally {
      if (shared) await closeSession(shared);
    }
  }
  if (repeats > 0) notes.push(`${repeats} run(s) were measured again because other processes took more than ${maxOtherCpuPct} % of a core on the bench's CPUs (at most ${maxRepeats} repeats per run; the last attempt counts).`);
  const finished = Date.now();
  say(`bench finished in ${((finished - t0) / 1000).toFixed(0)} s`);
  return {
    startedAt: new Date(t0).toISOString(),
    finishedAt: new Date(finished).toISOString(),
    durationS: (finished - t0) / 1000,
    quick: options.quick,
    runs: options.runs,
    sizes,
    pinning: pins.note,
    loadgenCores: pins.loadgenCores,
    loadAverageAtStart,
    otherCpuAtStartPct,
    openFilesLimit: nofile,
    cases: [...cases.values()],
    identity,
    notes,
  };
}

/** CPU used by other processes over the next second, in % of one core (NaN without /proc/stat). */
async function otherCpuNow(): Promise<number> {
  const before = cpuBusyUs();
  const self = process.cpuUsage();
  const start = process.hrtime.bigint();
  await sleep(1000);
  const after = cpuBusyUs();
  const own = process.cpuUsage(self);
  if (after.size === 0) return Number.NaN;
  const busy = sum([...after].map(([cpu, us]) => us - (before.get(cpu) ?? 0)));
  return Math.max(0, (100 * (busy - own.user - own.system)) / (Number(process.hrtime.bigint() - start) / 1000));
}

function describePlan(plan: Plan): string {
  const senderProcs = plan.procs.filter((p) => p.length > 0 && p.every((c) => c.sender !== undefined)).length;
  const procs = plan.procs.length;
  return `${plan.description}; load from ${procs} load-generator process${procs === 1 ? '' : 'es'}${senderProcs ? ` (${senderProcs} for the sender${plan.procs[0]!.length > 1 ? 's' : ''}, ${procs - senderProcs} for receivers)` : ''}`;
}

export function summarizeChecks(c: Checks): string {
  const bad = c.missing + c.outOfOrder + c.duplicates + c.structureErrors + c.unexpectedCloses + c.errorFrames + c.sendFailures + c.connectFailures;
  if (bad === 0) return `ok: ${c.received.toLocaleString('en-US')} deliveries, none lost, all in order`;
  return `PROBLEM: missing ${c.missing}, out of order ${c.outOfOrder}, duplicates ${c.duplicates}, bad envelopes ${c.structureErrors}, closes ${c.unexpectedCloses}, error frames ${c.errorFrames}, failed sends ${c.sendFailures}, failed connects ${c.connectFailures}${c.problems.length ? ` (${c.problems.slice(0, 3).join('; ')})` : ''}`;
}

export function checksPassed(c: Checks): boolean {
  return c.missing + c.outOfOrder + c.duplicates + c.structureErrors + c.unexpectedCloses + c.errorFrames + c.sendFailures + c.connectFailures === 0;
}

async function runIdentity(quick: boolean, shared: Session | null): Promise<IdentityResult> {
  const session = shared ?? (await openSession('realtime', 0, null));
  try {
    return await checkStockIdentity({ url: session.url, secret: session.secret, raw: quick ? 3 : 10, stock: quick ? 3 : 10, messages: quick ? 20 : 100 });
  } finally {
    if (!shared) await closeSession(session);
  }
}

/** A target server and its load generators. */
interface Session {
  target: Target;
  server: IpcChild;
  loadgens: IpcChild[];
  url: string;
  secret: string;
  base: bigint;
}

async function openSession(target: Target, loadgenCount: number, serverCpus: string | null = cpuPlan().server): Promise<Session> {
  const pins = cpuPlan();
  const secret = randomBytes(32).toString('base64url');
  const base = process.hrtime.bigint();
  const server = spawnChild({ name: `server(${target})`, script: SERVER_SCRIPTS[target], cpus: serverCpus, env: { BENCH_SECRET: secret }, heapMb: 8192 });
  const loadgens = Array.from({ length: loadgenCount }, (_, i) => spawnChild({ name: `loadgen${i}`, script: 'loadgen.ts', cpus: pins.loadgen, heapMb: 6144 }));
  try {
    const [{ port }] = await Promise.all([server.waitEvent<{ port: number }>('ready'), ...loadgens.map((l) => l.waitEvent('ready'))]);
    return { target, server, loadgens, url: urlFor(target, port), secret, base };
  } catch (error) {
    await killAll([server, ...loadgens]);
    throw error;
  }
}

/** Drops every connection and forgets every counter, for the next workload on the same server. */
async function resetSession(session: Session): Promise<void> {
  if (!session.server.alive) return;
  await Promise.all(session.loadgens.map((l) => l.request('reset')));
  const deadline = Date.now() + 10_000;
  while ((await session.server.request<number>('connections')) > 0 && Date.now() < deadline) await sleep(20);
}

async function closeSession(session: Session): Promise<void> {
  await killAll([session.server, ...session.loadgens]);
}

interface RunContext {
  target: Target;
  workload: Workload;
  plan: Plan;
  sizes: Sizes;
  say: (m: string) => void;
}

interface VariantOutcome {
  variant: string;
  metrics: Record<string, number>;
  checks: Checks;
}

/** One run: fresh server and load generators, connect, phases, verify, tear down. */
async function runOnce(ctx: RunContext, session: Session): Promise<VariantOutcome[]> {
  const { target, workload, plan, sizes, say } = ctx;
  const { server } = session;
  const loadgens = session.loadgens.slice(0, plan.procs.length);
  {
    const init: LoadgenInit = { target, url: session.url, secret: session.secret, base: session.base.toString(), ackMode: plan.ackMode };
    await Promise.all(loadgens.map((l) => l.request('init', init)));

    let baseline: MemorySample | null = null;
    if (workload === 'C') baseline = await memoryBaseline(server, loadgens[0]!);

    // ---- connect: receivers first (senders' process last), in batches.
    const setupStart = Date.now();
    const connectFailures = await connectAll(loadgens, plan, sizes.connectBatch, say);
    await quiesce({ server, loadgens, pollMs: sizes.settlePollMs }, say);
    const setupS = (Date.now() - setupStart) / 1000;
    const senderProcs = loadgens.filter((_, i) => plan.procs[i]!.some((c) => c.sender));
    const phases = new PhaseRunner({ server, loadgens, senderProcs, plan, say });

    const outcomes: Array<{ variant: string; metrics: Record<string, number> }> = [];
    switch (workload) {
      case 'A':
      case 'D': {
        const window = workload === 'A' ? sizes.A.window : sizes.D.window;
        await phases.run({ mode: 'flood', durationMs: sizes.warmupMs, window, maxMessages: sizes.maxMessages }, false);
        const m = await phases.run({ mode: 'flood', durationMs: sizes.measureMs, window, maxMessages: sizes.maxMessages }, true);
        outcomes.push({
          variant: '',
          metrics: {
            deliveriesPerSec: m.deliveries / m.wallS,
            msgsPerSec: m.sent / m.wallS,
            cpuUsPerDelivery: m.serverCpuUs / m.deliveries,
            serverCpuPct: m.serverCpuPct,
            serverKernelShare: m.serverKernelShare,
            loadgenCpuPct: m.loadgenCpuPct,
            otherCpuPct: m.foreignCpuPct,
            p50Ms: m.latency.quantile(0.5) / 1000,
            p99Ms: m.latency.quantile(0.99) / 1000,
            setupS,
          },
        });
        break;
      }
      case 'B':
      case 'F': {
        const rates = workload === 'B' ? sizes.B.rates : [sizes.F.rate];
        let memory: MemorySample | null = null;
        if (workload === 'F') memory = await server.request<MemorySample>('memory');
        for (const rate of rates) {
          say(`${rate} msgs/s`);
          await phases.run({ mode: 'rate', durationMs: sizes.warmupMs, rate, maxMessages: sizes.maxMessages }, false);
          const m = await phases.run({ mode: 'rate', durationMs: sizes.measureMs, rate, maxMessages: sizes.maxMessages }, true);
          outcomes.push({
            variant: workload === 'B' ? `${rate} msgs/s` : '',
            metrics: {
              p50Ms: m.latency.quantile(0.5) / 1000,
              p95Ms: m.latency.quantile(0.95) / 1000,
              p99Ms: m.latency.quantile(0.99) / 1000,
              maxMs: m.latency.quantile(1) / 1000,
              cpuUsPerDelivery: m.serverCpuUs / m.deliveries,
              achievedRate: m.issueRate,
              deliveries: m.deliveries,
              serverCpuPct: m.serverCpuPct,
              serverKernelShare: m.serverKernelShare,
              loadgenCpuPct: m.loadgenCpuPct,
            otherCpuPct: m.foreignCpuPct,
              ...(memory && { rssMB: memory.rss / 2 ** 20, heapMB: memory.heapUsed / 2 ** 20, connections: plan.connections, setupS }),
            },
          });
        }
        break;
      }
      case 'C': {
        const after = await server.request<MemorySample>('memory');
        const b = baseline!;
        const conns = plan.connections;
        const rooms = plan.rooms;
        await phases.run({ mode: 'once', durationMs: 0 }, false);
        outcomes.push({
          variant: '',
          metrics: {
            heapPerConnB: (after.heapUsed - b.heapUsed) / conns,
            rssPerConnB: (after.rss - b.rss) / conns,
            heapPerRoomB: (after.heapUsed - b.heapUsed) / rooms,
            rssPerRoomB: (after.rss - b.rss) / rooms,
            heapMB: after.heapUsed / 2 ** 20,
            rssMB: after.rss / 2 ** 20,
            baselineRssMB: b.rss / 2 ** 20,
            baselineHeapMB: b.heapUsed / 2 ** 20,
            setupS,
          },
        });
        break;
      }
      case 'E': {
        const window = sizes.E.concurrency;
        await phases.run({ mode: 'ack', durationMs: sizes.warmupMs, window, maxMessages: sizes.maxMessages }, false);
        const m = await phases.run({ mode: 'ack', durationMs: sizes.measureMs, window, maxMessages: sizes.maxMessages }, true);
        const report = m.reportTime!;
        outcomes.push({
          variant: '',
          metrics: {
            ackedDeliveriesPerSec: m.acked / m.sendWallS,
            reportsPerSec: m.sent / m.sendWallS,
            reportP50Ms: report.quantile(0.5) / 1000,
            reportP99Ms: report.quantile(0.99) / 1000,
            reportMaxMs: report.quantile(1) / 1000,
            cpuUsPerAckedDelivery: m.serverCpuUs / Math.max(1, m.acked),
            serverCpuPct: m.serverCpuPct,
            serverKernelShare: m.serverKernelShare,
            loadgenCpuPct: m.loadgenCpuPct,
            otherCpuPct: m.foreignCpuPct,
            ackedRatio: m.acked / Math.max(1, m.expectedAcks),
            setupS,
          },
        });
        break;
      }
    }

    // ---- verify: every receiver got every message of its room from every sender, in order.
    const verified = await Promise.all(loadgens.map((l) => l.request<VerifyResult>('verify', { expected: phases.lastSeq })));
    const problems = (await Promise.all(loadgens.map((l) => l.request<string[]>('problems')))).flat();
    const checks: Checks = {
      expected: sum(verified.map((v) => v.expected)),
      received: sum(verified.map((v) => v.received)),
      missing: sum(verified.map((v) => v.missing)),
      outOfOrder: sum(verified.map((v) => v.outOfOrder)),
      duplicates: sum(verified.map((v) => v.duplicates)),
      structureErrors: sum(verified.map((v) => v.structureErrors)),
      structureChecked: sum(verified.map((v) => v.structureChecked)),
      unexpectedCloses: sum(verified.map((v) => v.unexpectedCloses)),
      errorFrames: sum(verified.map((v) => v.errorFrames)),
      sendFailures: phases.sendFailures + phases.notDelivered,
      connectFailures,
      problems: [...phases.problems, ...problems].slice(0, 8),
    };
    return outcomes.map((o) => ({ ...o, checks }));
  }
}

/** Server memory after GC with the code paths warmed by a few short-lived connections. */
async function memoryBaseline(server: IpcChild, loadgen: IpcChild): Promise<MemorySample> {
  const warm = Array.from({ length: 20 }, (_, i) => ({ i: 1_000_000 + i, user: `warm-u${i}`, room: `warm-room${i % 2}`, ...(i < 2 && { sender: { index: 1_000_000 + i, rooms: [`warm-room${i % 2}`] } }) }));
  await loadgen.request('connect', { conns: warm, batch: 20 });
  await loadgen.request('run', { phase: 99, mode: 'once', durationMs: 0 } satisfies RunArgs);
  await sleep(200);
  await loadgen.request('closeAll');
  const deadline = Date.now() + 10_000;
  while ((await server.request<number>('connections')) > 0 && Date.now() < deadline) await sleep(50);
  await sleep(200);
  return server.request<MemorySample>('memory');
}

async function connectAll(loadgens: IpcChild[], plan: Plan, batch: number, say: (m: string) => void): Promise<number> {
  const total = plan.connections;
  const progress = new Map<number, number>();
  let lastPrint = 0;
  const offs = loadgens.map((l, i) =>
    l.onEvent((e) => {
      if (e.event !== 'progress') return;
      progress.set(i, (e.data as { connected: number }).connected);
      if (Date.now() - lastPrint > 1000) {
        lastPrint = Date.now();
        say(`connecting ${sum([...progress.values()]).toLocaleString('en-US')}/${total.toLocaleString('en-US')}`);
      }
    }),
  );
  let failures = 0;
  try {
    // Receivers first, then the processes that hold only senders (they need not parse the joins).
    const senderOnly = (i: number) => plan.procs[i]!.length > 0 && plan.procs[i]!.every((c) => c.sender !== undefined);
    const indexes = loadgens.map((_, i) => i);
    const order = [indexes.filter((i) => !senderOnly(i)), indexes.filter(senderOnly)].filter((g) => g.length > 0);
    for (const group of order) {
      const results = await Promise.all(
        group.map((i) => loadgens[i]!.request<{ connected: number; failed: number; errors: string[] }>('connect', { conns: plan.procs[i], batch }, 600_000)),
      );
      for (const r of results) {
        failures += r.failed;
        if (r.failed > 0) say(`connect failures: ${r.failed} (${r.errors.join('; ')})`);
      }
    }
  } finally {
    for (const off of offs) off();
  }
  say(`connected ${(total - failures).toLocaleString('en-US')}/${total.toLocaleString('en-US')}`);
  return failures;
}

/** Waits until the join traffic has settled: no new frames and an idle server. */
async function quiesce({ server, loadgens, pollMs }: { server: IpcChild; loadgens: IpcChild[]; pollMs: number }, say: (m: string) => void): Promise<void> {
  let last = -1;
  let stable = 0;
  const deadline = Date.now() + 300_000;
  let lastPrint = Date.now();
  while (Date.now() < deadline) {
    await server.request('cpuMark');
    await sleep(pollMs);
    const cpu = await server.request<CpuSample>('cpu');
    const counters = await Promise.all(loadgens.map((l) => l.request<Counters>('counters')));
    const frames = sum(counters.map((c) => c.frames));
    const busy = (cpu.userUs + cpu.systemUs) / cpu.wallUs;
    if (frames === last && busy < 0.1) {
      stable += 1;
      if (stable >= 2) return;
    } else stable = 0;
    last = frames;
    if (Date.now() - lastPrint > 2000) {
      lastPrint = Date.now();
      say(`settling: ${frames.toLocaleString('en-US')} join/presence frames so far, server CPU ${(busy * 100).toFixed(0)} %`);
    }
  }
  throw new Error('the server did not settle within 300 s after connecting');
}

interface PhaseOutcome {
  deliveries: number;
  expected: number;
  sent: number;
  /** Messages per second actually issued by the senders (fixed-rate phases: the rate achieved). */
  issueRate: number;
  wallS: number;
  sendWallS: number;
  serverCpuUs: number;
  /** Share of the server's CPU time spent in the kernel (mostly socket writes). */
  serverKernelShare: number;
  serverCpuPct: number;
  loadgenCpuPct: number;
  /** CPU time other processes took on the server's and the load generators' cores, in % of one core. */
  foreignCpuPct: number;
  latency: Histogram;
  reportTime: Histogram | null;
  acked: number;
  expectedAcks: number;
}

class PhaseRunner {
  private nextPhase = 0;
  /** Cumulative per room, per sender: the last sequence number sent. */
  readonly lastSeq: Record<string, Record<number, number>> = {};
  sendFailures = 0;
  notDelivered = 0;
  readonly problems: string[] = [];

  private readonly server: IpcChild;
  private readonly loadgens: IpcChild[];
  private readonly senderProcs: IpcChild[];
  private readonly plan: Plan;
  private readonly say: (m: string) => void;

  constructor(parts: { server: IpcChild; loadgens: IpcChild[]; senderProcs: IpcChild[]; plan: Plan; say: (m: string) => void }) {
    ({ server: this.server, loadgens: this.loadgens, senderProcs: this.senderProcs, plan: this.plan, say: this.say } = parts);
  }

  async run(args: { mode: SendMode; durationMs: number; rate?: number; window?: number; maxMessages?: number | undefined }, measured: boolean): Promise<PhaseOutcome> {
    const phase = this.nextPhase++;
    const runArgs: RunArgs = {
      phase,
      mode: args.mode,
      durationMs: args.durationMs,
      ...(args.rate !== undefined && { rate: args.rate }),
      ...(args.window !== undefined && { window: args.window }),
      ...(args.maxMessages !== undefined && { maxMessages: args.maxMessages }),
    };
    if (measured) this.say(`measuring ${args.durationMs} ms (${args.mode}${args.rate ? ` ${args.rate} msgs/s` : ''})`);
    await Promise.all([this.server.request('cpuMark'), ...this.loadgens.map((l) => l.request('cpuMark'))]);
    const busyBefore = cpuBusyUs();
    const selfBefore = process.cpuUsage();
    const start = process.hrtime.bigint();
    const results = await Promise.all(this.senderProcs.map((l) => l.request<RunResult>('run', runArgs, args.durationMs + 600_000)));
    const sendWallS = Number(process.hrtime.bigint() - start) / 1e9;
    let expected = 0;
    let sent = 0;
    for (const r of results) {
      for (const [room, count] of Object.entries(r.sentInPhase)) expected += count * (this.plan.recipients.get(room) ?? 0);
      for (const [room, bySender] of Object.entries(r.lastSeq)) Object.assign((this.lastSeq[room] ??= {}), bySender);
      sent += r.sent;
      this.sendFailures += r.failed;
      this.notDelivered += r.reportsNotDelivered ?? 0;
      for (const e of r.errors) if (this.problems.length < 8) this.problems.push(`send: ${e}`);
    }
    const deliveries = await this.drain(phase, expected);
    const wallS = Number(process.hrtime.bigint() - start) / 1e9;
    const [serverCpu, ...loadCpu] = await Promise.all([this.server.request<CpuSample>('cpu'), ...this.loadgens.map((l) => l.request<CpuSample>('cpu'))]);
    const busyAfter = cpuBusyUs();
    const self = process.cpuUsage(selfBefore);
    const stats = await Promise.all(this.loadgens.map((l) => l.request<PhaseStats>('phaseStats', { phase })));
    const latency = new Histogram();
    for (const s of stats) latency.merge(s.latency);
    let reportTime: Histogram | null = null;
    let acked = 0;
    let expectedAcks = 0;
    for (const r of results) {
      if (!r.reportTime) continue;
      reportTime ??= new Histogram();
      reportTime.merge(r.reportTime as SparseHistogram);
      acked += r.acked ?? 0;
      expectedAcks += r.expected ?? 0;
    }
    const serverCpuUs = serverCpu!.userUs + serverCpu!.systemUs;
    const loadUs = sum(loadCpu.map((c) => c.userUs + c.systemUs));
    const issueRate = sum(results.map((r) => (r.issued > 1 && r.issueSpanMs > 0 ? ((r.issued - 1) * 1000) / r.issueSpanMs : 0)));
    // Busy time on all CPUs we use, minus what the server, the load generators and this process used: someone else's.
    const pins = cpuPlan();
    const ours = pins.server === null ? [...busyAfter.keys()] : [Number(pins.server), ...pins.loadgen!.split(',').map(Number)];
    const busy = sum(ours.map((c) => (busyAfter.get(c) ?? 0) - (busyBefore.get(c) ?? 0)));
    const foreignCpuPct = busyAfter.size ? Math.max(0, (100 * (busy - serverCpuUs - loadUs - self.user - self.system)) / serverCpu!.wallUs) : Number.NaN;
    const outcome: PhaseOutcome = {
      foreignCpuPct,
      deliveries,
      expected,
      sent,
      issueRate,
      wallS,
      sendWallS,
      serverCpuUs,
      serverKernelShare: serverCpu!.systemUs / Math.max(1, serverCpuUs),
      serverCpuPct: (100 * serverCpuUs) / serverCpu!.wallUs,
      loadgenCpuPct: (100 * loadUs) / serverCpu!.wallUs,
      latency,
      reportTime,
      acked,
      expectedAcks,
    };
    if (measured) {
      this.say(
        `${sent.toLocaleString('en-US')} messages, ${deliveries.toLocaleString('en-US')} deliveries in ${wallS.toFixed(2)} s; server CPU ${outcome.serverCpuPct.toFixed(0)} %, ` +
          `${(serverCpuUs / Math.max(1, args.mode === 'ack' ? acked : deliveries)).toFixed(2)} µs/delivery; load-gen CPU ${outcome.loadgenCpuPct.toFixed(0)} %; other processes ${foreignCpuPct.toFixed(0)} %; p50 ${(latency.quantile(0.5) / 1000).toFixed(2)} ms, p99 ${(latency.quantile(0.99) / 1000).toFixed(2)} ms`,
      );
    }
    return outcome;
  }

  /** Waits until receivers have every delivery of the phase (or progress stops for 20 s). */
  private async drain(phase: number, expected: number): Promise<number> {
    let got = 0;
    let lastProgressAt = Date.now();
    let lastPrint = Date.now();
    let prev = -1;
    for (;;) {
      const counters = await Promise.all(this.loadgens.map((l) => l.request<Counters>('counters', { phase })));
      got = sum(counters.map((c) => c.phaseDeliveries[phase] ?? 0));
      if (got >= expected) return got;
      if (got !== prev) {
        prev = got;
        lastProgressAt = Date.now();
      } else if (Date.now() - lastProgressAt > 20_000) {
        this.problems.push(`phase ${phase}: ${expected - got} deliveries never arrived`);
        return got;
      }
      if (Date.now() - lastPrint > 2000) {
        lastPrint = Date.now();
        this.say(`draining: ${got.toLocaleString('en-US')}/${expected.toLocaleString('en-US')} delivered`);
      }
      await sleep(expected - got > 10_000 ? 100 : 20);
    }
  }
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}
