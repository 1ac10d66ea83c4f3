/**
 * Turns a BenchResult into the markdown section (tables per workload: median with min–max over
 * the runs, server CPU µs per delivery, the loss/order verdict), the JSON document, and the
 * header describing the machine and the software measured.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { REPO_ROOT } from './lib/proc.ts';
import { TARGET_LABELS, TARGETS, type Target } from './lib/types.ts';
import { checksPassed, MAIN_REDIS_COMMANDS, summarizeChecks, type BenchResult, type CaseResult } from './orchestrator.ts';
import { CLUSTER_SETUPS, PRESENCE_VARIANTS, transportLabel, type Workload } from './workloads.ts';

export interface Environment {
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  packages: Record<string, string>;
  commit: string;
}

const PACKAGES = ['@trpc/server', '@trpc/client', 'superjson', 'ws', 'bufferutil', 'socket.io', 'socket.io-client', 'tsx'];

export function environment(): Environment {
  const packages: Record<string, string> = {};
  for (const name of PACKAGES) {
    try {
      packages[name] = (JSON.parse(readFileSync(`${REPO_ROOT}node_modules/${name}/package.json`, 'utf8')) as { version: string }).version;
    } catch {
      packages[name] = 'not installed';
    }
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'clients'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    if (dirty) commit += ' + uncommitted changes in src/ or clients/';
  } catch {
    // not a git checkout
  }
  return {
    date: new Date().toISOString(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    packages,
    commit,
  };
}

// ---------------------------------------------------------------- statistics

export interface Summary {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function summarize(values: number[]): Summary {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, n: 0 };
  const mid = Math.floor(v.length / 2);
  const median = v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
  return { median, min: v[0]!, max: v[v.length - 1]!, n: v.length };
}

export function metricSummary(c: CaseResult, key: string): Summary {
  return summarize(c.runs.map((r) => r.metrics[key] ?? Number.NaN));
}

/** Three significant digits, thousands separated. */
export function fmt(x: number): string {
  if (!Number.isFinite(x)) return '–';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  if (a >= 1) return x.toFixed(2);
  if (a === 0) return '0';
  return x.toPrecision(2);
}

function cell(c: CaseResult | undefined, key: string, scale = 1): string {
  if (!c || c.runs.length === 0) return '–';
  const s = metricSummary(c, key);
  if (s.n === 0) return '–';
  const m = fmt(s.median * scale);
  if (s.n === 1) return m;
  return `${m} (${fmt(s.min * scale)}–${fmt(s.max * scale)})`;
}

/** Load-gen CPU, with a dagger when any run had the load generators at >= 90 % of their cores. */
function loadCell(c: CaseResult | undefined, cores: number): string {
  const text = cell(c, 'loadgenCpuPct');
  return c && saturated(c, cores) ? `${text} †` : text;
}

export function saturated(c: CaseResult, cores: number): boolean {
  return c.runs.some((r) => (r.metrics.loadgenCpuPct ?? 0) >= 90 * cores);
}

function checkCell(c: CaseResult | undefined): string {
  if (!c) return '–';
  const failedRuns = c.errors.length;
  const bad = c.runs.filter((r) => !checksPassed(r.checks));
  if (c.runs.length === 0) return `run failed: ${c.errors.join('; ')}`;
  const deliveries = c.runs.reduce((a, r) => a + r.checks.received, 0);
  if (bad.length === 0 && failedRuns === 0) return `ok ×${c.runs.length} (${fmt(deliveries)} deliveries checked)`;
  const parts = bad.map((r) => summarizeChecks(r.checks));
  if (failedRuns) parts.push(...c.errors);
  return `**${bad.length + failedRuns} of ${c.runs.length + failedRuns} runs failed**: ${parts.join(' / ')}`;
}

// ---------------------------------------------------------------- markdown

