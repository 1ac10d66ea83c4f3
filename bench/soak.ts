/**
 * `npm run soak -- --minutes N`: a long run of mixed traffic against one server process, printing
 * every interval (a minute by default) the server's memory and event-loop delay, CPU (the
 * server's, the soak's, everyone else's) and the delivery figures, then a summary; exits 1 when
 * anything was lost, duplicated or reordered without a resync, or the heap grew beyond its bound.
 * See bench/README.md ("Soak") for what runs and how each figure is measured.
 *
 *   npm run soak -- --minutes 10
 *   npm run soak -- --quick                       # 10 s, small population: a smoke run
 *   npm run soak -- --minutes 30 --scale 2 --env ACK_RETRY_MS=500 --markdown soak.md
 */
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { createAdminClient } from '../clients/admin/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { envSchema } from '../src/config.ts';
import { environment } from './report.ts';
import { CpuSampler } from './soak/cpu-sampler.ts';
import { deliveryTable, fmt, intervalLines, LAG_RESOLUTION_MS, memoryVerdict, serverTable, totalsTable, type IntervalRecord, type ServerSample } from './soak/report.ts';
import { startSoakServer, type SoakServer } from './soak/server-process.ts';
import { Tally } from './soak/tally.ts';
import { buildTopology, FULL_TOPOLOGY, QUICK_TOPOLOGY } from './soak/topology.ts';
import type { ChurnRates } from './soak/churn.ts';
import { SoakTraffic } from './soak/traffic.ts';

const HELP = `usage: npm run soak -- [options]

  --minutes N        how long the traffic runs (default 10; 1/6 with --quick)
  --quick            smoke size: 40 users in 9 rooms, 10 s, 5-s intervals, churn sped up
  --interval S       seconds per reported interval (default 60; 5 for runs under 2 minutes)
  --scale F          multiply every message rate by F (default 1)
  --seed N           population seed (default 1)
  --env KEY=VALUE    server environment on top of the defaults (repeatable), e.g. ACK_RETRY_MS=500
  --restart-guard-ms N
                     restart only clients that received no ack-required message in the last N ms
                     (default 0); avoids the known duplicate on restart (BENCHMARKS.md, "Soak")
  --no-gc            no inspector, no forced GC (then no "heap after GC" and no memory bound)
  --json FILE        every interval's raw figures
  --markdown FILE    the report as markdown (what is printed at the end, with a header)
`;

