/**
 * The benchmark orchestrator: for each target, workload and run it starts a fresh server process
 * (pinned to CPU 0) and fresh load-generator processes (pinned to the other CPUs), connects the
 * workload's clients, runs warm-up and measured phases, and collects server CPU per delivery,
 * latency, memory and the zero-loss/order verdict. Workload G runs every cluster setup (one node;
 * nodes over Redis) in each run, and also records what Redis did per published message.
 * `runBench` is what `npm run bench` and the smoke test call.
 */
import os from 'node:os';
import { Histogram, type SparseHistogram } from './lib/histogram.ts';
import type { IpcChild } from './lib/ipc.ts';
import { cpuBusyUs, cpuPlan, openFilesLimit } from './lib/proc.ts';
import { RedisWatch, type RedisDelta } from './lib/redis-stats.ts';
import { startBenchRedisCluster } from './lib/redis-cluster.ts';
import type { TestRedisCluster } from '../test/support/redis-cluster.ts';
import type { Counters, CpuSample, LoadgenInit, MemorySample, PhaseStats, RunArgs, RunResult, SendMode, Target, VerifyResult } from './lib/types.ts';
import { checkStockIdentity, type IdentityResult } from './identity.ts';
import { closeSession, openClusterSession, openSession, resetSession, type Session } from './sessions.ts';
import { runPresenceStorm } from './presence-storm.ts';
import { FULL, notRunReason, planFor, QUICK, transportLabel, type ClusterSetup, type Plan, type PresenceVariant, type Sizes, type TransportVariant, type Workload } from './workloads.ts';

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
  /** Redis for workload G (default: env REDIS_URL, else redis://127.0.0.1:6379). */
  redisUrl?: string;
  /** Workload G on a three-master Redis Cluster the bench starts itself (instead of `redisUrl`). */
  redisCluster?: boolean;
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
  /** Workloads left out for a target, and why (G: not the realtime target, or Redis unreachable). */
  skipped: Array<{ target: Target; workload: Workload; reason: string }>;
  notes: string[];
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
  const skipped: BenchResult['skipped'] = [];
  let redisUrl = options.redisUrl ?? (process.env.REDIS_URL || 'redis://127.0.0.1:6379');
  // Connected when G first needs it; null when Redis is unreachable (G is then skipped).
  let redis: RedisWatch | null | undefined;
  let redisProblem = '';
  let redisCluster: TestRedisCluster | null = null;
  const redisFor = async (): Promise<RedisWatch | null> => {
    if (redis !== undefined) return redis;
    if (options.redisCluster) {
      const started = await startBenchRedisCluster(say);
      if ('unavailable' in started) {
        redis = null;
        redisProblem = started.unavailable;
        return redis;
      }
      redisCluster = started;
      redisUrl = started.url;
    }
    const urls = redisCluster ? redisCluster.ports.map((p) => `redis://127.0.0.1:${p}`) : redisUrl;
    const watch = await RedisWatch.connect(urls, { cluster: redisCluster !== null });
    if (watch instanceof RedisWatch) {
      redis = watch;
      if (!watch.local) notes.push(`G: Redis at ${redactUrl(redisUrl)} does not run on this machine: its CPU is not on the bench's cores and is not subtracted from "other processes".`);
    } else {
      redis = null;
      redisProblem = `Redis at ${redactUrl(redisUrl)} is not reachable (${watch.unreachable}); set REDIS_URL to a Redis 7 server to run it`;
    }
    return redis;
  };
  try {
    for (const target of options.targets) {
      const runnable = options.workloads.filter((w) => notRunReason(w, target) === null);
      for (const workload of options.workloads.filter((w) => !runnable.includes(w))) {
        const reason = notRunReason(workload, target)!;
        skipped.push({ target, workload, reason });
        say(`${target} · ${workload} · skipped: ${reason}`);
      }
      if (runnable.length === 0) continue;
      // Quick mode: one server and one set of load generators per target, reused by every workload.
      const maxProcs = Math.max(...runnable.map((w) => planFor(w, sizes, nofile).procs.length));
      const shared = options.quick ? await openSession(target, maxProcs) : null;
      // Quick mode: G's nodes start (seconds each) while the identity check and A–F run.
      const prespawned = new Map<string, Promise<Session>>();
      if (shared && runnable.includes('G') && (await redisFor())) {
        for (const setup of sizes.G.setups.filter((x) => x.redis)) {
          const opening = openClusterSession({ setup, redisUrl, redisCluster: redisCluster !== null, loadgenCount: 0, lend: shared, cpus: null });
          opening.catch(() => undefined); // reported when G takes it
          prespawned.set(setup.label, opening);
        }
      }
      try {
        if (target === 'realtime' && options.identity) {
          say(`realtime · identity check: stock @trpc/client clients vs raw-frame clients`);
          identity = await runIdentity(options.quick, shared);
          say(`realtime · identity check: ${identity.ok ? 'identical' : 'DIFFERENT'} (${identity.events} events × ${identity.clients} clients)${identity.ok ? '' : `: ${identity.mismatches.join('; ')}`}`);
        }
        for (const workload of runnable) {
          const plan = planFor(workload, sizes, nofile);
          if (workload === 'F' && plan.connections < sizes.F.total) {
            const note = `F: ${plan.connections.toLocaleString('en-US')} connections instead of ${sizes.F.total.toLocaleString('en-US')}: the hard open-files limit is ${nofile} per process and one server process holds every socket.`;
            if (!notes.includes(note)) notes.push(note);
          }
          const watch = workload === 'G' ? await redisFor() : null;
          if (workload === 'G' && !watch) {
            skipped.push({ target, workload, reason: redisProblem });
            say(`${target} · ${workload} · skipped: ${redisProblem}`);
            continue;
          }
          // G measures every setup in each run (interleaved, so drift hits them alike); the others one.
          // H measures every presence variant in each run, each on a server of its own; S every
          // subscriber transport (quick: on the shared server).
          const setups: Array<ClusterSetup | PresenceVariant | TransportVariant | null> =
            workload === 'G' ? [...sizes.G.setups] : workload === 'H' ? [...sizes.H.variants] : workload === 'S' ? [...sizes.S.variants] : [null];
          for (let run = 1; run <= options.runs; run += 1) {
            for (const setup of setups) {
              for (let attempt = 0; ; attempt += 1) {
                const variant = setup === null ? '' : 'http' in setup ? transportLabel(target, setup) : setup.label;
                const label = `${target} · ${workload}${setup ? ` · ${variant}` : ''} · run ${run}/${options.runs}${attempt ? ` (repeat ${attempt})` : ''}`;
                let session: Session | null = null;
                let repeat = false;
                try {
                  const early = setup && 'label' in setup ? prespawned.get(setup.label) : undefined;
                  if (setup && 'label' in setup) prespawned.delete(setup.label);
                  session =
                    setup && 'http' in setup
                      ? (shared ?? (await openSession(target, plan.procs.length)))
                      : setup && 'batchMs' in setup
                      ? await openSession(target, plan.procs.length, options.quick ? null : pins.server, setup.batchMs === null ? {} : { BENCH_PRESENCE_BATCH_MS: String(setup.batchMs) })
                      : setup
                        ? await (early ?? openClusterSession({ setup, redisUrl, redisCluster: redisCluster !== null, loadgenCount: plan.procs.length, lend: shared, cpus: options.quick ? null : pins.server }))
                        : (shared ?? (await openSession(target, plan.procs.length)));
                  const receiversOverHttp = setup !== null && 'http' in setup && setup.http;
                  const outcome = await runOnce({ target, workload, plan, sizes, say: (m) => say(`${label} · ${m}`), redis: session.cluster ? watch : null, receiversOverHttp }, session);
                  // A busy neighbour on our cores spoils latency and throughput, and someone else's Redis
                  // traffic the per-message Redis figures: measure again (a few times at most).
                  const other = Math.max(...outcome.map((v) => v.metrics.otherCpuPct ?? 0));
                  const redisClients = Math.max(...outcome.map((v) => Math.max(v.metrics.floodRedisForeignClients ?? 0, v.metrics.rateRedisForeignClients ?? 0)));
                  const disturbed =
                    other > maxOtherCpuPct
                      ? `other processes took ${other.toFixed(0)} % of a core on the bench's CPUs`
                      : redisClients > 0 && !options.quick
                        ? `${redisClients} other Redis client(s) issued commands during a measured phase`
                        : null;
                  if (disturbed && attempt < maxRepeats) {
                    repeat = true;
                    repeats += 1;
                    say(`${label} · ${disturbed}: repeating this run`);
                  } else {
                    for (const v of outcome) caseFor(target, workload, setup ? variant : v.variant, describePlan(plan)).runs.push({ metrics: v.metrics, checks: v.checks });
                    say(`${label} · done: ${summarizeChecks(outcome[0]!.checks)}`);
                  }
                } catch (error) {
                  const message = error instanceof Error ? error.message : String(error);
                  say(`${label} · FAILED: ${message}`);
                  caseFor(target, workload, variant, describePlan(plan)).errors.push(`run ${run}: ${message}`);
                } finally {
                  if (session === null || session === shared) {
                    if (shared) await resetSession(shared);
                  } else await closeSession(session);
                  if (session?.cluster && watch) {
                    const { prefix } = session.cluster;
                    await watch.removeKeys(prefix).then(
                      (removed) => say(`${label} · removed ${removed} Redis key(s) under ${prefix}`),
                      (error: unknown) => say(`${label} · could not remove the Redis keys under ${prefix}: ${error instanceof Error ? error.message : String(error)}`),
                    );
                  }
                }
                if (!repeat) break;
              }
            }
          }
        }
      } finally {
        for (const opening of prespawned.values()) await opening.then(closeSession, () => undefined);
        if (shared) await closeSession(shared);
      }
    }
  } finally {
    // Every prefix this process used starts with bench:<pid>- (also those of sessions that failed to start).
    if (redis) {
      await redis.removeKeys(`bench:${process.pid}-`).catch(() => 0);
      redis.close();
    }
    await (redisCluster as TestRedisCluster | null)?.stop();
  }
  if (redisCluster) notes.push(`G ran on a Redis Cluster of three masters the bench started (ports ${(redisCluster as TestRedisCluster).ports.join(', ')}); Redis figures are summed over the masters and given per shard below.`);
  if (repeats > 0) notes.push(`${repeats} run(s) were measured again because other processes took more than ${maxOtherCpuPct} % of a core on the bench's CPUs${options.workloads.includes('G') ? ' or (G) other Redis clients issued commands during a measured phase' : ''} (at most ${maxRepeats} repeats per run; the last attempt counts).`);
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
    skipped,
    notes,
  };
}