function table(header: string[], rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

function find(result: BenchResult, target: Target, workload: Workload, variant = ''): CaseResult | undefined {
  return result.cases.find((c) => c.target === target && c.workload === workload && c.variant === variant);
}

function targetsOf(result: BenchResult): Target[] {
  return TARGETS.filter((t) => result.cases.some((c) => c.target === t));
}

function description(result: BenchResult, workload: Workload): string {
  return result.cases.find((c) => c.workload === workload)?.description ?? '';
}

function title(w: Workload, s: BenchResult['sizes'], result: BenchResult): string {
  const n = (x: number) => x.toLocaleString('en-US');
  switch (w) {
    case 'A':
      return `A — flood, one room of ${n(s.A.receivers)}`;
    case 'B':
      return `B — fixed rates ${s.B.rates.join(', ')} msgs/s, one room of ${n(s.B.receivers)}: latency from send to receipt`;
    case 'C':
      return `C — ${n(s.C.rooms * s.C.perRoom)} connections in ${n(s.C.rooms)} rooms: memory after GC`;
    case 'D':
      return `D — ${n(s.D.rooms)} rooms of ${s.D.perRoom}, a random room per message`;
    case 'E':
      return `E — acknowledged broadcast to ${n(s.E.receivers)}`;
    case 'F': {
      const conns = result.cases.find((c) => c.workload === 'F' && c.runs.length > 0)?.runs[0]?.metrics.connections ?? s.F.total;
      return `F — ${n(conns)} connections on one node, one hot room of ${n(s.F.hotReceivers)} at ${s.F.rate} msgs/s`;
    }
    case 'G':
      return `G — cluster fan-out: one room of ${n(s.G.receivers)} over two nodes sharing it through Redis, against one node`;
    case 'H':
      return `H — presence storm: ${n(s.H.members)} members join one room within ${s.H.spreadMs / 1000} s`;
    case 'S':
      return `S — fan-out to ${n(s.S.receivers)} subscribers over SSE against ${n(s.S.receivers)} over WebSocket`;
  }
}

export function toMarkdown(result: BenchResult, env: Environment, command: string): string {
  const out: string[] = [];
  const targets = targetsOf(result);
  const workloads = [...new Set(result.cases.map((c) => c.workload))].sort();
  const s = result.sizes;
  out.push(`## Benchmark results — ${env.date.slice(0, 10)}${result.quick ? ' (quick smoke size: not a measurement)' : ''}`);
  out.push('');
  out.push(`- **Machine:** ${env.cpuModel}, ${env.cores} cores, ${env.memoryGiB} GiB RAM, ${env.os}`);
  out.push(`- **Software:** Node ${env.node}; ${Object.entries(env.packages).map(([k, v]) => `${k} ${v}`).join(', ')}; commit ${env.commit}`);
  out.push(`- **Run:** \`${command}\` — ${result.runs} run(s) per target and workload, each on a fresh server process and fresh load generators; ${result.pinning}; open files per process ${result.openFilesLimit}; other processes' CPU in the second before the start ${fmt(result.otherCpuAtStartPct)} % of a core; took ${Math.round(result.durationS)} s (${result.startedAt} → ${result.finishedAt}).`);
  out.push(
    `- **Method:** every measured phase follows a ${s.warmupMs} ms warm-up and lasts ${s.measureMs} ms of sending${s.maxMessages ? ` (at most ${s.maxMessages} messages per sender)` : ''}, then drains until every receiver has every message. ` +
      'Latency is from the sender\'s `process.hrtime.bigint()` stamp in the body (CLOCK_MONOTONIC, same machine) to the receiver\'s, all processes sharing one base. ' +
      '**Server CPU µs per delivery** = the server process\'s `process.cpuUsage()` (user + system) over the phase ÷ deliveries counted by the receivers: it does not depend on the load generator. ' +
      'Server CPU and load-gen CPU are in % of one core over the phase (the load generators share the cores given above; near 100 % they, not the server, set the pace). ' +
      'Cells are the median over runs with min–max in brackets. Every run checks that every receiver got every message of its room, from each sender in sequence (no gap, no duplicate, no reordering), and samples 1 frame in 101 to check its envelope.',
  );
  out.push(
    '- **Targets:** ' +
      targets
        .map((t) => `*${TARGET_LABELS[t]}*`)
        .join(', ') +
      '. This service runs as shipped (JWT auth, presence, history, tracked ids, superjson) with only its protective limits raised (message rate, pending acks, slow-consumer threshold; ack re-sends off); Socket.IO uses rooms and `socket.to(room).emit` / `emitWithAck`; plain ws builds each frame once and writes it to every socket with cork/uncork. Every target sends the same message object (id, sender, 200-byte body, timestamps, ack flag).',
  );
  const other = result.cases.flatMap((c) => c.runs.map((r) => r.metrics.otherCpuPct ?? Number.NaN)).filter((v) => Number.isFinite(v));
  if (other.length) {
    const o = summarize(other);
    out.push(
      `- **Other processes** took a median ${fmt(o.median)} % (max ${fmt(o.max)} %) of one core on the bench's CPUs during the measured phases (/proc/stat user + system + steal time on those CPUs, minus the CPU time of the bench's own processes)` +
        (o.max > 10 ? ': where it is high, the latency and throughput figures are disturbed by a busy neighbour; see `otherCpuPct` per run in the JSON.' : '.'),
    );
  }
  for (const note of result.notes) out.push(`- **Note:** ${note}`);
  for (const skip of result.skipped) out.push(`- **Skipped:** ${skip.workload} for ${TARGET_LABELS[skip.target]}: ${skip.reason}.`);
  out.push('');
  if (result.identity) {
    const i = result.identity;
    out.push(
      `**Stock client identity check:** ${i.ok ? 'passed' : '**FAILED**'} — ${i.clients} clients (raw-frame and stock \`@trpc/client\` via \`createChatClient\`) saw ${i.events} events each (messages with awkward and benchmark bodies, an acknowledged message, typing, a late joiner) with ${i.ok ? 'identical ids and contents in the same order' : `differences: ${i.mismatches.join('; ')}`}.`,
    );
    out.push('');
  }

  for (const w of workloads) {
    out.push(`### ${title(w, s, result)}`);
    out.push('');
    out.push(`_${description(result, w)}._`);
    out.push('');
    switch (w) {
      case 'A':
      case 'D':
        out.push(
          table(
            ['target', 'deliveries/s', 'msgs/s', 'server CPU µs / delivery', 'server CPU %', 'load-gen CPU %', 'latency p50 ms', 'latency p99 ms', 'zero loss & order'],
            targets.map((t) => {
              const c = find(result, t, w);
              return [TARGET_LABELS[t], cell(c, 'deliveriesPerSec'), cell(c, 'msgsPerSec'), cell(c, 'cpuUsPerDelivery'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), cell(c, 'p50Ms'), cell(c, 'p99Ms'), checkCell(c)];
            }),
          ),
        );
        out.push('');
        out.push(
          'Latency under flood is queueing time (messages wait behind the ones before them); it is shown for completeness, B is the latency measurement. ' +
            'Every target gets the same number of sends in flight; the more messages a server can put in one socket write, the less CPU a delivery costs, so flood figures are a best case.',
        );
        break;
      case 'B': {
        const rows: string[][] = [];
        for (const rate of s.B.rates) {
          for (const t of targets) {
            const c = find(result, t, 'B', `${rate} msgs/s`);
            rows.push([`${rate}`, TARGET_LABELS[t], cell(c, 'p50Ms'), cell(c, 'p95Ms'), cell(c, 'p99Ms'), cell(c, 'maxMs'), cell(c, 'cpuUsPerDelivery'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), cell(c, 'achievedRate'), checkCell(c)]);
          }
        }
        out.push(table(['msgs/s', 'target', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'server CPU µs / delivery', 'server CPU %', 'load-gen CPU %', 'rate achieved msgs/s', 'zero loss & order'], rows));
        break;
      }
      case 'C':
        out.push(
          table(
            ['target', 'heap / connection', 'RSS / connection', 'heap / room', 'RSS / room', 'heap total MB', 'RSS total MB', 'full history / room', '100 rooms\' full history MB', 'connect + settle s', 'zero loss & order'],
            targets.map((t) => {
              const c = find(result, t, 'C');
              return [TARGET_LABELS[t], `${cell(c, 'heapPerConnB', 1 / 1024)} KiB`, `${cell(c, 'rssPerConnB', 1 / 1024)} KiB`, `${cell(c, 'heapPerRoomB', 1 / 1024)} KiB`, `${cell(c, 'rssPerRoomB', 1 / 1024)} KiB`, cell(c, 'heapMB'), cell(c, 'rssMB'), `${cell(c, 'historyPerRoomB', 1 / 1024)} KiB`, cell(c, 'history100RoomsMB'), cell(c, 'setupS'), checkCell(c)];
            }),
          ),
        );
        out.push('');
        out.push('Per connection and per room are the same growth (server memory after GC with everyone connected and subscribed, minus memory after GC once a few warm-up connections have come and gone) divided by the number of connections or rooms. The loss check sends one message per room. Full history (this service only; the others keep none): every room\'s history then filled to the default HISTORY_SIZE (256 messages with the bench\'s 200-byte bodies, delivered and checked like any phase), and the growth of heap + ArrayBuffers after GC divided by the rooms; × 100 is the issue-16 target "100 active rooms with full default history within 10 MB" (MB = 2^20 bytes, as everywhere here).');
        break;
      case 'E':
        out.push(
          table(
            ['target', 'acked deliveries/s', 'full reports/s', 'time to full report p50 ms', 'p99 ms', 'max ms', 'server CPU µs / acked delivery', 'server CPU %', 'load-gen CPU %', 'zero loss & order'],
            targets.map((t) => {
              const c = find(result, t, 'E');
              return [TARGET_LABELS[t], cell(c, 'ackedDeliveriesPerSec'), cell(c, 'reportsPerSec'), cell(c, 'reportP50Ms'), cell(c, 'reportP99Ms'), cell(c, 'reportMaxMs'), cell(c, 'cpuUsPerAckedDelivery'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), checkCell(c)];
            }),
          ),
        );
        out.push('');
        out.push('An acked delivery is one recipient\'s ack counted in a full report; the CPU figure covers the broadcast, the ack request and the report.');
        break;
      case 'F':
        out.push(
          table(
            ['target', 'connections', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'server CPU µs / delivery', 'server CPU %', 'RSS MB', 'heap MB', 'load-gen CPU %', 'connect + settle s', 'zero loss & order'],
            targets.map((t) => {
              const c = find(result, t, 'F');
              return [TARGET_LABELS[t], cell(c, 'connections'), cell(c, 'p50Ms'), cell(c, 'p95Ms'), cell(c, 'p99Ms'), cell(c, 'maxMs'), cell(c, 'cpuUsPerDelivery'), cell(c, 'serverCpuPct'), cell(c, 'rssMB'), cell(c, 'heapMB'), loadCell(c, result.loadgenCores), cell(c, 'setupS'), checkCell(c)];
            }),
          ),
        );
        break;
      case 'G':
        out.push(clusterSection(result));
        break;
      case 'H':
        out.push(presenceSection(result));
        break;
      case 'S':
        out.push(transportSection(result));
        break;
    }
    if (result.cases.some((c) => c.workload === w && saturated(c, result.loadgenCores))) {
      out.push('');
      out.push(
        `† In at least one run the load generators used ≥ 90 % of the ${result.loadgenCores === 1 ? 'core' : `${result.loadgenCores} cores`} they are pinned to: there the latency (and under flood the throughput) includes load-generator queueing, not only the server's. ` +
          'They already run as several processes (see above); this machine has no further core to spread them to without sharing the server\'s. Server CPU µs per delivery does not depend on it.',
      );
    }
    out.push('');
  }
  const failures = result.cases.flatMap((c) => c.errors.map((e) => `${c.target} ${c.workload}: ${e}`));
  if (failures.length) {
    out.push('### Runs that did not complete');
    out.push('');
    for (const f of failures) out.push(`- ${f}`);
    out.push('');
  }
  return out.join('\n');
}

/** S: per target, the subscribers over HTTP (SSE, long-polling) and over WebSocket, side by side. */
function transportSection(result: BenchResult): string {
  const s = result.sizes.S;
  const rows: string[][] = [];
  const ratios: string[] = [];
  for (const t of targetsOf(result)) {
    // "this service (tRPC ws)" would misname its SSE row.
    const name = t === 'realtime' ? 'this service' : TARGET_LABELS[t];
    const [http, ws] = s.variants.map((v) => ({ label: transportLabel(t, v), c: find(result, t, 'S', transportLabel(t, v)) }));
    for (const { label, c } of [http!, ws!]) {
      if (!c) continue;
      rows.push([name, label, cell(c, 'deliveriesPerSec'), cell(c, 'cpuUsPerDelivery'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), cell(c, 'p50Ms'), cell(c, 'p99Ms'), cell(c, 'maxMs'), cell(c, 'rateCpuUsPerDelivery'), cell(c, 'rateLoadgenCpuPct'), `${cell(c, 'heapPerConnB', 1 / 1024)} KiB`, `${cell(c, 'rssPerConnB', 1 / 1024)} KiB`, checkCell(c)]);
    }
    if (http?.c?.runs.length && ws?.c?.runs.length) {
      const r = (key: string) => fmt(metricSummary(http.c!, key).median / metricSummary(ws.c!, key).median);
      ratios.push(`${name}, ${http.label} against WebSocket: ${r('deliveriesPerSec')}× the deliveries/s, ${r('cpuUsPerDelivery')}× the server CPU per delivery, ${r('p99Ms')}× the p99 at ${s.rate}/s, ${r('heapPerConnB')}× the heap per subscriber`);
    }
  }
  const out = [
    table(
      ['target', 'subscribers over', 'deliveries/s', 'server CPU µs / delivery', 'server CPU %', 'load-gen CPU %', `p50 ms at ${s.rate}/s`, `p99 ms at ${s.rate}/s`, `max ms at ${s.rate}/s`, `server CPU µs / delivery at ${s.rate}/s`, `load-gen CPU % at ${s.rate}/s`, 'heap / subscriber', 'RSS / subscriber', 'zero loss & order'],
      rows,
    ),
    '',
  ];
  if (ratios.length) out.push(`Medians: ${ratios.join('; ')}.`, '');
  out.push(
    `Each variant runs on a fresh server (\`--quick\`: the shared one): A's flood (${s.window} sends in flight) for deliveries/s and server CPU per delivery, then ${s.rate} msgs/s on the same subscribers for latency. ` +
      "The sender is a WebSocket connection in both variants (excluded from its own messages); only the subscribers' transport changes. SSE subscribers are raw `http` GETs with `Authorization: Bearer` (`bench/clients/sse.ts`), Socket.IO's are socket.io-client with `transports: ['polling']`. " +
      'Heap and RSS per subscriber: server memory after GC with every subscriber connected and settled, minus memory after GC once a few connections of the same transports have come and gone, ÷ connections. Plain ws has no transport but the WebSocket, so S does not run against it.',
  );
  return out.join('\n');
}

/** H: presence frames and CPU per batching variant, and the ratios against the unbatched one. */
function presenceSection(result: BenchResult): string {
  const out: string[] = [];
  const variants = PRESENCE_VARIANTS.filter((v) => find(result, 'realtime', 'H', v.label));
  out.push(
    table(
      ['server', 'presence frames / member, median', 'max', 'presence deliveries', 'server CPU ms', 'server CPU %', 'load-gen CPU %', 'all joined after s', 'every view complete after s', 'every view complete'],
      variants.map((v) => {
        const c = find(result, 'realtime', 'H', v.label);
        return [v.label, cell(c, 'presenceFramesMedian'), cell(c, 'presenceFramesMax'), cell(c, 'presenceDeliveries'), cell(c, 'serverCpuMs'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), cell(c, 'joinSpanS'), cell(c, 'completeS'), checkCell(c)];
      }),
    ),
  );
  out.push('');
  const [batched, before] = PRESENCE_VARIANTS.map((v) => find(result, 'realtime', 'H', v.label));
  if (batched && before && batched.runs.length > 0 && before.runs.length > 0) {
    const r = (key: string) => fmt(metricSummary(before, key).median / metricSummary(batched, key).median);
    out.push(`Without batching (medians): ${r('presenceDeliveries')}× the presence deliveries, ${r('presenceFramesMax')}× the frames of the member that got most, ${r('serverCpuMs')}× the server CPU, ${r('completeS')}× the time until every view is complete.`, '');
  }
  out.push(
    'Every member\'s socket is open before the storm; member *i* starts `conversation.events` at *i* × spread / members. A member\'s view is built as the typed client builds it (the `subscribed` snapshot of at most 100, `conversation.presence` pages when it lists fewer than `memberCount`, single presence events and `presence_diff`s); "complete" means it holds every member. ' +
      'Server CPU covers the whole storm, from the first join until every view is complete: joins, snapshots, presence events and the pages. Socket.IO and plain ws have no presence of their own, so H runs only against this service. "Every view complete" counts views as the deliveries checked.',
  );
  return out.join('\n');
}

/** G: throughput and latency per setup, then what Redis did per published message. */
function clusterSection(result: BenchResult): string {
  const s = result.sizes;
  const out: string[] = [];
  const setups = CLUSTER_SETUPS.filter((x) => find(result, 'realtime', 'G', x.label));
  out.push(
    table(
      ['setup', 'deliveries/s', 'msgs/s', 'node CPU µs / delivery', 'node CPU %', 'load-gen CPU %', 'flood p99 ms', `p50 ms at ${s.G.rate}/s`, `p99 ms at ${s.G.rate}/s`, `max ms at ${s.G.rate}/s`, `node CPU µs / delivery at ${s.G.rate}/s`, 'zero loss & order'],
      setups.map((x) => {
        const c = find(result, 'realtime', 'G', x.label);
        return [x.label, cell(c, 'deliveriesPerSec'), cell(c, 'msgsPerSec'), cell(c, 'cpuUsPerDelivery'), cell(c, 'serverCpuPct'), loadCell(c, result.loadgenCores), cell(c, 'floodP99Ms'), cell(c, 'p50Ms'), cell(c, 'p99Ms'), cell(c, 'maxMs'), cell(c, 'rateCpuUsPerDelivery'), checkCell(c)];
      }),
    ),
  );
  out.push('');
  const base = find(result, 'realtime', 'G', CLUSTER_SETUPS[0]!.label);
  const ratios = setups.slice(1).flatMap((x) => {
    const c = find(result, 'realtime', 'G', x.label);
    if (!c || !base || c.runs.length === 0 || base.runs.length === 0) return [];
    const r = (key: string) => fmt(metricSummary(c, key).median / metricSummary(base, key).median);
    return [`${x.label}: ${r('deliveriesPerSec')}× the deliveries/s, ${r('cpuUsPerDelivery')}× the node CPU per delivery, ${r('p99Ms')}× the p99 at ${s.G.rate}/s`];
  });
  if (ratios.length) out.push(`Against ${CLUSTER_SETUPS[0]!.label} (medians): ${ratios.join('; ')}.`, '');
  const redisRows: string[][] = [];
  for (const x of setups.filter((y) => y.redis)) {
    const c = find(result, 'realtime', 'G', x.label);
    for (const phase of ['flood', 'rate'] as const) {
      redisRows.push([
        x.label,
        phase === 'flood' ? 'flood' : `${s.G.rate} msgs/s`,
        cell(c, `${phase}Msgs`),
        cell(c, `${phase}RedisCallsPerMsg`),
        ...MAIN_REDIS_COMMANDS.map((name) => cell(c, `${phase}Redis_${name}PerMsg`)),
        cell(c, `${phase}RedisCpuMsPer1000Msgs`),
        cell(c, `${phase}RedisCpuPct`),
      ]);
    }
  }
  const shardRows: string[][] = [];
  for (const x of setups.filter((y) => y.redis)) {
    const c = find(result, 'realtime', 'G', x.label);
    for (const phase of ['flood', 'rate'] as const) {
      for (let shard = 1; c?.runs.some((r) => r.metrics[`${phase}RedisShard${shard}CallsPerMsg`] !== undefined); shard += 1) {
        shardRows.push([x.label, phase === 'flood' ? 'flood' : `${s.G.rate} msgs/s`, `master ${shard}`, cell(c, `${phase}RedisShard${shard}CallsPerMsg`), cell(c, `${phase}RedisShard${shard}CpuMsPer1000Msgs`)]);
      }
    }
  }
  if (shardRows.length) {
    out.push('**Per shard of the Redis Cluster** (`--redis-cluster`; the room lives on one master, the others see only heartbeats, presence and node-to-node calls):');
    out.push('');
    out.push(table(['setup', 'phase', 'shard', 'commands / msg', 'Redis CPU ms / 1000 msgs'], shardRows));
    out.push('');
  }
  if (redisRows.length) {
    out.push('**Redis per published message** (`INFO commandstats` and `INFO cpu` read before and after each measured phase; the bench\'s own INFO and CLIENT LIST left out):');
    out.push('');
    out.push(table(['setup', 'phase', 'messages', 'commands / msg (all)', ...MAIN_REDIS_COMMANDS.map((n) => `${n} / msg`), 'Redis CPU ms / 1000 msgs', 'Redis CPU %'], redisRows));
    out.push('');
    const foreign = result.cases.filter((c) => c.workload === 'G').flatMap((c) => c.runs.map((r) => Math.max(r.metrics.floodRedisForeignClients ?? 0, r.metrics.rateRedisForeignClients ?? 0)));
    out.push(
      '"All" counts every command Redis executed, those the publish script runs inside EVALSHA included (HGET, HINCRBY, HSET, XADD, PEXPIRE ×2, SPUBLISH per stored message) and the nodes\' background work (heartbeats every second, history TTL refreshes) spread over the phase\'s messages — which is why the fixed-rate phase, with fewer messages, shows more per message. ' +
        'Redis CPU is `used_cpu_user + used_cpu_sys` of the server process; per-command breakdowns of every command are in the JSON (`…Redis_<command>PerMsg`).' +
        (Math.max(0, ...foreign) > 0 ? ` **Other Redis clients were busy during ${foreign.filter((f) => f > 0).length} run(s)**: their commands are in these counts.` : ' No other Redis client issued commands during the measured phases.'),
    );
    out.push('');
  }
  out.push(
    'Every node is pinned to the server CPU, as the single node is, so the nodes share one core between them; Redis runs unpinned and shares the machine with them and the load generators. ' +
      'Node CPU is the sum over the nodes. Each node receives every message of the room from Redis (one SPUBLISH, delivered to each subscribed node) and fans it out to its own members; the sender\'s own node also gets it back through Redis, so latency includes the Redis round trip on both nodes.',
  );
  return out.join('\n');
}

export function toJson(result: BenchResult, env: Environment, command: string): string {
  const summaries = result.cases.map((c) => ({
    target: c.target,
    workload: c.workload,
    variant: c.variant,
    passed: c.errors.length === 0 && c.runs.every((r) => checksPassed(r.checks)),
    summary: Object.fromEntries(Object.keys(c.runs[0]?.metrics ?? {}).map((k) => [k, metricSummary(c, k)])),
  }));
  return `${JSON.stringify({ environment: env, command, ...result, summaries }, null, 2)}\n`;
}