const FULL_CHURN: ChurnRates = { leaves: 40, drops: 20, restarts: 10, slowReaders: 6, slowPauseMs: 15_000, restartGuardMs: 0 };
const QUICK_CHURN: ChurnRates = { leaves: 60, drops: 30, restarts: 20, slowReaders: 20, slowPauseMs: 3000, restartGuardMs: 0 };
const ACK_SHARE = 0.15;
const SECRET = 'soak-fixed-secret-0123456789abcdefghijklmnop';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const log = (line = '') => process.stdout.write(`${line}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string' },
      quick: { type: 'boolean', default: false },
      interval: { type: 'string' },
      scale: { type: 'string' },
      seed: { type: 'string' },
      env: { type: 'string', multiple: true },
      'restart-guard-ms': { type: 'string' },
      'no-gc': { type: 'boolean', default: false },
      json: { type: 'string' },
      markdown: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    log(HELP);
    return 0;
  }
  const quick = values.quick ?? false;
  const minutes = Number(values.minutes ?? (quick ? 1 / 6 : 10));
  if (!(minutes > 0)) throw new Error('--minutes must be a positive number');
  const durationMs = minutes * 60_000;
  const intervalMs = Number(values.interval ?? (durationMs < 120_000 ? 5 : 60)) * 1000;
  if (!(intervalMs >= 1000)) throw new Error('--interval must be at least 1 (second)');
  const scale = Number(values.scale ?? 1);
  const seed = Number(values.seed ?? 1);
  const serverEnv = Object.fromEntries(
    (values.env ?? []).map((kv) => {
      const eq = kv.indexOf('=');
      if (eq <= 0) throw new Error(`--env expects KEY=VALUE, got "${kv}"`);
      return [kv.slice(0, eq), kv.slice(eq + 1)];
    }),
  );
  const config = envSchema.parse({ NODE_ENV: 'production', AUTH_SECRET: SECRET, ...serverEnv });
  const shape = quick ? QUICK_TOPOLOGY : FULL_TOPOLOGY;
  const topology = buildTopology({ ...shape, bigRate: shape.bigRate * scale, smallRate: shape.smallRate * scale, seed });
  const restartGuardMs = Number(values['restart-guard-ms'] ?? 0);
  if (!(restartGuardMs >= 0)) throw new Error('--restart-guard-ms must be a number >= 0');
  const churn = { ...(quick ? QUICK_CHURN : FULL_CHURN), restartGuardMs };
  const intervals = Math.ceil(durationMs / intervalMs);

  const env = environment();
  const sizes = topology.rooms.map((r) => r.members.length);
  log(`soak: ${env.cpuModel}, ${env.cores} cores, ${env.memoryGiB} GiB, ${env.os}, Node ${env.node}, commit ${env.commit}, ${env.date}`);
  log(
    `workload: ${topology.users.length} users (one stock chat client and socket each) in ${topology.rooms.length} rooms ` +
      `(${sizes.length - 1} of ${Math.min(...sizes.slice(0, -1))}–${Math.max(...sizes.slice(0, -1))} members, one of ${sizes.at(-1)}), ${sizes.reduce((a, b) => a + b, 0)} subscriptions; ` +
      `${fmt(topology.rooms.reduce((a, r) => a + r.rate, 0), 0)} msgs/s offered (${fmt(topology.rooms.at(-1)!.rate, 0)} into the big room), ${ACK_SHARE * 100} % with ack, 30 % after typing; ` +
      `churn per minute: ${churn.leaves} leave+rejoin, ${churn.drops} socket drops, ${churn.restarts} restarts with lastEventId${restartGuardMs > 0 ? ` (only of clients without an ack-required message in the last ${restartGuardMs} ms)` : ''}, ${churn.slowReaders} slow readers (pauses up to ${churn.slowPauseMs / 1000} s)`,
  );
  log(
    `server: node --import tsx src/main.ts, NODE_ENV=production, fixed AUTH_SECRET, ACK_TIMEOUT_MS=${config.ACK_TIMEOUT_MS} ACK_RETRY_MS=${config.ACK_RETRY_MS} HISTORY_SIZE=${config.HISTORY_SIZE} ` +
      `HISTORY_TTL_MS=${config.HISTORY_TTL_MS} PRESENCE_GRACE_MS=${config.PRESENCE_GRACE_MS} MAX_BUFFERED_BYTES=${config.MAX_BUFFERED_BYTES}${Object.keys(serverEnv).length ? ` (set: ${Object.keys(serverEnv).join(', ')})` : ' (defaults)'}; ` +
      `${values['no-gc'] ? 'no inspector' : 'inspector on 127.0.0.1 for a forced full GC before each "after GC" heap figure'}; ${intervals} intervals of ${intervalMs / 1000} s`,
  );

  const server = await startSoakServer({ secret: SECRET, env: serverEnv, inspect: !values['no-gc'] }).catch(async (error: unknown) => {
    if (values['no-gc']) throw error;
    // Without a usable inspector the soak still runs; it only loses the heap-after-GC figures.
    log(`note: the server did not start with the inspector (${error instanceof Error ? error.message.split('\n')[0] : String(error)}); running without forced GC`);
    return startSoakServer({ secret: SECRET, env: serverEnv, inspect: false });
  });
  let traffic: SoakTraffic | null = null;
  try {
    traffic = new SoakTraffic({ wsUrl: server.wsUrl, secret: SECRET, topology, churn, ackShare: ACK_SHARE, ackTimeoutMs: config.ACK_TIMEOUT_MS, seed });
    const t0 = performance.now();
    await traffic.connect();
    log(`connected ${traffic.userCount} clients, ${traffic.subscriptionCount} subscriptions started in ${fmt((performance.now() - t0) / 1000)} s (server pid ${server.pid}, ${server.baseUrl})`);
    return await run({ server, traffic, intervals, intervalMs, durationMs, config, values, env, rooms: topology.rooms.length });
  } finally {
    await traffic?.close().catch(() => undefined);
    await server.stop();
  }
}

interface RunContext {
  server: SoakServer;
  traffic: SoakTraffic;
  intervals: number;
  intervalMs: number;
  durationMs: number;
  config: ReturnType<typeof envSchema.parse>;
  values: { json?: string | undefined; markdown?: string | undefined };
  env: ReturnType<typeof environment>;
  rooms: number;
}

async function run(ctx: RunContext): Promise<number> {
  const { server, traffic } = ctx;
  const soakLag = monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS });
  soakLag.enable();
  const metrics = new ServerMetrics(server);
  await metrics.begin();
  const cpu = new CpuSampler(server.pid);
  const records: IntervalRecord[] = [];
  const startedAt = performance.now();
  traffic.start();
  const collect = async (label: string): Promise<IntervalRecord> => {
    const tally = traffic.takeTally();
    const cpuSample = cpu.sample();
    const server = await metrics.sample(traffic);
    const record: IntervalRecord = {
      label,
      endS: (performance.now() - startedAt) / 1000,
      durationS: records.length === 0 ? (performance.now() - startedAt) / 1000 : (performance.now() - startedAt) / 1000 - records.at(-1)!.endS,
      server,
      cpu: cpuSample,
      soakLagP99Ms: Math.max(0, soakLag.percentile(99) / 1e6 - LAG_RESOLUTION_MS),
      soakLagMaxMs: Math.max(0, soakLag.max / 1e6 - LAG_RESOLUTION_MS),
      tally,
    };
    soakLag.reset();
    records.push(record);
    return record;
  };

  for (let i = 1; i <= ctx.intervals; i += 1) {
    const until = startedAt + Math.min(i * ctx.intervalMs, ctx.durationMs);
    while (performance.now() < until) {
      if (server.exit) throw new Error(`the server exited (${server.exit.signal ?? server.exit.code})\n${server.output()}`);
      await sleep(Math.min(250, until - performance.now()));
    }
    for (const line of intervalLines(await collect(String(i)), ctx.intervals)) log(line);
  }

  log('draining: sends and churn stopped, paused readers resumed, waiting for every receiver to catch up and every report …');
  const drained = await traffic.drain();
  const drainRecord = await collect('drain');
  for (const line of intervalLines(drainRecord, ctx.intervals)) log(line);
  const admin = createAdminClient({ url: server.baseUrl, token: await mintToken(SECRET, { userId: 'soak-admin', role: 'admin', conversations: ['*'], expiresIn: '24h' }) });
  const stats = await admin.stats().catch(() => null);
  if (server.exit) throw new Error(`the server exited (${server.exit.signal ?? server.exit.code})\n${server.output()}`);

  const total = new Tally();
  for (const r of records) total.add(r.tally);
  const durationS = ctx.durationMs / 1000;
  const memory = memoryVerdict({ records: records.filter((r) => r.label !== 'drain'), rooms: ctx.rooms, historySize: ctx.config.HISTORY_SIZE, historyTtlMs: ctx.config.HISTORY_TTL_MS, sendRate: total.sent / durationS });
  const streamOk = total.lost === 0 && total.duplicates === 0 && total.outOfOrder === 0 && total.subscriptionErrors === 0;

  const out: string[] = [];
  out.push('', '### Server, per interval', '', ...serverTable(records));
  out.push('', '### Deliveries, per interval', '', ...deliveryTable(records));
  out.push('', '### Totals', '', ...totalsTable(total, durationS));
  out.push('', '### Checks', '');
  out.push(`- streams: ${streamOk ? 'ok' : 'FAILED'} — ${total.lost} lost, ${total.duplicates} duplicated, ${total.outOfOrder} out of order (${total.resyncs} resyncs excuse what they cover), ${total.subscriptionErrors} subscription errors; at the end ${drained.outstanding} required deliveries were still outstanding after the drain`);
  for (const line of memory.lines) out.push(`- ${line}`);
  out.push(`- delivery reports: ${total.reportsUnexplained} partial/failed reports with a missing user no disruption explains; ${total.reportsUnknown + drained.pendingReports} acked sends without a report${total.reportsUnexplained + total.reportsUnknown + drained.pendingReports > 0 ? ' (warning, not a failure)' : ''}`);
  if (total.sendFailed > 0) out.push(`- failed sends (warning): ${[...traffic.sendErrors].map(([m, n]) => `${n}× ${m}`).join('; ')}`);
  if (stats) {
    out.push(
      `- server's own count (admin stats): ${stats.messagesBroadcast} messages broadcast, ${stats.deliveries} deliveries (all event types), reports ${stats.acksDelivered} delivered / ${stats.acksPartial} partial / ${stats.acksFailed} failed, ${stats.slowConsumerCloses} slow-consumer closes, ${stats.pendingAcks} pending`,
    );
  }
  if (server.warnings.size > 0) out.push(`- server warnings: ${[...server.warnings].map(([m, n]) => `${n}× ${m}`).join('; ')}`);
  for (const f of traffic.findings) {
    const what = f.kind === 'slow-live-delivery' ? 'note (diagnostic, not a failure): live delivery of 1 s or more' : `finding: ${f.kind}`;
    out.push(`- ${what} at ${f.atS} s, room ${f.room}, user ${f.user}${f.seq >= 0 ? `, message #${f.seq}` : ''}${f.detail ? `: ${f.detail}` : ''}`);
  }
  const ok = streamOk && memory.ok;
  out.push('', `soak ${ok ? 'PASSED' : 'FAILED'}`);
  for (const line of out) log(line);

  if (ctx.values.markdown) {
    const header = `Soak: ${ctx.env.cpuModel}, ${ctx.env.cores} cores, Node ${ctx.env.node}, commit ${ctx.env.commit}, ${ctx.env.date}, ${fmt(ctx.durationMs / 60_000, 2)} minutes`;
    writeFileSync(ctx.values.markdown, `${header}\n${out.join('\n')}\n`);
  }
  if (ctx.values.json) writeFileSync(ctx.values.json, `${JSON.stringify({ env: ctx.env, records, total, drained, stats, findings: traffic.findings }, null, 2)}\n`);
  return ok ? 0 : 1;
}

