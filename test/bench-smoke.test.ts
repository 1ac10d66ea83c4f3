import { describe, expect, it } from 'vitest';
import { toSvg } from '../bench/chart.ts';
import { checksPassed, runBench, summarizeChecks } from '../bench/orchestrator.ts';
import { environment, toJson, toMarkdown } from '../bench/report.ts';
import { WORKLOADS } from '../bench/workloads.ts';

/**
 * The benchmark at smoke size (`--quick`): every workload against this service, with tiny rooms
 * and a few dozen messages, in separate server and load-generator processes exactly as
 * `npm run bench` runs them. No thresholds: it proves the bench runs, that nothing is lost or
 * reordered, and that stock @trpc/client clients see exactly the events the raw-frame
 * benchmark clients see. The full bench stays out of CI.
 */
describe('bench smoke run', () => {
  it('runs workloads A–F on the realtime target without loss or reordering; stock clients see what raw clients see', async () => {
    const lines: string[] = [];
    const result = await runBench({ targets: ['realtime'], workloads: [...WORKLOADS], runs: 1, quick: true, identity: true, log: (l) => lines.push(l) });

    expect(result.identity, 'identity check ran').not.toBeNull();
    expect(result.identity!.mismatches).toEqual([]);
    expect(result.identity!.ok).toBe(true);
    expect(result.identity!.events).toBeGreaterThan(20);

    const workloadsRun = new Set(result.cases.map((c) => c.workload));
    expect([...workloadsRun].sort()).toEqual([...WORKLOADS]);
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
    for (const c of result.cases.filter((c) => ['A', 'B', 'D', 'F'].includes(c.workload))) {
      expect(c.runs[0]!.metrics.cpuUsPerDelivery).toBeGreaterThan(0);
    }

    // The outputs render from a real result.
    const env = environment();
    expect(toMarkdown(result, env, 'npm run bench:quick')).toContain('### A — flood');
    expect(JSON.parse(toJson(result, env, 'npm run bench:quick')).cases).toHaveLength(result.cases.length);
    expect(toSvg(result, env)).toMatch(/^<svg[\s\S]*<\/svg>\n$/);
  }, 120_000);
});
