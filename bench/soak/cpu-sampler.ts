/**
 * CPU over each reporting interval, from /proc (Linux; NaN elsewhere): the server process, the
 * soak process, and everything else on the machine (all CPUs' busy time from /proc/stat, as the
 * bench counts it, minus those two), plus the busiest other processes by name, so a neighbour's
 * load is on the record rather than guessed at. Percentages are of one core.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { cpuBusyUs } from '../lib/proc.ts';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ; 100 on every Linux we run on). */
const TICK_US = 10_000;

export interface CpuSample {
  serverPct: number;
  soakPct: number;
  otherPct: number;
  /** Other processes above 2 % of a core, busiest first. */
  others: Array<{ label: string; pct: number }>;
}

interface Mark {
  at: number;
  machineUs: number;
  serverUs: number;
  soakUs: number;
  perPid: Map<number, number>;
}

export class CpuSampler {
  private mark: Mark;
  private readonly labels = new Map<number, string>();

  constructor(private readonly serverPid: number) {
    this.mark = this.read();
  }

  /** CPU since the previous call (or construction). */
  sample(): CpuSample {
    const now = this.read();
    const before = this.mark;
    this.mark = now;
    const wallUs = (now.at - before.at) * 1000;
    const pct = (us: number) => (wallUs > 0 ? (100 * us) / wallUs : Number.NaN);
    const serverUs = now.serverUs - before.serverUs;
    const soakUs = now.soakUs - before.soakUs;
    const others: Array<{ label: string; pct: number }> = [];
    for (const [pid, us] of now.perPid) {
      if (pid === this.serverPid || pid === process.pid) continue;
      const delta = us - (before.perPid.get(pid) ?? 0);
      if (pct(delta) >= 2) others.push({ label: this.label(pid), pct: pct(delta) });
    }
    others.sort((a, b) => b.pct - a.pct);
    return {
      serverPct: pct(serverUs),
      soakPct: pct(soakUs),
      otherPct: Math.max(0, pct(now.machineUs - before.machineUs - serverUs - soakUs)),
      others: others.slice(0, 4),
    };
  }

  private read(): Mark {
    let machineUs = 0;
    for (const us of cpuBusyUs().values()) machineUs += us;
    const perPid = new Map<number, number>();
    try {
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        const us = processCpuUs(Number(entry));
        if (us !== null) perPid.set(Number(entry), us);
      }
    } catch {
      // no /proc
    }
    const usage = process.cpuUsage();
    return {
      at: performance.now(),
      machineUs: machineUs || Number.NaN,
      serverUs: perPid.get(this.serverPid) ?? Number.NaN,
      soakUs: usage.user + usage.system,
      perPid,
    };
  }

  /** A short name: the script a node process runs, or the command. */
  private label(pid: number): string {
    const known = this.labels.get(pid);
    if (known) return known;
    let label = `pid ${pid}`;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      const command = path.basename(argv[0] ?? '');
      const script = argv.slice(1).find((a) => !a.startsWith('-') && /[/.]/.test(a));
      label = command === 'node' && script ? `node ${shorten(script)}` : shorten(argv.join(' ')) || label;
      // Someone else's server (tests start `node … src/main.ts` too): not to be taken for ours.
      if (/src\/main\.[jt]s$/.test(label)) label += ` (pid ${pid})`;
    } catch {
      // gone already
    }
    this.labels.set(pid, label);
    return label;
  }
}

function shorten(text: string): string {
  const t = text.replace(/^.*node_modules\//, '').replace(/^\/work\/[^/]+\//, '');
  return t.length > 48 ? `${t.slice(0, 47)}…` : t;
}

/** utime + stime of a process (its threads included), in µs; null when it is gone. */
function processCpuUs(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces: count fields after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * TICK_US;
  } catch {
    return null;
  }
}
