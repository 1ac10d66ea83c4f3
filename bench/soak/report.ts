/**
 * What the soak prints: one line pair per interval while it runs, then markdown tables (server
 * per interval, deliveries per interval, totals) and the verdicts, including the memory bound.
 */
import type { CpuSample } from './cpu-sampler.ts';
import type { Tally } from './tally.ts';

/** prom-client's monitorEventLoopDelay samples a 20 ms timer (src/metrics/metrics.ts): each sample is 20 ms plus the delay. */
export const LAG_RESOLUTION_MS = 20;

export interface ServerSample {
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  /** After the soak's forced full GC (null without the inspector). */
  heapAfterGcMb: number | null;
  rssAfterGcMb: number | null;
  gcMs: number | null;
  /** Event-loop delay over the interval, beyond the 20 ms sampling timer. */
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** GC pauses in the interval (nodejs_gc_duration_seconds, all kinds, the forced GC excluded). */
  gcTimeMs: number;
  /** Of which scavenges (young generation). */
  gcMinorMs: number;
  connections: number;
  rooms: number;
  pendingAcks: number;
}

export interface IntervalRecord {
  /** 1-based; the drain gets its own record. */
  label: string;
  endS: number;
  durationS: number;
  server: ServerSample;
  cpu: CpuSample;
  /** The soak process's own event-loop delay (p99, max beyond 20 ms): when high, the load generator adds latency. */
  soakLagP99Ms: number;
  soakLagMaxMs: number;
  tally: Tally;
}

export const fmt = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(digits));
const int = (v: number): string => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');
const ms = (us: number): string => (Number.isFinite(us) ? fmt(us / 1000, us < 10_000 ? 2 : us < 100_000 ? 1 : 0) : '–');

export function ratio(t: Tally): string {
  const expected = t.required + t.lost;
  return expected === 0 ? '–' : (t.required / expected).toFixed(6);
}

function latency(t: Tally): string {
  const h = t.live;
  return h.n === 0 ? '–' : `${ms(h.quantile(0.5))} / ${ms(h.quantile(0.99))} / ${ms(h.max)}`;
}

function recovered(t: Tally): string {
  const h = t.recovered;
  return h.n === 0 ? '0' : `${int(h.n)} (p99 ${fmt(h.quantile(0.99) / 1e6, 1)} s, max ${fmt(h.max / 1e6, 1)} s)`;
}

function reports(t: Tally): string {
  return `${int(t.reportsDelivered)} / ${int(t.reportsPartial)} / ${int(t.reportsFailed)}${t.reportsUnexplained > 0 ? ` (${t.reportsUnexplained} unexplained)` : ''}`;
}

function churn(t: Tally): string {
  return `${t.leaves}/${t.joins} · ${t.drops} · ${t.restarts} · ${t.slowPauses} · ${t.serverCloses} · ${t.reconnects}`;
}

/** Two lines per interval, as it happens. */
export function intervalLines(r: IntervalRecord, of: number): string[] {
  const s = r.server;
  const t = r.tally;
  const others = r.cpu.others.map((o) => `${o.label} ${fmt(o.pct, 0)}%`).join(', ');
  return [
    `[${r.label.padStart(String(of).length)}/${of}] ${fmt(r.endS, 0).padStart(5)} s  server RSS ${fmt(s.rssMb)} MB, heap ${fmt(s.heapUsedMb)} MB (${fmt(s.heapAfterGcMb)} after GC, ${fmt(s.gcMs, 0)} ms)  ` +
      `lag p50 ${fmt(s.lagP50Ms, 2)} p99 ${fmt(s.lagP99Ms, 2)} max ${fmt(s.lagMaxMs, 1)} ms  CPU server ${fmt(r.cpu.serverPct, 0)}% soak ${fmt(r.cpu.soakPct, 0)}% other ${fmt(r.cpu.otherPct, 0)}%${others ? ` (${others})` : ''}`,
    `${' '.repeat(of >= 10 ? 15 : 13)}sent ${int(t.sent)} (${int(t.ackedSent)} acked, ${t.sendFailed} failed)  deliveries ${int(t.deliveries)} ratio ${ratio(t)}  lost ${t.lost} dup ${t.duplicates} ooo ${t.outOfOrder} resync ${t.resyncs}  ` +
      `reports ${reports(t)}  latency ${latency(t)} ms  recovered ${recovered(t)}  churn ${churn(t)}`,
  ];
}

