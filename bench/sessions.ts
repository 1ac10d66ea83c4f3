/**
 * A session is a run's processes: the target's server node(s), pinned to the server CPU, and the
 * load generators, pinned to the others. Workloads A–F use one node; G's cluster setups start
 * one or two realtime nodes that share rooms over Redis under a key prefix of their own.
 */
import { randomBytes } from 'node:crypto';
import type { IpcChild } from './lib/ipc.ts';
import { cpuPlan, killAll, spawnChild } from './lib/proc.ts';
import { newKeyPrefix } from './lib/redis-stats.ts';
import type { Target } from './lib/types.ts';
import type { ClusterSetup } from './workloads.ts';

export interface Session {
  target: Target;
  /** Every server node; `server` is the first (the only one outside G's cluster setups). */
  servers: IpcChild[];
  server: IpcChild;
  loadgens: IpcChild[];
  /** One URL per node; `url` is the first. */
  urls: string[];
  url: string;
  secret: string;
  base: bigint;
  /** Nodes over Redis: the session's key prefix and the prefix of its nodes' Redis connection names. */
  cluster: { prefix: string; clientNamePrefix: string } | null;
  /** What belongs to another session (quick mode lends its load generators): reset, not killed. */
  borrowed: 'nothing' | 'loadgens' | 'everything';
}

const SERVER_SCRIPTS: Record<Target, string> = {
  realtime: 'servers/realtime.ts',
  socketio: 'servers/socketio.ts',
  ws: 'servers/ws.ts',
};

function urlFor(target: Target, port: number): string {
  switch (target) {
    case 'realtime':
      return `ws://127.0.0.1:${port}/trpc`;
    case 'socketio':
      return `http://127.0.0.1:${port}`;
    case 'ws':
      return `ws://127.0.0.1:${port}`;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function spawnLoadgens(count: number): IpcChild[] {
  const pins = cpuPlan();
  return Array.from({ length: count }, (_, i) => spawnChild({ name: `loadgen${i}`, script: 'loadgen.ts', cpus: pins.loadgen, heapMb: 6144 }));
}

/** `env`: more for the server process (H: BENCH_PRESENCE_BATCH_MS). */
export async function openSession(target: Target, loadgenCount: number, serverCpus: string | null = cpuPlan().server, env: Record<string, string> = {}): Promise<Session> {
  const secret = randomBytes(32).toString('base64url');
  const base = process.hrtime.bigint();
  const server = spawnChild({ name: `server(${target})`, script: SERVER_SCRIPTS[target], cpus: serverCpus, env: { ...env, BENCH_SECRET: secret }, heapMb: 8192 });
  const loadgens = spawnLoadgens(loadgenCount);
  try {
    const [{ port }] = await Promise.all([server.waitEvent<{ port: number }>('ready'), ...loadgens.map((l) => l.waitEvent('ready'))]);
    const url = urlFor(target, port);
    return { target, servers: [server], server, loadgens, urls: [url], url, secret, base, cluster: null, borrowed: 'nothing' };
  } catch (error) {
    await killAll([server, ...loadgens]);
    throw error;
  }
}

export interface ClusterSessionOptions {
  setup: ClusterSetup;
  redisUrl: string;
  /** `redisUrl` is a seed of a Redis Cluster (the nodes get REDIS_CLUSTER=true). */
  redisCluster?: boolean;
  loadgenCount: number;
  /** CPUs the nodes are pinned to (null: not pinned). */
  cpus: string | null;
  /**
   * Quick mode: the target's shared session. Its load generators are reused, and for the single
   * node without Redis the whole session is.
   */
  lend: Session | null;
}

/** The realtime node(s) of one G setup (measured: all pinned to the server CPU), plus load generators. */
export async function openClusterSession(options: ClusterSessionOptions): Promise<Session> {
  const { setup, redisUrl, lend } = options;
  if (lend && !setup.redis && setup.nodes === 1) return { ...lend, borrowed: 'everything' };
  const secret = lend?.secret ?? randomBytes(32).toString('base64url');
  const base = lend?.base ?? process.hrtime.bigint();
  const tag = `bench-${process.pid}-${randomBytes(3).toString('hex')}`;
  const prefix = setup.redis ? newKeyPrefix() : null;
  const servers = Array.from({ length: setup.nodes }, (_, i) => {
    const env: Record<string, string> = { BENCH_SECRET: secret };
    if (prefix) Object.assign(env, { BENCH_REDIS_URL: redisUrl, BENCH_REDIS_KEY_PREFIX: prefix, NODE_ID: `${tag}-n${i}`, ...(options.redisCluster && { BENCH_REDIS_CLUSTER: 'true' }) });
    return spawnChild({ name: `server(realtime${setup.nodes > 1 ? ` node ${i}` : ''})`, script: SERVER_SCRIPTS.realtime, cpus: options.cpus, env, heapMb: 8192 });
  });
  const loadgens = lend ? lend.loadgens : spawnLoadgens(options.loadgenCount);
  try {
    const [ready] = await Promise.all([Promise.all(servers.map((s) => s.waitEvent<{ port: number }>('ready', 30_000))), ...(lend ? [] : loadgens.map((l) => l.waitEvent('ready')))]);
    const urls = ready.map(({ port }) => urlFor('realtime', port));
    return {
      target: 'realtime',
      servers,
      server: servers[0]!,
      loadgens,
      urls,
      url: urls[0]!,
      secret,
      base,
      // The node's two Redis connections are named rt-<NODE_ID> (src/cluster/cluster.ts).
      cluster: prefix ? { prefix, clientNamePrefix: `rt-${tag}-` } : null,
      borrowed: lend ? 'loadgens' : 'nothing',
    };
  } catch (error) {
    await killAll(lend ? servers : [...servers, ...loadgens]);
    throw error;
  }
}

/** Drops every connection and forgets every counter, for the next workload on the same server. */
export async function resetSession(session: Session): Promise<void> {
  if (!session.servers.every((s) => s.alive)) return;
  await Promise.all(session.loadgens.map((l) => l.request('reset')));
  const deadline = Date.now() + 10_000;
  for (const server of session.servers) {
    while ((await server.request<number>('connections')) > 0 && Date.now() < deadline) await sleep(20);
  }
}

/** Kills what the session owns; what it borrowed is reset for its owner instead. */
export async function closeSession(session: Session): Promise<void> {
  switch (session.borrowed) {
    case 'nothing':
      await killAll([...session.servers, ...session.loadgens]);
      break;
    case 'loadgens':
      await Promise.all(session.loadgens.filter((l) => l.alive).map((l) => l.request('reset')));
      await killAll(session.servers);
      break;
    case 'everything':
      await resetSession(session);
      break;
  }
}
