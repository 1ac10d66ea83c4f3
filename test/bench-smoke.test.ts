import { describe, expect, it } from 'vitest';
import { toSvg } from '../bench/chart.ts';
import { checksPassed, runBench, summarizeChecks } from '../bench/orchestrator.ts';
import { environment, toJson, toMarkdown } from '../bench/report.ts';
import { WORKLOADS } from '../bench/workloads.ts';
import { builtDir } from './support/built.ts';

/**
 * The benchmark at smoke size (`--quick`): every workload against this service (S in both its
 * variants, subscribers over SSE and over WebSocket), with tiny rooms and a few dozen messages,
 * in separate server and load-generator processes as `npm run bench` runs them — from the run's
 * build (BENCH_BUILT_DIR) rather than through tsx, as every process a test spawns. No thresholds: it proves the bench runs, that nothing is lost or
 * reordered, and that stock @trpc/client clients see exactly the events the raw-frame
 * benchmark clients see. The full bench stays out of CI. G (two nodes over Redis) runs when
 * Redis answers at REDIS_URL (default redis://127.0.0.1:6379) and is reported as skipped when not.
 */
describe('bench smoke run', () => {
  it('runs workloads A–H and S on the realtime target without loss or reordering; stock clients see what raw clients see', async () => {
    const lines: string[] = [];
    process.env.BENCH_BUILT_DIR = builtDir();
    const result = await runBench({ targets: ['realtime'], workloads: [...WORKLOADS], runs: 1, quick: true, identity: true, log: (l) => lines.push(l) }).finally(() => delete process.env.BENCH_BUILT_DIR);

    expect(result.identity, 'identity check ran').not.toBeNull();
    expect(result.identity!.mismatches).toEqual([]);
    expect(result.identity!.ok).toBe(true);
    expect(result.identity!.events).toBeGreaterThan(20);

    const workloadsRun = new Set(result.cases.map((c) => c.workload));
    const clusterSkipped = result.skipped.some((s) => s.workload === 'G');
    expect([...workloadsRun].sort()).toEqual(WORKLOADS.filter((w) => w !== 'G' || !clusterSkipped));
    if (clusterSkipped) expect(result.skipped.find((s) => s.workload === 'G')!.reason).toMatch(/^Redis at .* is not reachable/);
    for (const c of result.cases) {
      expect(c.errors, `${c.workload} ${c.variant}: ${lines.join('\n')}`).toEqual([]);
      expect(c.runs.length).toBe(1);
      for (const run of c.runs) {
        expect(checksPassed(run.checks), `${c.workload} ${c.variant}: ${summarizeChecks(run.checks)}`).toBe(true);
        expect(run.checks.received).toBeGreaterThan(0);
        expect(run.checks.received).toBe(run.checks.expected);
      }
    }
    // B reports its three rates; every delivering workload has a CPU-per-delivery figure.
    expect(result.cases.filter((c) => c.workload === 'B').map((c) => c.variant)).toEqual(['50 msgs/s', '100 msgs/s', '200 msgs/s']);
    for (const c of result.cases.filter((c) => ['A', 'B', 'D', 'F', 'G', 'S'].includes(c.workload))) {
      expect(c.runs[0]!.metrics.cpuUsPerDelivery).toBeGreaterThan(0);
    }
    // S: subscribers over SSE, then over WebSocket, each with the flood, the fixed rate and memory per subscriber.
    const s = result.cases.filter((c) => c.workload === 'S');
    expect(s.map((c) => c.variant)).toEqual(['SSE', 'WebSocket']);
    for (const c of s) {
      const m = c.runs[0]!.metrics;
      for (const key of ['deliveriesPerSec', 'rateCpuUsPerDelivery', 'p99Ms', 'loadgenCpuPct']) expect(m[key], `S ${c.variant} ${key}`).toBeGreaterThan(0);
      expect(Number.isFinite(m.heapPerConnB)).toBe(true);
      expect(c.runs[0]!.checks.structureChecked, `S ${c.variant}: sampled envelopes checked`).toBeGreaterThan(0);
    }
    // G: the baseline and the nodes over Redis, with what Redis did per message (at least the script and its SPUBLISH).
    if (!clusterSkipped) {
      const g = result.cases.filter((c) => c.workload === 'G');
      expect(g.map((c) => c.variant)).toEqual(['1 node', '2 nodes over Redis']);
      const cluster = g[1]!.runs[0]!.metrics;
      expect(cluster.nodes).toBe(2);
      expect(cluster.floodRedis_evalshaPerMsg).toBeGreaterThanOrEqual(1);
      expect(cluster.floodRedis_spublishPerMsg).toBeGreaterThanOrEqual(1);
      expect(cluster.floodRedisCpuMsPer1000Msgs).toBeGreaterThan(0);
    }

    // The outputs render from a real result.
    const env = environment();
    const markdown = toMarkdown(result, env, 'npm run bench:quick');
    expect(markdown).toContain('### A — flood');
    if (!clusterSkipped) expect(markdown).toContain('### G — cluster fan-out');
    expect(markdown).toContain('### S — fan-out to');
    expect(JSON.parse(toJson(result, env, 'npm run bench:quick')).cases).toHaveLength(result.cases.length);
    expect(toSvg(result, env)).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  }, 120_000);
});
