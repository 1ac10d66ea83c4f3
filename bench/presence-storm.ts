/**
 * Workload H — a presence storm: `members` sockets are open (authenticated, in no room), then
 * every member joins one room within `spreadMs` (what a room sees when its members come back to a
 * fresh node after a deploy). Each member keeps a presence view (clients/presence.ts); the run
 * ends when every view holds every member. Measured per batching variant (PRESENCE_BATCH_MS as
 * shipped, and 0: every change its own event, as before issue 13): presence frames per member
 * (median, max), presence deliveries in all, server CPU from the first join until every view is
 * complete, and how long that took.
 */
import { cpuBusyUs, cpuPlan } from './lib/proc.ts';
import type { CpuSample, LoadgenInit, Target } from './lib/types.ts';
import type { Checks, VariantOutcome } from './orchestrator.ts';
import type { Session } from './sessions.ts';
import type { Plan, Sizes } from './workloads.ts';

interface Status {
  members: number;
  complete: number;
  frames: number[];
  lastJoinedAt: number;
  lastCompleteAt: number;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

export async function runPresenceStorm(ctx: { target: Target; plan: Plan; sizes: Sizes; say: (m: string) => void }, session: Session): Promise<VariantOutcome[]> {
  const { target, plan, sizes, say } = ctx;
  const { server } = session;
  const loadgens = session.loadgens.slice(0, plan.procs.length);
  const total = plan.connections;
  const init: LoadgenInit = { target, url: session.url, urls: session.urls, secret: session.secret, base: session.base.toString(), ackMode: false };
  await Promise.all(loadgens.map((l) => l.request('init', init)));

  const setupStart = Date.now();
  const connected = await Promise.all(loadgens.map((l, i) => l.request<{ connected: number; failed: number; errors: string[] }>('presenceConnect', { conns: plan.procs[i], batch: sizes.connectBatch, expected: total }, 600_000)));
  const connectFailures = sum(connected.map((c) => c.failed));
  say(`${total - connectFailures}/${total} sockets open in ${((Date.now() - setupStart) / 1000).toFixed(1)} s${connectFailures ? ` (${connected.flatMap((c) => c.errors).join('; ')})` : ''}`);

  // The storm: marks first, then member i joins at t0 + i × spreadMs / members.
  await Promise.all([server.request('cpuMark'), ...loadgens.map((l) => l.request('cpuMark'))]);
  const busyBefore = cpuBusyUs();
  const selfBefore = process.cpuUsage();
  const t0 = Date.now() + 100;
  const joins = await Promise.all(loadgens.map((l) => l.request<{ joined: number; failed: number; errors: string[] }>('presenceJoin', { t0, spreadMs: sizes.H.spreadMs, total }, 600_000)));
  const joinFailures = sum(joins.map((j) => j.failed));
  say(`${sum(joins.map((j) => j.joined))} joined${joinFailures ? `, ${joinFailures} failed (${joins.flatMap((j) => j.errors).join('; ')})` : ''}`);

  // Until every view holds every member (or nothing changes for 30 s).
  let statuses: Status[] = [];
  let lastProgressAt = Date.now();
  let previous = -1;
  let lastPrint = Date.now();
  const problems: string[] = [];
  for (;;) {
    statuses = await Promise.all(loadgens.map((l) => l.request<Status>('presenceStatus')));
    const complete = sum(statuses.map((s) => s.complete));
    if (complete >= total - connectFailures) break;
    if (complete !== previous) {
      previous = complete;
      lastProgressAt = Date.now();
    } else if (Date.now() - lastProgressAt > 30_000) {
      problems.push(`${total - complete} member views never became complete`);
      break;
    }
    if (Date.now() - lastPrint > 2000) {
      lastPrint = Date.now();
      say(`views complete: ${complete}/${total}`);
    }
    await sleep(50);
  }
  const [serverCpu, loadCpus] = await Promise.all([server.request<CpuSample>('cpu'), Promise.all(loadgens.map((l) => l.request<CpuSample>('cpu')))]);
  const busyAfter = cpuBusyUs();
  const self = process.cpuUsage(selfBefore);
  // Late presence frames (a window still open when the last view completed) count too.
  await sleep(500);
  statuses = await Promise.all(loadgens.map((l) => l.request<Status>('presenceStatus')));
  for (const s of statuses) problems.push(...s.errors);

  const frames = statuses.flatMap((s) => s.frames).sort((a, b) => a - b);
  const complete = sum(statuses.map((s) => s.complete));
  const serverCpuUs = serverCpu.userUs + serverCpu.systemUs;
  const loadUs = sum(loadCpus.map((c) => c.userUs + c.systemUs));
  const pins = cpuPlan();
  const ours = pins.server === null ? [...busyAfter.keys()] : [Number(pins.server), ...pins.loadgen!.split(',').map(Number)];
  const busy = sum(ours.map((c) => (busyAfter.get(c) ?? 0) - (busyBefore.get(c) ?? 0)));
  const otherCpuPct = busyAfter.size ? Math.max(0, (100 * (busy - serverCpuUs - loadUs - self.user - self.system)) / serverCpu.wallUs) : Number.NaN;
  const lastJoinedAt = Math.max(...statuses.map((s) => s.lastJoinedAt));
  const lastCompleteAt = Math.max(...statuses.map((s) => s.lastCompleteAt));
  const metrics: Record<string, number> = {
    members: total,
    presenceFramesMedian: frames[Math.floor(frames.length / 2)] ?? Number.NaN,
    presenceFramesMax: frames.at(-1) ?? Number.NaN,
    presenceDeliveries: sum(frames),
    serverCpuMs: serverCpuUs / 1000,
    serverCpuPct: (100 * serverCpuUs) / serverCpu.wallUs,
    loadgenCpuPct: (100 * loadUs) / serverCpu.wallUs,
    otherCpuPct,
    joinSpanS: (lastJoinedAt - t0) / 1000,
    completeS: (lastCompleteAt - t0) / 1000,
    setupS: (t0 - setupStart) / 1000,
  };
  say(
    `presence frames per member median ${metrics.presenceFramesMedian}, max ${metrics.presenceFramesMax}; ${metrics.presenceDeliveries} in all; server CPU ${metrics.serverCpuMs!.toFixed(0)} ms (${metrics.serverCpuPct!.toFixed(0)} %); ` +
      `all joined after ${metrics.joinSpanS!.toFixed(2)} s, every view complete after ${metrics.completeS!.toFixed(2)} s; other processes ${otherCpuPct.toFixed(0)} %`,
  );
  // The run's check: every member's view holds every member (a view is one "delivery" here).
  const checks: Checks = {
    expected: total,
    received: complete,
    missing: total - complete,
    outOfOrder: 0,
    duplicates: 0,
    structureErrors: 0,
    structureChecked: 0,
    unexpectedCloses: 0,
    errorFrames: 0,
    sendFailures: joinFailures,
    connectFailures,
    problems: problems.slice(0, 8),
  };
  return [{ variant: '', metrics, checks }];
}
