import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mintToken, type MintOptions } from '../../src/auth/tokens.ts';
import { envSchema } from '../../src/config.ts';
import { nodeArgsFor } from './built.ts';
import { deleteKeys, REDIS_URL, redisReachable, uniquePrefix } from './redis-server.ts';
import { TEST_SECRET } from './start-test-app.ts';
import type { TestRedisCluster } from './redis-cluster.ts';

export { deleteKeys, describeWithRedis, REDIS_URL, redisAvailable, redisReachable, startRedisServer, uniquePrefix } from './redis-server.ts';
export type { TestRedisServer } from './redis-server.ts';
export { startRedisCluster, type TestRedisCluster } from './redis-cluster.ts';
export { REDIS_BACKENDS, useRedisBackend } from './redis-backends.ts';

/**
 * Multi-process cluster tests: each node is a real server process (src/main.ts, from the run's
 * build — see built.ts) on 127.0.0.1 and an ephemeral port, found by reading its `listening` log line.
 * `await using cluster = await startCluster({ nodes: 3, label: 'fanout' })` stops every node and
 * deletes the cluster's Redis keys, also when the test fails.
 */

const PROJECT_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Lines of output kept per node for error messages. */
const OUTPUT_LINES = 200;

/** How long stop() waits after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 5000;

/**
 * Test defaults for every node, like startTestApp's: no presence grace and a short drain, so a
 * stop with clients still connected takes a fraction of a second. `env` options override them.
 */
const NODE_DEFAULTS: Record<string, string> = {
  PRESENCE_GRACE_MS: '0',
  // Single presence events (as startTestApp): the batching's own tests set PRESENCE_BATCH_MS.
  PRESENCE_BATCH_MS: '0',
  SHUTDOWN_DRAIN_MS: '200',
};

export interface NodeExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One server process. */
export interface ClusterNode extends AsyncDisposable {
  nodeId: string;
  port: number;
  /** `http://127.0.0.1:<port>` */
  baseUrl: string;
  /** `ws://127.0.0.1:<port>/trpc` */
  wsUrl: string;
  pid: number;
  /** Sends `signal` (default SIGTERM) and returns at once; await `exited` to see it go. */
  kill(signal?: NodeJS.Signals): void;
  /** Resolves when the process has exited and its output is read to the end. */
  exited: Promise<NodeExit>;
  /** SIGTERM (a graceful drain), SIGKILL after 5 s; resolves once it has exited. Idempotent. */
  stop(): Promise<void>;
  /** The node's last 200 lines of output (stdout pino JSON, stderr lines prefixed `[stderr]`). */
  output(): string;
}

export interface StartNodeOptions {
  /** NODE_ID; a unique one by default. */
  nodeId?: string;
  /** REDIS_URL; none by default (a single-node process). */
  redisUrl?: string;
  /** REDIS_KEY_PREFIX. */
  prefix?: string;
  /** More environment (CLUSTER_HEARTBEAT_MS, PRESENCE_GRACE_MS, …); wins over everything else. */
  env?: Record<string, string>;
  /** How long to wait for the `listening` line (and /readyz); default 15 s. */
  startTimeoutMs?: number;
  /** Also wait until GET /readyz answers 200 (default true). */
  waitForReady?: boolean;
}

let nodeCounter = 0;

/**
 * Starts one server process and resolves once it listens (and, by default, is ready). A node
 * that exits or stays silent fails the start with its last output; it is never left running.
 */