export function serverTable(records: IntervalRecord[]): string[] {
  const out = [
    '| interval | end (s) | RSS MB | heap used MB | heap after GC MB | forced GC ms | lag p50 / p99 / max ms | server GC pauses ms (of which minor) | server CPU % | soak CPU % | other CPU % | busiest others | connections | rooms | pending acks |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of records) {
    const s = r.server;
    const others = r.cpu.others.map((o) => `${o.label} ${fmt(o.pct, 0)}`).join('; ') || '–';
    out.push(
      `| ${r.label} | ${fmt(r.endS, 0)} | ${fmt(s.rssMb)} | ${fmt(s.heapUsedMb)} | ${fmt(s.heapAfterGcMb)} | ${fmt(s.gcMs, 0)} | ${fmt(s.lagP50Ms, 2)} / ${fmt(s.lagP99Ms, 2)} / ${fmt(s.lagMaxMs, 1)} | ${fmt(s.gcTimeMs, 0)} (${fmt(s.gcMinorMs, 0)}) | ${fmt(r.cpu.serverPct, 0)} | ${fmt(r.cpu.soakPct, 0)} | ${fmt(r.cpu.otherPct, 0)} | ${others} | ${s.connections} | ${s.rooms} | ${s.pendingAcks} |`,
    );
  }
  return out;
}

export function deliveryTable(records: IntervalRecord[]): string[] {
  const out = [
    '| interval | sent (acked) | failed sends | deliveries | delivered / expected | lost | dup | out of order | resync | reports delivered / partial / failed | latency p50 / p99 / max ms | recovered deliveries | leaves/joins · drops · restarts · slow · server closes · reconnects | typing events | soak lag p99 / max ms |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of records) {
    const t = r.tally;
    out.push(
      `| ${r.label} | ${int(t.sent)} (${int(t.ackedSent)}) | ${t.sendFailed} | ${int(t.deliveries)} | ${ratio(t)} | ${t.lost} | ${t.duplicates} | ${t.outOfOrder} | ${t.resyncs} | ${reports(t)} | ${latency(t)} | ${recovered(t)} | ${churn(t)} | ${int(t.typing)} | ${fmt(r.soakLagP99Ms, 1)} / ${fmt(r.soakLagMaxMs, 0)} |`,
    );
  }
  return out;
}

export function totalsTable(total: Tally, durationS: number): string[] {
  const rate = (n: number) => `${int(n)} (${fmt(n / durationS, 1)}/s)`;
  const t = total;
  const rows: Array<[string, string]> = [
    ['messages sent (acked)', `${rate(t.sent)} (${int(t.ackedSent)})`],
    ['failed sends (optional for receivers)', int(t.sendFailed)],
    ['deliveries received', rate(t.deliveries)],
    ['delivered / expected', `${ratio(t)} (${int(t.required)} of ${int(t.required + t.lost)} required deliveries)`],
    ['lost / duplicate / out of order', `${t.lost} / ${t.duplicates} / ${t.outOfOrder}`],
    ['resyncs', String(t.resyncs)],
    ['delivery reports delivered / partial / failed', reports(t)],
    ['…failed with nobody else in the room', int(t.reportsNoRecipients)],
    ['…read with message.deliveryStatus (no event reached the sender)', int(t.reportsByQuery)],
    ['…never obtained', int(t.reportsUnknown)],
    ['latency send → receive, live (p50 / p99 / max ms)', `${latency(t)} over ${int(t.live.n)} deliveries`],
    ['deliveries across a forced GC (p99 / max ms)', t.gcAffected.n === 0 ? '0' : `${int(t.gcAffected.n)} (${ms(t.gcAffected.quantile(0.99))} / ${ms(t.gcAffected.max)})`],
    ['recovered deliveries (replayed or backlogged after a disruption)', recovered(t)],
    ['leaves / joins', `${t.leaves} / ${t.joins}`],
    ['socket drops / restarts with lastEventId / slow-reader pauses', `${t.drops} / ${t.restarts} / ${t.slowPauses}`],
    ['closes not caused by the soak (codes)', `${t.serverCloses}${t.closeCodes.size ? ` (${[...t.closeCodes].map(([c, n]) => `${c}×${n}`).join(', ')})` : ''}`],
    ['reconnects by the stock client', String(t.reconnects)],
    ['typing events received', int(t.typing)],
    ['subscription errors', String(t.subscriptionErrors)],
  ];
  return ['| | |', '| --- | --- |', ...rows.map(([k, v]) => `| ${k} | ${v} |`)];
}

export interface MemoryBoundInput {
  records: IntervalRecord[];
  rooms: number;
  historySize: number;
  historyTtlMs: number;
  /** Successful sends per second over the run. */
  sendRate: number;
}

