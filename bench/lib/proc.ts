/**
 * Spawning the bench's child processes: `node --import tsx --expose-gc <script>` (or the built
 * script, see builtScript) with an IPC
 * channel, pinned to CPUs with taskset when it exists and this process may use two or more CPUs,
 * and with the soft open-files limit raised to the hard limit (10,000–20,000 sockets per run).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { IpcChild } from './ipc.ts';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

const TASKSET_CANDIDATES = ['/usr/bin/taskset', '/bin/taskset', '/usr/local/bin/taskset'];
const BASH = ['/bin/bash', '/usr/bin/bash'].find((p) => existsSync(p));

/** The CPUs this process may run on (its affinity), from /proc; all of os.cpus() elsewhere. */
export function allowedCpus(): number[] {
  try {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Cpus_allowed_list:'));
    if (line) {
      const cpus = line
        .slice(line.indexOf(':') + 1)
        .trim()
        .split(',')
        .flatMap((part) => {
          const [a, b] = part.split('-').map(Number);
          return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
        })
        .filter((n) => Number.isInteger(n));
      if (cpus.length > 0) return cpus;
    }
  } catch {
    // not Linux
  }
  return os.cpus().map((_, i) => i);
}

const TASKSET = TASKSET_CANDIDATES.find((p) => existsSync(p)) ?? null;

/** Server on the first allowed CPU, load generators on the others (taskset), when there are two or more. */
export function cpuPlan(): { server: string | null; loadgen: string | null; loadgenCores: number; note: string } {
  const cpus = allowedCpus();
  if (cpus.length < 2) return { server: null, loadgen: null, loadgenCores: 1, note: 'one CPU: processes not pinned' };
  if (!TASKSET) return { server: null, loadgen: null, loadgenCores: cpus.length, note: 'taskset not found: processes not pinned' };
  const rest = cpus.slice(1).join(',');
  return { server: String(cpus[0]), loadgen: rest, loadgenCores: cpus.length - 1, note: `server pinned to CPU ${cpus[0]}, load generators to CPU ${rest} (taskset)` };
}

/** The soft RLIMIT_NOFILE children get (the hard limit: what `ulimit -n` can be raised to). */
export function openFilesLimit(): Promise<number> {
  if (!BASH) return Promise.resolve(Number.NaN);
  return new Promise((resolve) => {
    const p = spawn(BASH, ['-c', 'ulimit -Hn'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += String(d)));
    p.on('exit', () => resolve(out.trim() === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out.trim())));
    p.on('error', () => resolve(Number.NaN));
  });
}

export interface SpawnOptions {
  name: string;
  /** Script path relative to bench/. */
  script: string;
  cpus: string | null;
  env?: Record<string, string>;
  heapMb?: number;
}

const live = new Set<IpcChild>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const c of live) c.kill();
  });
}

/**
 * BENCH_BUILT_DIR: a build of the project (the tests' build, test/support/global-build.ts, which
 * compiles bench/ too) to run child processes from instead of through tsx — the smoke tests set
 * it; `npm run bench` does not. Returns the built file for `path` (relative to the project), or
 * null when there is none.
 */
export function builtScript(path: string): string | null {
  const dir = process.env.BENCH_BUILT_DIR;
  if (!dir) return null;
  const built = `${dir}/${path.replace(/\.ts$/, '.js')}`;
  return existsSync(built) ? built : null;
}

export function spawnChild(options: SpawnOptions): IpcChild {
  installCleanup();
  const script = fileURLToPath(new URL(`../${options.script}`, import.meta.url));
  // BENCH_SERVER_PROF_DIR: the servers write V8 CPU profiles there (explaining a figure, not measuring it).
  const profile = process.env.BENCH_SERVER_PROF_DIR && options.script.startsWith('servers/') ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_SERVER_PROF_DIR}`] : [];
  const built = builtScript(`bench/${options.script}`);
  const node = [process.execPath, ...(built ? [] : ['--import', 'tsx']), '--expose-gc', ...profile, `--max-old-space-size=${options.heapMb ?? 4096}`, built ?? script];
  const pinned = TASKSET && options.cpus !== null ? [TASKSET, '-c', options.cpus, ...node] : node;
  const env = { ...process.env, ...options.env };
  // exec keeps the pid, so killing the child kills node itself.
  const child = BASH
    ? spawn(BASH, ['-c', 'ulimit -S -n "$(ulimit -H -n)" 2>/dev/null; exec "$@"', 'bench', ...pinned], { cwd: REPO_ROOT, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    : spawn(pinned[0]!, pinned.slice(1), { cwd: REPO_ROOT, env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const ipc = new IpcChild(options.name, child);
  live.add(ipc);
  child.on('exit', () => live.delete(ipc));
  return ipc;
}

/** Kills children and waits (briefly) until they are gone. */
export async function killAll(children: Iterable<IpcChild>): Promise<void> {
  const waits: Array<Promise<void>> = [];
  for (const c of children) {
    if (!c.alive) continue;
    waits.push(new Promise<void>((resolve) => c.child.once('exit', () => resolve())));
    c.kill();
  }
  await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 3000))]);
}

/** Time each CPU spent running processes (or stolen by the hypervisor) so far, in µs, from /proc/stat (empty where there is none). */
export function cpuBusyUs(): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const f = m[2]!.trim().split(/\s+/).map(Number);
      // user nice system idle iowait irq softirq steal: process time plus the hypervisor's steal;
      // interrupts are left out (on loopback they are mostly the bench's own traffic).
      const busy = f[0]! + f[1]! + f[2]! + (f[7] ?? 0);
      out.set(Number(m[1]), (busy * 1e6) / 100);
    }
  } catch {
    // not Linux
  }
  return out;
}
