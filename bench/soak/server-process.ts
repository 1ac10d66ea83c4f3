/**
 * The server under soak: `node --import tsx src/main.ts` exactly as `npm start` runs it, in a
 * process of its own (so its memory is its own), on 127.0.0.1 and an ephemeral port found from
 * its `listening` log line, with a fixed AUTH_SECRET and NODE_ENV=production.
 *
 * Nothing is added to the server's code. Memory, event-loop delay and CPU come from its own
 * /metrics (prom-client's defaults); the full GC before each "after GC" heap figure is asked for
 * from outside through the inspector protocol: the process runs with `--inspect=127.0.0.1:0
 * --expose-gc` (as the bench's servers run with `--expose-gc`) and the soak evaluates `gc()` in it,
 * one full mark-compact. (`HeapProfiler.collectGarbage` would do, but it is V8's "collect all
 * available garbage", several full GCs in a row: 0.5–0.9 s on this server under load.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { WebSocket } from 'ws';
import { builtScript, REPO_ROOT } from '../lib/proc.ts';

export interface SoakServerOptions {
  secret: string;
  /** Extra environment (wins over the defaults, except LOG_LEVEL, which stays `info`). */
  env: Record<string, string>;
  /** Start with the inspector (and --expose-gc) so a full GC can be forced. */
  inspect: boolean;
  startTimeoutMs?: number;
}

export interface SoakServer {
  pid: number;
  baseUrl: string;
  wsUrl: string;
  /** Prometheus text of /metrics, parsed (name with labels → value). */
  scrape(): Promise<Map<string, number>>;
  /** Forces a full GC through the inspector; resolves with its wall time in ms (null without the inspector). */
  collectGarbage(): Promise<number | null>;
  /** Log lines at warn and above, by message. */
  warnings: Map<string, number>;
  /** Set when the process exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  output(): string;
  /** SIGTERM (the server drains), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

const OUTPUT_LINES = 100;
const SOAK_METRICS_TOKEN = 'soak-metrics-token-for-a-local-run';

export async function startSoakServer(options: SoakServerOptions): Promise<SoakServer> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    PORT: '0',
    HOST: '127.0.0.1',
    AUTH_SECRET: options.secret,
    // Production serves /metrics only with a token (or METRICS_PUBLIC): the soak scrapes with one.
    METRICS_TOKEN: SOAK_METRICS_TOKEN,
    ...options.env,
    // Always: the port comes from the `listening` line, and warnings are counted.
    LOG_LEVEL: 'info',
  };
  const built = builtScript('src/main.ts');
  const args = [...(options.inspect ? ['--inspect=127.0.0.1:0', '--expose-gc'] : []), ...(built ? [built] : ['--import', 'tsx', 'src/main.ts'])];
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const remember = (line: string) => {
    lines.push(line);
    if (lines.length > OUTPUT_LINES) lines.shift();
  };
  const warnings = new Map<string, number>();
  let port: number | null = null;
  let inspectorUrl: string | null = null;

  createInterface({ input: child.stdout! }).on('line', (line) => {
    remember(line);
    let entry: { level?: number; msg?: string; port?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      return;
    }
    if (entry.msg === 'listening' && typeof entry.port === 'number') port = entry.port;
    if ((entry.level ?? 0) >= 40) warnings.set(entry.msg ?? '?', (warnings.get(entry.msg ?? '?') ?? 0) + 1);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    remember(`[stderr] ${line}`);
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(line);
    if (m) inspectorUrl = m[1]!;
  });

  let closeInspector: () => void = () => undefined;
  const server: SoakServer = {
    pid: child.pid ?? -1,
    baseUrl: '',
    wsUrl: '',
    warnings,
    exit: null,
    output: () => lines.join('\n'),
    scrape: async () => parsePrometheus(await (await fetch(`${server.baseUrl}/metrics`, { headers: { authorization: `Bearer ${SOAK_METRICS_TOKEN}` } })).text()),
    collectGarbage: () => Promise.resolve(null),
    stop: (graceMs = 10_000) => {
      // A process with a debugger attached waits for it to go before exiting.
      closeInspector();
      return stopChild(child, graceMs);
    },
  };
  child.once('exit', (code, signal) => (server.exit = { code, signal }));

  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  while (port === null || (options.inspect && inspectorUrl === null)) {
    if (server.exit) throw new Error(`server exited during start (${server.exit.signal ?? server.exit.code})\n${server.output()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`server did not start within ${options.startTimeoutMs ?? 30_000} ms\n${server.output()}`);
    }
    await sleep(25);
  }
  server.baseUrl = `http://127.0.0.1:${port}`;
  server.wsUrl = `ws://127.0.0.1:${port}/trpc`;
  if (inspectorUrl) {
    const inspector = await connectInspector(inspectorUrl).catch((error: unknown) => {
      child.kill('SIGKILL');
      throw error;
    });
    server.collectGarbage = async () => {
      const t0 = performance.now();
      const result = (await inspector.call('Runtime.evaluate', { expression: 'gc()' })) as { exceptionDetails?: { text: string } };
      if (result.exceptionDetails) throw new Error(`gc() failed in the server: ${result.exceptionDetails.text}`);
      return performance.now() - t0;
    };
    closeInspector = () => inspector.close();
    child.once('exit', closeInspector);
  }
  return server;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** `name{labels} value` lines into a map; comments and blank lines skipped. */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** A minimal Chrome DevTools Protocol client: one call at a time is all the soak needs. */
async function connectInspector(url: string): Promise<{ call(method: string, params?: Record<string, unknown>): Promise<unknown>; close(): void }> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let nextId = 1;
  const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  ws.on('message', (data: Buffer) => {
    const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string } };
    const w = message.id === undefined ? undefined : waiting.get(message.id);
    if (!w) return;
    waiting.delete(message.id!);
    if (message.error) w.reject(new Error(`inspector: ${message.error.message}`));
    else w.resolve(message.result);
  });
  ws.on('close', () => {
    for (const w of waiting.values()) w.reject(new Error('inspector connection closed'));
    waiting.clear();
  });
  ws.on('error', () => undefined);
  return {
    call(method, params) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        waiting.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, ...(params && { params }) }));
      });
    },
    close: () => ws.close(),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