export interface MemoryVerdict {
  ok: boolean;
  lines: string[];
}

/** Per stored history event (BENCHMARKS.md C measured 1.2–1.7 KB with 200-byte bodies; ours average ~0.5 KB). */
const HISTORY_EVENT_BYTES = 2048;
/** Per message kept for HISTORY_TTL_MS beyond the history (idempotency key and result; report when acked). */
const TTL_RECORD_BYTES = 1024;
const SLACK_BYTES = 16 * 2 ** 20;
/** Growth allowed once every bounded structure is full. */
const STEADY_SLOPE_MB_PER_MIN = 1;

/**
 * Two bounds on the heap after a full GC (live objects only):
 *
 * 1. **last vs first interval**: it may grow by what the server legitimately accumulates after
 *    the first interval and then holds at a bounded size: room histories filling up to
 *    HISTORY_SIZE events (rooms × HISTORY_SIZE × 2 KiB), per-message records kept for
 *    HISTORY_TTL_MS (send rate × TTL × 1 KiB), and 16 MiB for code, caches and pools.
 * 2. **steady state**: once every such structure is full (after HISTORY_TTL_MS plus one interval,
 *    and in the second half of the run) the least-squares slope of the heap must stay below
 *    1 MiB per minute. A leak of ~100 bytes per message at this rate would show as ~1 MiB/min.
 */
export function memoryVerdict(input: MemoryBoundInput): MemoryVerdict {
  const points = input.records.filter((r) => r.server.heapAfterGcMb !== null).map((r) => ({ t: r.endS, mb: r.server.heapAfterGcMb! }));
  if (points.length < 2) return { ok: true, lines: ['memory: not checked (fewer than two heap figures after a forced GC; was the inspector off?)'] };
  const first = points[0]!;
  const last = points.at(-1)!;
  const durationS = last.t;
  const historyMb = (input.rooms * input.historySize * HISTORY_EVENT_BYTES) / 2 ** 20;
  const ttlMb = (input.sendRate * Math.min(input.historyTtlMs / 1000, durationS) * TTL_RECORD_BYTES) / 2 ** 20;
  const allowanceMb = historyMb + ttlMb + SLACK_BYTES / 2 ** 20;
  const growth = last.mb - first.mb;
  const lines: string[] = [];
  let ok = growth <= allowanceMb;
  lines.push(
    `memory: heap after GC ${fmt(first.mb)} MB after the first interval → ${fmt(last.mb)} MB after the last (${growth >= 0 ? '+' : ''}${fmt(growth)} MB); ` +
      `bound +${fmt(allowanceMb, 0)} MB = histories ${input.rooms} rooms × ${input.historySize} events × 2 KiB (${fmt(historyMb, 0)}) + ` +
      `${fmt(input.sendRate, 0)} msgs/s × ${fmt(Math.min(input.historyTtlMs / 1000, durationS), 0)} s kept for HISTORY_TTL_MS × 1 KiB (${fmt(ttlMb, 0)}) + 16 slack: ${ok ? 'ok' : 'EXCEEDED'}`,
  );
  const steadyFrom = Math.max(input.historyTtlMs / 1000 + (points[1]!.t - first.t), durationS / 2);
  const steady = points.filter((p) => p.t >= steadyFrom);
  if (steady.length >= 3) {
    const slope = slopePerMin(steady);
    const slopeOk = slope <= STEADY_SLOPE_MB_PER_MIN;
    ok &&= slopeOk;
    const perMessage = input.sendRate > 0 ? (slope * 2 ** 20) / (input.sendRate * 60) : Number.NaN;
    lines.push(
      `memory: steady state (${steady.length} intervals from ${fmt(steadyFrom, 0)} s) heap-after-GC slope ${slope >= 0 ? '+' : ''}${fmt(slope, 2)} MB/min (${fmt(perMessage, 0)} bytes per message sent); bound ${STEADY_SLOPE_MB_PER_MIN} MB/min: ${slopeOk ? 'ok' : 'EXCEEDED'}`,
    );
  } else {
    lines.push(`memory: steady-state slope not checked (it needs 3 intervals from ${fmt(steadyFrom, 0)} s on, once histories and the records kept for HISTORY_TTL_MS are full: with the defaults, a run of 8 minutes or more)`);
  }
  return { ok, lines };
}

function slopePerMin(points: Array<{ t: number; mb: number }>): number {
  const n = points.length;
  const mt = points.reduce((a, p) => a + p.t, 0) / n;
  const mm = points.reduce((a, p) => a + p.mb, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.mb - mm);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60;
}