/**
 * Reads /metrics at the end of each interval: event-loop delay (prom-client resets its histogram
 * on every scrape, and nobody else scrapes this server, so one scrape per interval gives that
 * interval's p50/p99/max) and memory as it is; then forces a full GC through the inspector and
 * reads memory again. The second scrape also resets the delay histogram, so the forced GC's pause
 * is not counted as the service's delay; its length is reported beside.
 */
class ServerMetrics {
  /** GC seconds (all kinds, and minor only) at the previous interval's second scrape. */
  private gcSum = { all: 0, minor: 0 };

  constructor(private readonly server: SoakServer) {}

  async begin(): Promise<void> {
    this.gcSum = gcSeconds(await this.server.scrape());
  }

  async sample(traffic: SoakTraffic): Promise<ServerSample> {
    const m = await this.server.scrape();
    const mb = (key: string) => (m.get(key) ?? Number.NaN) / 2 ** 20;
    const lag = (key: string) => Math.max(0, (m.get(key) ?? Number.NaN) * 1000 - LAG_RESOLUTION_MS);
    const gcNow = gcSeconds(m);
    const gcTimeMs = (gcNow.all - this.gcSum.all) * 1000;
    const gcMinorMs = (gcNow.minor - this.gcSum.minor) * 1000;
    const endGc = traffic.gcStarted();
    const gcMs = await this.server.collectGarbage().catch(() => null);
    endGc();
    const after = await this.server.scrape();
    this.gcSum = gcSeconds(after);
    return {
      rssMb: mb('process_resident_memory_bytes'),
      heapUsedMb: mb('nodejs_heap_size_used_bytes'),
      heapTotalMb: mb('nodejs_heap_size_total_bytes'),
      heapAfterGcMb: gcMs === null ? null : (after.get('nodejs_heap_size_used_bytes') ?? Number.NaN) / 2 ** 20,
      rssAfterGcMb: gcMs === null ? null : (after.get('process_resident_memory_bytes') ?? Number.NaN) / 2 ** 20,
      gcMs,
      lagP50Ms: lag('nodejs_eventloop_lag_p50_seconds'),
      lagP99Ms: lag('nodejs_eventloop_lag_p99_seconds'),
      lagMaxMs: lag('nodejs_eventloop_lag_max_seconds'),
      gcTimeMs,
      gcMinorMs,
      connections: m.get('realtime_connections') ?? Number.NaN,
      rooms: m.get('realtime_rooms_active') ?? Number.NaN,
      pendingAcks: m.get('realtime_acks_pending') ?? Number.NaN,
    };
  }
}

/** Seconds of GC pauses so far (prom-client's nodejs_gc_duration_seconds), in all and in scavenges. */
function gcSeconds(m: Map<string, number>): { all: number; minor: number } {
  let all = 0;
  for (const [key, value] of m) if (key.startsWith('nodejs_gc_duration_seconds_sum')) all += value;
  return { all, minor: m.get('nodejs_gc_duration_seconds_sum{kind="minor"}') ?? 0 };
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(2);
  },
);