export async function startNode(options: StartNodeOptions = {}): Promise<ClusterNode> {
  const { redisUrl, prefix, startTimeoutMs = 15_000, waitForReady = true } = options;
  nodeCounter += 1;
  const nodeId = options.nodeId ?? `node-${process.pid}-${nodeCounter}`;
  const env: NodeJS.ProcessEnv = {
    ...inheritedEnv(),
    ...NODE_DEFAULTS,
    PORT: '0',
    HOST: '127.0.0.1',
    AUTH_SECRET: TEST_SECRET,
    NODE_ID: nodeId,
    LOG_LEVEL: 'info',
    ...(redisUrl !== undefined && { REDIS_URL: redisUrl }),
    ...(prefix !== undefined && { REDIS_KEY_PREFIX: prefix }),
    ...options.env,
  };

  const child = spawn(process.execPath, nodeArgsFor('src/main.ts'), { cwd: PROJECT_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  liveChildren.add(child);
  const lines: string[] = [];
  const remember = (line: string) => {
    lines.push(line);
    if (lines.length > OUTPUT_LINES) lines.shift();
  };
  const output = () => lines.join('\n');

  let onListening: (port: number) => void = () => undefined;
  const listening = new Promise<number>((resolve) => (onListening = resolve));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    remember(line);
    const port = listeningPort(line);
    if (port !== undefined) onListening(port);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => remember(`[stderr] ${line}`));

  // 'close' comes after 'exit' once stdout and stderr are drained, so output() is complete.
  const exited = new Promise<NodeExit>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });
  const spawnFailed = new Promise<never>((_, reject) => child.once('error', reject));
  spawnFailed.catch(() => undefined);

  const kill = (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      kill('SIGTERM');
      const timer = setTimeout(() => kill('SIGKILL'), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    })());

  const describeNode = () => `node ${nodeId} (pid ${child.pid ?? 'none'})`;
  const deadline = Date.now() + startTimeoutMs;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${describeNode()} did not start within ${startTimeoutMs} ms`)), startTimeoutMs);
  });
  const startDone = new AbortController();
  const exitedEarly = exited.then(({ code, signal }): never => {
    throw new Error(`${describeNode()} exited during start (code ${code}, signal ${signal})`);
  });
  try {
    const port = await Promise.race([listening, exitedEarly, timedOut, spawnFailed]);
    const baseUrl = `http://127.0.0.1:${port}`;
    if (waitForReady) await Promise.race([untilReady(baseUrl, deadline, startDone.signal), exitedEarly, timedOut]);
    return {
      nodeId,
      port,
      baseUrl,
      wsUrl: `ws://127.0.0.1:${port}/trpc`,
      pid: child.pid!,
      kill,
      exited,
      stop,
      output,
      [Symbol.asyncDispose]: stop,
    };
  } catch (error) {
    kill('SIGKILL');
    if (child.pid !== undefined) await exited;
    throw new Error(`${(error as Error).message}\n--- last output of ${nodeId} ---\n${output()}`, { cause: error });
  } finally {
    clearTimeout(timer);
    startDone.abort();
    exitedEarly.catch(() => undefined);
    timedOut.catch(() => undefined);
  }
}

export interface TestCluster extends AsyncDisposable {
  /** The running nodes, in start order (n1, n2, …); addNode appends. */
  nodes: ClusterNode[];
  /** The REDIS_KEY_PREFIX every node of this cluster shares. */
  prefix: string;
  redisUrl: string;
  /** A token signed with TEST_SECRET for `userId`, all conversations unless given. */
  token(userId: string, options?: Omit<MintOptions, 'userId'>): Promise<string>;
  /** Starts one more node (`<label>-n<k>`) with the cluster's env plus `env`. */
  addNode(env?: Record<string, string>): Promise<ClusterNode>;
  /** Stops every node in parallel, then deletes the prefix's keys. Idempotent. */
  close(): Promise<void>;
}

export interface StartClusterOptions {
  nodes: number;
  /** Names the nodes (`<label>-n1`, …) and the key prefix. */
  label: string;
  /** Default: REDIS_URL. */
  redisUrl?: string;
  /** Run the nodes on this Redis Cluster (REDIS_CLUSTER=true, its seed as REDIS_URL) instead. */
  redisCluster?: TestRedisCluster;
  /** Passed to every node (CLUSTER_HEARTBEAT_MS, CLUSTER_NODE_TTL_MS, PRESENCE_GRACE_MS, …). */
  env?: Record<string, string>;
  startTimeoutMs?: number;
}

