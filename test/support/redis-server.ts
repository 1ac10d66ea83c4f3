import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { describe } from 'vitest';

/**
 * Redis for cluster tests: where the shared Redis is, whether it answers, a key prefix per test
 * and its cleanup, and a throwaway `redis-server` of a test's own for outage tests.
 */

/** The shared Redis of cluster tests: `REDIS_URL`, or the local default. */
export const REDIS_URL: string = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** True when a PING to `url` is answered within about half a second. Never throws. */
export async function redisReachable(url: string = REDIS_URL): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 500,
    commandTimeout: 500,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => undefined); // reported through the rejected connect/ping below
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Whether the shared Redis answered when this module was loaded. */
export const redisAvailable: boolean = await redisReachable(REDIS_URL);

if (!redisAvailable) process.stderr.write(`cluster tests skipped: no Redis reachable at ${REDIS_URL} (set REDIS_URL)\n`);

/** `describe` when the shared Redis is reachable, `describe.skip` otherwise. */
export const describeWithRedis = describe.skipIf(!redisAvailable);

/**
 * A key prefix no other test (or run) shares, e.g. `test:fanout:4242-9f3a1c0b:`. The label is
 * limited so the prefix stays a valid REDIS_KEY_PREFIX (1–64 of A-Z a-z 0-9 : _ . -).
 */
export function uniquePrefix(label: string): string {
  if (!/^[A-Za-z0-9_.-]{1,32}$/.test(label)) throw new Error(`uniquePrefix: label ${JSON.stringify(label)} must be 1–32 of A-Z a-z 0-9 _ . -`);
  return `test:${label}:${process.pid}-${randomBytes(4).toString('hex')}:`;
}

/** Deletes every key starting with `prefix` (SCAN + UNLINK, page by page); returns how many. */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  if (prefix === '') throw new Error('deleteKeys: refusing an empty prefix (it would delete every key)');
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 2000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const match = `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`;
    let cursor = '0';
    let deleted = 0;
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', match, 'COUNT', 500);
      if (keys.length > 0) deleted += await client.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    return deleted;
  } finally {
    client.disconnect();
  }
}

// ---- A throwaway redis-server

export interface TestRedisServer extends AsyncDisposable {
  port: number;
  url: string;
  /** Hard stop (SIGKILL, as in a crash); resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
  /** Starts it again on the same port; resolves once it answers PING. */
  start(): Promise<void>;
  /** The last lines redis-server printed, for error messages. */
  output(): string;
}

/**
 * A `redis-server` of this test's own on a free port, so a test can take Redis away and bring it
 * back: `await using redis = await startRedisServer()`. Without persistence by default (it comes
 * back empty); `persistent: true` keeps its data across stop/start in an append-only file synced
 * on every write (an outage without data loss, such as a network cut).
 */
export async function startRedisServer({ startTimeoutMs = 10_000, persistent = false } = {}): Promise<TestRedisServer> {
  const lines: string[] = [];
  const dir = persistent ? mkdtempSync(path.join(tmpdir(), 'rt-redis-')) : tmpdir();
  const persistence = persistent ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  const spawnOn = async (port: number): Promise<void> => {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child = proc;
    liveChildren.add(proc);
    for (const stream of [proc.stdout, proc.stderr]) {
      createInterface({ input: stream! }).on('line', (line) => {
        lines.push(line);
        if (lines.length > 200) lines.shift();
      });
    }
    const gone = once(proc, 'close').catch(() => undefined);
    exited = gone.then(() => {
      liveChildren.delete(proc);
    });
    const spawnError = once(proc, 'error').then(([error]) => {
      throw new Error(`redis-server could not be started: ${String(error)}`);
    });
    const died = gone.then(() => {
      throw new Error(`redis-server on port ${port} exited during start (code ${proc.exitCode}, signal ${proc.signalCode})\n${lines.join('\n')}`);
    });
    try {
      await Promise.race([waitForPing(`redis://127.0.0.1:${port}`, startTimeoutMs, () => lines.join('\n')), spawnError, died]);
    } catch (error) {
      proc.kill('SIGKILL');
      await exited;
      throw error;
    } finally {
      spawnError.catch(() => undefined);
      died.catch(() => undefined);
    }
  };

  // Another process may take the free port before redis-server binds it: try a few.
  let port = 0;
  for (let attempt = 1; ; attempt += 1) {
    port = await freePort();
    try {
      await spawnOn(port);
      break;
    } catch (error) {
      if (attempt >= 3 || !lines.some((l) => l.includes('Address already in use'))) throw error;
    }
  }

  const stop = async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };
  const dispose = async () => {
    await stop();
    if (persistent) rmSync(dir, { recursive: true, force: true });
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    async start() {
      await stop();
      await spawnOn(port);
    },
    output: () => lines.join('\n'),
    [Symbol.asyncDispose]: dispose,
  };
}

/** A TCP port nothing listens on right now (bind to 0, read it, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('freePort: no TCP address');
  return address.port;
}

async function waitForPing(url: string, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await redisReachable(url))) {
    if (Date.now() > deadline) throw new Error(`redis-server at ${url} did not answer PING within ${timeoutMs} ms\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Children still running when the test process exits are killed, so none outlive a crashed run. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const proc of liveChildren) proc.kill('SIGKILL');
});
