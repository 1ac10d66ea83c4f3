/**
 * `npm run bench` — this service vs Socket.IO 4.8 vs plain ws, workloads A–F, plus G (this
 * service's cluster mode: two nodes over Redis against one node), H (presence storm) and S
 * (subscribers over SSE against WebSocket); see README.md in this folder.
 * Results go to bench/results/latest.{md,json,svg} unless told otherwise.
 *
 *   npm run bench                                   # everything, 3 runs (about 16 minutes)
 *   npm run bench -- --workloads B --targets realtime,ws --runs 1
 *   npm run bench -- --workloads G --targets realtime --out bench/results/cluster.md
 *   npm run bench -- --workloads H --targets realtime --out bench/results/presence.md
 *   npm run bench:quick                             # seconds: tiny sizes, 1 run, checks only
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { toSvg } from './chart.ts';
import { TARGETS, type Target } from './lib/types.ts';
import { BENCH_DIR } from './lib/proc.ts';
import { checksPassed, runBench } from './orchestrator.ts';
import { environment, toJson, toMarkdown } from './report.ts';
import { WORKLOADS, type Workload } from './workloads.ts';

const HELP = `usage: npm run bench -- [options]

  --workloads A,B,C,D,E,F,G,H,S
                              which workloads (default: all); G (cluster fan-out) runs only
                              against realtime and needs Redis 7 at REDIS_URL (default
                              redis://127.0.0.1:6379); it is skipped, with a note, when
                              Redis is not reachable. H (presence storm) runs only against
                              realtime (the others have no presence). S (SSE against
                              WebSocket; Socket.IO: long-polling) is skipped for ws
  --targets realtime,socketio,ws
                              which targets (default: all)
  --runs N                    runs per target and workload (default 3; 1 with --quick)
  --quick                     smoke size: tiny rooms, a few dozen messages, seconds
  --no-identity               skip the stock @trpc/client identity check
  --redis-cluster             G on a three-master Redis Cluster the bench starts itself
                              (redis-server --cluster-enabled on free ports, a temp dir;
                              needs redis-server and redis-cli) instead of REDIS_URL; Redis
                              commands and CPU per message are also given per shard
  --max-other-cpu PCT         repeat a run when other processes took more than PCT % of a
                              core on the bench's CPUs during it (default 20; off with --quick)
  --repeats N                 at most N repeats per run for that (default 2)
  --out FILE                  markdown (default bench/results/latest.md, quick: quick.md)
  --json FILE                 JSON (default next to --out, .json)
  --svg FILE                  chart (default next to --out, .svg)
`;

function list<T extends string>(value: string | undefined, allowed: readonly T[], what: string): T[] {
  if (value === undefined) return [...allowed];
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) if (!allowed.includes(item as T)) throw new Error(`unknown ${what} "${item}" (expected ${allowed.join(', ')})`);
  return items as T[];
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      workloads: { type: 'string' },
      targets: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'redis-cluster': { type: 'boolean', default: false },
      'no-identity': { type: 'boolean', default: false },
      'max-other-cpu': { type: 'string' },
      repeats: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      svg: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const quick = values.quick ?? false;
  const workloads = list<Workload>(values.workloads?.toUpperCase(), WORKLOADS, 'workload');
  const targets = list<Target>(values.targets, TARGETS, 'target');
  const runs = values.runs === undefined ? (quick ? 1 : 3) : Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const out = path.resolve(values.out ?? path.join(BENCH_DIR, 'results', quick ? 'quick.md' : 'latest.md'));
  const stem = out.replace(/\.md$/, '');
  const jsonPath = path.resolve(values.json ?? `${stem}.json`);
  const svgPath = path.resolve(values.svg ?? `${stem}.svg`);
  const command = `npm run bench${quick ? ':quick' : ''} --${process.argv.slice(2).filter((a) => a !== '--quick').map((a) => ` ${a}`).join('')}`.replace(/ --$/, '');

  const maxOtherCpuPct = values['max-other-cpu'] === undefined ? undefined : Number(values['max-other-cpu']);
  const maxRepeats = values.repeats === undefined ? undefined : Number(values.repeats);
  if (maxOtherCpuPct !== undefined && !(maxOtherCpuPct >= 0)) throw new Error('--max-other-cpu must be a number >= 0');
  if (maxRepeats !== undefined && !(Number.isInteger(maxRepeats) && maxRepeats >= 0)) throw new Error('--repeats must be a whole number >= 0');

  const result = await runBench({
    targets,
    workloads,
    runs,
    quick,
    identity: !values['no-identity'] && targets.includes('realtime'),
    redisCluster: values['redis-cluster'] ?? false,
    ...(maxOtherCpuPct !== undefined && { maxOtherCpuPct }),
    ...(maxRepeats !== undefined && { maxRepeats }),
  });
  const env = environment();
  // The chart compares targets on A–F; a G-only run has nothing to draw.
  const written = result.cases.some((c) => c.workload !== 'G' && c.workload !== 'H') ? [out, jsonPath, svgPath] : [out, jsonPath];
  for (const file of written) mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(out, `${toMarkdown(result, env, command)}\n`);
  writeFileSync(jsonPath, toJson(result, env, command));
  if (written.includes(svgPath)) writeFileSync(svgPath, toSvg(result, env));
  process.stdout.write(`\nwrote ${written.map((f) => path.relative(process.cwd(), f)).join(', ')}\n`);

  const failed = result.cases.filter((c) => c.errors.length > 0 || c.runs.some((r) => !checksPassed(r.checks)));
  if (result.identity && !result.identity.ok) process.stdout.write(`identity check FAILED: ${result.identity.mismatches.join('; ')}\n`);
  for (const c of failed) process.stdout.write(`FAILED: ${c.target} ${c.workload} ${c.variant}\n`);
  return failed.length > 0 || (result.identity !== null && !result.identity.ok) ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  },
);