/** The URL without a password, for logs and reports. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString().replace(/\/$/, '');
  } catch {
    return 'REDIS_URL';
  }
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

interface RunContext {
  target: Target;
  workload: Workload;
  plan: Plan;
  sizes: Sizes;
  say: (m: string) => void;
  /** Nodes over Redis (G): what Redis did is measured around every measured phase. */
  redis?: RedisWatch | null;
  /** S: the receivers subscribe over HTTP (SSE; Socket.IO: long-polling). */
  receiversOverHttp?: boolean;
}

export interface VariantOutcome {
  variant: string;
  metrics: Record<string, number>;
  checks: Checks;
}

/** Messages per room that fill the default history (HISTORY_SIZE 256) in workload C. */
const HISTORY_FILL = 256;

/** One run: fresh server and load generators, connect, phases, verify, tear down. */
async function runOnce(ctx: RunContext, session: Session): Promise<VariantOutcome[]> {
  const { target, workload, plan, sizes, say } = ctx;
  if (workload === 'H') return runPresenceStorm({ target, plan, sizes, say }, session);
  const { server, servers } = session;
  const loadgens = session.loadgens.slice(0, plan.procs.length);
  {
    const init: LoadgenInit = { target, url: session.url, urls: session.urls, secret: session.secret, base: session.base.toString(), ackMode: plan.ackMode, receiversOverHttp: ctx.receiversOverHttp ?? false };
    await Promise.all(loadgens.map((l) => l.request('init', init)));

    // C and S: memory after GC once a few connections (of the run's transports) have come and gone.
    let baseline: MemorySample | null = null;
    if (workload === 'C' || workload === 'S') baseline = await memoryBaseline(server, loadgens[0]!);

    // ---- connect: receivers first (senders' process last), in batches.
    const setupStart = Date.now();
    const connectFailures = await connectAll(loadgens, plan, sizes.connectBatch, say);
    await quiesce({ servers, loadgens, pollMs: sizes.settlePollMs }, say);
    const setupS = (Date.now() - setupStart) / 1000;
    // S: heap and RSS per subscriber, everyone connected and settled, before any message.
    const perSubscriber = workload === 'S' ? subscriberMemory(baseline!, await server.request<MemorySample>('memory'), plan.connections) : null;
    const senderProcs = loadgens.filter((_, i) => plan.procs[i]!.some((c) => c.sender));
    const redis = ctx.redis && session.cluster ? { watch: ctx.redis, clientNamePrefix: session.cluster.clientNamePrefix } : null;
    const phases = new PhaseRunner({ servers, loadgens, senderProcs, plan, say, redis });

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
        // This service only (the others keep no history): every room's history filled to the
        // default HISTORY_SIZE with bench messages (200-byte bodies), delivered and checked like
        // any phase, then memory again — the issue-16 target "100 active rooms with full default
        // history within 10 MB" as history per room × 100.
        let history: { historyPerRoomB: number; history100RoomsMB: number } | null = null;
        if (target === 'realtime') {
          say(`filling every room's history (${HISTORY_FILL} messages per room)`);
          await phases.run({ mode: 'flood', durationMs: 300_000, window: 1, maxMessages: HISTORY_FILL - 1 }, false);
          const filled = await server.request<MemorySample>('memory');
          const perRoom = (filled.heapUsed + filled.arrayBuffers - (after.heapUsed + after.arrayBuffers)) / rooms;
          history = { historyPerRoomB: perRoom, history100RoomsMB: (perRoom * 100) / 2 ** 20 };
        }
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
            ...history,
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
      case 'G':
      case 'S': {
        // A's flood for deliveries/s, then B's fixed rate on the same connections for latency.
        const { window, rate } = workload === 'G' ? sizes.G : sizes.S;
        await phases.run({ mode: 'flood', durationMs: sizes.warmupMs, window, maxMessages: sizes.maxMessages }, false);
        const flood = await phases.run({ mode: 'flood', durationMs: sizes.measureMs, window, maxMessages: sizes.maxMessages }, true);
        await phases.run({ mode: 'rate', durationMs: sizes.warmupMs, rate, maxMessages: sizes.maxMessages }, false);
        const fixed = await phases.run({ mode: 'rate', durationMs: sizes.measureMs, rate, maxMessages: sizes.maxMessages }, true);
        outcomes.push({
          variant: '',
          metrics: {
            nodes: servers.length,
            deliveriesPerSec: flood.deliveries / flood.wallS,
            msgsPerSec: flood.sent / flood.wallS,
            cpuUsPerDelivery: flood.serverCpuUs / flood.deliveries,
            serverCpuPct: flood.serverCpuPct,
            loadgenCpuPct: flood.loadgenCpuPct,
            floodP50Ms: flood.latency.quantile(0.5) / 1000,
            floodP99Ms: flood.latency.quantile(0.99) / 1000,
            p50Ms: fixed.latency.quantile(0.5) / 1000,
            p95Ms: fixed.latency.quantile(0.95) / 1000,
            p99Ms: fixed.latency.quantile(0.99) / 1000,
            maxMs: fixed.latency.quantile(1) / 1000,
            rateCpuUsPerDelivery: fixed.serverCpuUs / fixed.deliveries,
            rateServerCpuPct: fixed.serverCpuPct,
            rateLoadgenCpuPct: fixed.loadgenCpuPct,
            achievedRate: fixed.issueRate,
            otherCpuPct: Math.max(flood.foreignCpuPct, fixed.foreignCpuPct),
            ...(flood.redis && redisMetrics('flood', flood.redis, flood)),
            ...(fixed.redis && redisMetrics('rate', fixed.redis, fixed)),
            ...perSubscriber,
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

/** S: what the subscribers added to the server's memory after GC, per connection (the sender's included). */
function subscriberMemory(before: MemorySample, after: MemorySample, connections: number): Record<string, number> {
  return { heapPerConnB: (after.heapUsed - before.heapUsed) / connections, rssPerConnB: (after.rss - before.rss) / connections, heapMB: after.heapUsed / 2 ** 20, rssMB: after.rss / 2 ** 20 };
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

/** Waits until the join traffic has settled: no new frames and idle server nodes. */
async function quiesce({ servers, loadgens, pollMs }: { servers: IpcChild[]; loadgens: IpcChild[]; pollMs: number }, say: (m: string) => void): Promise<void> {
  let last = -1;
  let stable = 0;
  const deadline = Date.now() + 300_000;
  let lastPrint = Date.now();
  while (Date.now() < deadline) {
    await Promise.all(servers.map((s) => s.request('cpuMark')));
    await sleep(pollMs);
    const cpus = await Promise.all(servers.map((s) => s.request<CpuSample>('cpu')));
    const counters = await Promise.all(loadgens.map((l) => l.request<Counters>('counters')));
    const frames = sum(counters.map((c) => c.frames));
    const busy = sum(cpus.map((cpu) => cpu.userUs + cpu.systemUs)) / cpus[0]!.wallUs;
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
  /** Nodes over Redis: what the Redis server did over [start of sending, end of drain]. */
  redis: RedisDelta | null;
}

interface PhaseRunnerParts {
  servers: IpcChild[];
  loadgens: IpcChild[];
  senderProcs: IpcChild[];
  plan: Plan;
  say: (m: string) => void;
  /** Nodes over Redis: snapshot Redis around measured phases; its clients are named with this prefix. */
  redis: { watch: RedisWatch; clientNamePrefix: string } | null;
}

/** Redis commands whose calls per message the report shows by name (the rest are in the JSON). */
export const MAIN_REDIS_COMMANDS = ['evalsha', 'spublish', 'xadd', 'hincrby', 'hset', 'hget', 'pexpire'] as const;

/**
 * What Redis did per published message in one measured phase, as metrics prefixed by the phase
 * (`flood…`, `rate…`): every command's calls per message (commands inside the Lua script
 * included), their total, Redis CPU per 1000 messages and in % of a core.
 */
function redisMetrics(phase: 'flood' | 'rate', redis: RedisDelta, m: PhaseOutcome): Record<string, number> {
  const msgs = Math.max(1, m.sent);
  const out: Record<string, number> = {
    [`${phase}RedisCallsPerMsg`]: redis.totalCalls / msgs,
    [`${phase}RedisCpuMsPer1000Msgs`]: redis.cpuUs / msgs,
    [`${phase}RedisCpuPct`]: (100 * redis.cpuUs) / 1e6 / m.wallS,
    [`${phase}RedisForeignClients`]: redis.foreignClients,
    [`${phase}Msgs`]: m.sent,
  };
  for (const [i, shard] of (redis.shards ?? []).entries()) {
    out[`${phase}RedisShard${i + 1}CallsPerMsg`] = shard.totalCalls / msgs;
    out[`${phase}RedisShard${i + 1}CpuMsPer1000Msgs`] = shard.cpuUs / msgs;
  }
  for (const name of MAIN_REDIS_COMMANDS) out[`${phase}Redis_${name}PerMsg`] = (redis.calls[name] ?? 0) / msgs;
  for (const [name, calls] of Object.entries(redis.calls)) {
    if (!(MAIN_REDIS_COMMANDS as readonly string[]).includes(name)) out[`${phase}Redis_${name}PerMsg`] = calls / msgs;
  }
  return out;
}

class PhaseRunner {
  private nextPhase = 0;
  /** Cumulative per room, per sender: the last sequence number sent. */
  readonly lastSeq: Record<string, Record<number, number>> = {};
  sendFailures = 0;
  notDelivered = 0;
  readonly problems: string[] = [];

  private readonly servers: IpcChild[];
  private readonly loadgens: IpcChild[];
  private readonly senderProcs: IpcChild[];
  private readonly plan: Plan;
  private readonly say: (m: string) => void;
  private readonly redis: PhaseRunnerParts['redis'];

  constructor(parts: PhaseRunnerParts) {
    ({ servers: this.servers, loadgens: this.loadgens, senderProcs: this.senderProcs, plan: this.plan, say: this.say, redis: this.redis } = parts);
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
    const redisBefore = measured && this.redis ? await this.redis.watch.snapshot() : null;
    await Promise.all([...this.servers.map((s) => s.request('cpuMark')), ...this.loadgens.map((l) => l.request('cpuMark'))]);
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
    const [serverCpus, loadCpu] = await Promise.all([Promise.all(this.servers.map((s) => s.request<CpuSample>('cpu'))), Promise.all(this.loadgens.map((l) => l.request<CpuSample>('cpu')))]);
    const busyAfter = cpuBusyUs();
    const self = process.cpuUsage(selfBefore);
    const redis = redisBefore && this.redis ? await this.redis.watch.since(redisBefore, { ourNames: [this.redis.clientNamePrefix], sinceS: Math.ceil(wallS) + 1 }) : null;
    // The nodes together, over the first node's window (they are marked and read together).
    const serverCpu: CpuSample = { userUs: sum(serverCpus.map((c) => c.userUs)), systemUs: sum(serverCpus.map((c) => c.systemUs)), wallUs: serverCpus[0]!.wallUs };
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
    const serverCpuUs = serverCpu.userUs + serverCpu.systemUs;
    const loadUs = sum(loadCpu.map((c) => c.userUs + c.systemUs));
    const issueRate = sum(results.map((r) => (r.issued > 1 && r.issueSpanMs > 0 ? ((r.issued - 1) * 1000) / r.issueSpanMs : 0)));
    // Busy time on all CPUs we use, minus what the server(s), the load generators, this process
    // and (G, when it runs here) the Redis server used: someone else's.
    const pins = cpuPlan();
    const ours = pins.server === null ? [...busyAfter.keys()] : [Number(pins.server), ...pins.loadgen!.split(',').map(Number)];
    const busy = sum(ours.map((c) => (busyAfter.get(c) ?? 0) - (busyBefore.get(c) ?? 0)));
    const redisLocalUs = redis && this.redis?.watch.local ? redis.cpuUs : 0;
    const foreignCpuPct = busyAfter.size ? Math.max(0, (100 * (busy - serverCpuUs - loadUs - self.user - self.system - redisLocalUs)) / serverCpu.wallUs) : Number.NaN;
    const outcome: PhaseOutcome = {
      foreignCpuPct,
      deliveries,
      expected,
      sent,
      issueRate,
      wallS,
      sendWallS,
      serverCpuUs,
      serverKernelShare: serverCpu.systemUs / Math.max(1, serverCpuUs),
      serverCpuPct: (100 * serverCpuUs) / serverCpu.wallUs,
      loadgenCpuPct: (100 * loadUs) / serverCpu.wallUs,
      latency,
      reportTime,
      acked,
      expectedAcks,
      redis,
    };
    if (measured) {
      this.say(
        `${sent.toLocaleString('en-US')} messages, ${deliveries.toLocaleString('en-US')} deliveries in ${wallS.toFixed(2)} s; server CPU ${outcome.serverCpuPct.toFixed(0)} %, ` +
          `${(serverCpuUs / Math.max(1, args.mode === 'ack' ? acked : deliveries)).toFixed(2)} µs/delivery; load-gen CPU ${outcome.loadgenCpuPct.toFixed(0)} %; other processes ${foreignCpuPct.toFixed(0)} %; p50 ${(latency.quantile(0.5) / 1000).toFixed(2)} ms, p99 ${(latency.quantile(0.99) / 1000).toFixed(2)} ms` +
          (redis ? `; Redis ${(redis.totalCalls / Math.max(1, sent)).toFixed(2)} commands/msg, CPU ${(redis.cpuUs / 1000 / Math.max(1, sent) * 1000).toFixed(1)} ms per 1000 msgs (${((100 * redis.cpuUs) / 1e6 / wallS).toFixed(0)} % of a core)${redis.foreignClients ? `, ${redis.foreignClients} other client(s) busy` : ''}` : ''),
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
