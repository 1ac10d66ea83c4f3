/**
 * Heap per idle connection with one `conversation.events` subscription, measured on its own
 * (workload C's figure without load generators or the rest of the bench):
 *
 *   npx tsx bench/heap-per-connection.ts [--connections 2000] [--per-room 10] [--runs 3] [--snapshot DIR]
 *
 * Each run starts a fresh server process (this file with --server, run with --expose-gc; the
 * same options as the bench's realtime target), opens and closes a warm-up crowd (so code,
 * compiled schemas and lazily built tables are in the baseline), takes the baseline heap after
 * two full GCs, opens N raw-frame clients (rooms of `per-room`, one subscription each, each
 * waited for until its `subscribed` event arrived), and takes the heap again. Printed: heap per
 * connection = (after − baseline) / N, per run and the median. Rooms are counted in, as in
 * workload C (rooms of 10): a room's own records are a tenth of a connection each.
 *
 * With --snapshot DIR the first run also writes baseline.heapsnapshot and loaded.heapsnapshot
 * into DIR (node:v8 writeHeapSnapshot; diff them with bench/heap-diff.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeHeapSnapshot } from 'node:v8';
import superjson from 'superjson';
import { WebSocket } from 'ws';
import { mintToken } from '../src/auth/tokens.ts';
import { BENCH_LIMITS } from './servers/limits.ts';

const SECRET = 'heap-per-connection-bench-secret-0123456789';

type Command = { cmd: 'memory' } | { cmd: 'snapshot'; path: string } | { cmd: 'connections' };

async function serve(): Promise<void> {
  const { createRealtimeServer } = await import('../src/server.ts');
  const rt = createRealtimeServer({
    authSecret: SECRET,
    env: { LOG_LEVEL: 'silent', NODE_ENV: 'production', AUTH_SECRET: SECRET },
    ...BENCH_LIMITS,
    // The warm-up crowd's presence grace ends before the baseline is taken.
    presenceGraceMs: 100,
  });
  const { port } = await rt.listen(0, '127.0.0.1');
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  process.on('message', async (message: Command & { seq: number }) => {
    let value: unknown;
    switch (message.cmd) {
      case 'memory':
        gc();
        await new Promise((r) => setImmediate(r));
        gc();
        value = process.memoryUsage().heapUsed;
        break;
      case 'snapshot':
        gc();
        await new Promise((r) => setImmediate(r));
        gc();
        value = writeHeapSnapshot(message.path);
        break;
      case 'connections':
        value = rt.getBroadcastStats().connections;
        break;
    }
    process.send!({ seq: message.seq, value });
  });
  process.send!({ seq: 0, value: port });
}

async function drive(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '2000' },
      'per-room': { type: 'string', default: '10' },
      runs: { type: 'string', default: '3' },
      snapshot: { type: 'string' },
      warmup: { type: 'string', default: '200' },
    },
  });
  const n = Number(values.connections);
  const perRoom = Number(values['per-room']);
  const runs = Number(values.runs);
  const warmup = Number(values.warmup);
  const token = (userId: string) => mintToken(SECRET, { userId, conversations: ['*'], expiresIn: '12h' });
  const tokens = await Promise.all(Array.from({ length: n }, (_, i) => token(`h-u${i}`)));
  const warmTokens = await Promise.all(Array.from({ length: warmup }, (_, i) => token(`h-w${i}`)));
  const results: number[] = [];
  for (let run = 0; run < runs; run += 1) {
    const server = new Server();
    const port = await server.ready;
    const url = `ws://127.0.0.1:${port}/trpc?connectionParams=1`;
    const warm = await openAll(url, warmTokens, perRoom, 'w');
    await closeAll(warm);
    await until(async () => (await server.request<number>({ cmd: 'connections' })) === 0);
    await new Promise((r) => setTimeout(r, 500)); // past the presence grace
    const snapshotDir = run === 0 ? values.snapshot : undefined;
    const before = await server.request<number>({ cmd: 'memory' });
    if (snapshotDir) await server.request({ cmd: 'snapshot', path: join(snapshotDir, 'baseline.heapsnapshot') });
    const clients = await openAll(url, tokens, perRoom, 'r');
    const after = await server.request<number>({ cmd: 'memory' });
    if (snapshotDir) await server.request({ cmd: 'snapshot', path: join(snapshotDir, 'loaded.heapsnapshot') });
    const perConnection = (after - before) / n;
    results.push(perConnection);
    console.log(`run ${run + 1}: baseline ${(before / 2 ** 20).toFixed(2)} MiB, with ${n} subscribed connections ${(after / 2 ** 20).toFixed(2)} MiB → ${(perConnection / 1024).toFixed(2)} KiB per connection`);
    await closeAll(clients);
    server.stop();
  }
  const sorted = [...results].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)]!;
  console.log(`heap per idle connection with one subscription (N=${n}, rooms of ${perRoom}, median of ${runs}): ${(median / 1024).toFixed(2)} KiB (${Math.round(median)} B)`);
}

class Server {
  private readonly child: ChildProcess;
  private seq = 0;
  private readonly waiting = new Map<number, (value: unknown) => void>();
  readonly ready: Promise<number>;

  constructor() {
    const file = fileURLToPath(import.meta.url);
    this.child = fork(file, ['--server'], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.ready = new Promise((resolve) => this.waiting.set(0, resolve as (value: unknown) => void));
    this.child.on('message', (message: { seq: number; value: unknown }) => {
      this.waiting.get(message.seq)?.(message.value);
      this.waiting.delete(message.seq);
    });
  }

  request<T>(command: Command): Promise<T> {
    const seq = (this.seq += 1);
    return new Promise<T>((resolve) => {
      this.waiting.set(seq, resolve as (value: unknown) => void);
      this.child.send({ ...command, seq });
    });
  }

  stop(): void {
    this.child.kill();
  }
}

/** Opens one raw-frame client per token, `perRoom` to a room, each resolved once its `subscribed` event arrived. */
async function openAll(url: string, tokens: string[], perRoom: number, tag: string): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  const batch = 100;
  for (let start = 0; start < tokens.length; start += batch) {
    sockets.push(...(await Promise.all(tokens.slice(start, start + batch).map((token, k) => openOne(url, token, `${tag}-room${Math.floor((start + k) / perRoom)}`)))));
  }
  return sockets;
}

function openOne(url: string, token: string, room: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.on('open', () => {
      ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
      ws.send(JSON.stringify({ id: 1, method: 'subscription', params: { input: superjson.serialize({ conversationId: room }), path: 'conversation.events' } }));
    });
    ws.on('message', (data: Buffer) => {
      const text = String(data);
      if (text === 'PING') return ws.send('PONG');
      if (text.includes('"error"')) reject(new Error(`refused: ${text.slice(0, 200)}`));
      else if (text.includes('"subscribed"')) resolve(ws);
    });
    ws.on('error', reject);
  });
}

async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(
    sockets.map((ws) => {
      const closed = once(ws, 'close');
      ws.close();
      return closed;
    }),
  );
}

async function until(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i += 1) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('server did not settle');
}

if (process.argv.includes('--server')) await serve();
else await drive();