/**
 * `nodes` server processes sharing one Redis and a fresh key prefix, started in parallel. When any
 * node fails to start, the others are stopped and the keys deleted before the error is thrown.
 */
export async function startCluster(options: StartClusterOptions): Promise<TestCluster> {
  const { label, redisCluster, env: givenEnv = {}, startTimeoutMs } = options;
  const redisUrl = redisCluster?.url ?? options.redisUrl ?? REDIS_URL;
  const clusterEnv = redisCluster ? { REDIS_CLUSTER: 'true', ...givenEnv } : givenEnv;
  const prefix = uniquePrefix(label);
  const nodes: ClusterNode[] = [];
  const starting = new Set<Promise<ClusterNode>>();
  let started = 0;

  const addNode = async (env: Record<string, string> = {}) => {
    started += 1;
    const start = startNode({
      nodeId: `${label}-n${started}`,
      redisUrl,
      prefix,
      env: { ...clusterEnv, ...env },
      ...(startTimeoutMs !== undefined && { startTimeoutMs }),
    });
    starting.add(start);
    try {
      const node = await start;
      nodes.push(node);
      return node;
    } finally {
      starting.delete(start);
    }
  };

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await Promise.allSettled(starting); // a node still starting is stopped too
      await Promise.all(nodes.map((node) => node.stop()));
      try {
        await (redisCluster ? redisCluster.deleteKeys(prefix) : deleteKeys(redisUrl, prefix));
      } catch (error) {
        // A test that took its own Redis away has nothing left to clean; anything else is a leak.
        if (await redisReachable(redisUrl)) throw error;
      }
    })());

  const cluster: TestCluster = {
    nodes,
    prefix,
    redisUrl,
    token: (userId, opts = {}) => mintToken(TEST_SECRET, { conversations: ['*'], ...opts, userId }),
    addNode,
    close,
    [Symbol.asyncDispose]: close,
  };

  const results = await Promise.allSettled(Array.from({ length: options.nodes }, () => addNode()));
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) {
    await close();
    throw failed.reason;
  }
  // Parallel starts finish in any order; keep nodes[i] = n(i+1).
  nodes.sort((a, b) => nodeIndex(a) - nodeIndex(b));
  return cluster;
}

function nodeIndex(node: ClusterNode): number {
  return Number(/-n(\d+)$/.exec(node.nodeId)?.[1] ?? 0);
}

/** The port of a pino `listening` line, or undefined for any other line. */
function listeningPort(line: string): number | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const record = JSON.parse(line) as { msg?: unknown; port?: unknown };
    return record.msg === 'listening' && typeof record.port === 'number' ? record.port : undefined;
  } catch {
    return undefined;
  }
}

/** Polls GET /readyz until it answers 200; fails at `deadline` with the last answer. */
async function untilReady(baseUrl: string, deadline: number, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    const response = await fetch(`${baseUrl}/readyz`, { signal }).catch((error: unknown) => error as Error);
    const last = response instanceof Response ? `${response.status} ${await response.text()}` : String(response);
    if (response instanceof Response && response.status === 200) return;
    if (Date.now() > deadline) throw new Error(`listening on ${baseUrl} but not ready in time: GET /readyz answered ${last}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * This process's environment without anything the server reads as configuration (the test
 * runner's LOG_LEVEL, a REDIS_URL meant for tests, NODE_ENV=test, …): every node starts from the
 * server's defaults plus exactly what the test gives it.
 */
function inheritedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key in envSchema.shape || /^(REDIS_|CLUSTER_|NODE_ID$)/.test(key)) delete env[key];
  }
  return env;
}

/** Nodes still running when the test process exits are killed, so none outlive a crashed run. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});
