import { randomUUID } from 'node:crypto';
import superjson from 'superjson';
import type { Logger } from '../logger.ts';
import type { ClusterKeys } from './keys.ts';
import { unavailable, type RedisConnections } from './redis-connection.ts';

/**
 * This node's membership in the cluster: a heartbeat in a sorted set (Redis time, so node clocks
 * do not matter), the detection of dead nodes (whoever removes a silent node from the set first
 * cleans up after it, exactly once), and node-to-node calls over one pub/sub channel per node:
 * requests with replies (admin totals, kicks) and one-way notifications (acks for an owner).
 */

export interface NodeInfo {
  nodeId: string;
  address: string;
  startedAt: number;
  connections: number;
  /** `connections` by transport. */
  connectionsByTransport: { websocket: number; sse: number };
  rooms: number;
  users: number;
  rssBytes: number;
  heapUsedBytes: number;
}

export interface LiveNode extends NodeInfo {
  lastHeartbeat: Date;
}

type Handler = (arg: unknown) => unknown;

interface WireMessage {
  k: 'req' | 'res' | 'note';
  /** request id (req/res) or notification kind (note) */
  id: string;
  from?: string;
  m?: string;
  a?: unknown;
  ok?: boolean;
  v?: unknown;
}

export interface ClusterNodeOptions {
  nodeId: string;
  redis: RedisConnections;
  keys: ClusterKeys;
  heartbeatMs: number;
  nodeTtlMs: number;
  log: Logger;
  /** What this node reports about itself with each heartbeat. */
  describe: () => Omit<NodeInfo, 'nodeId' | 'startedAt'>;
  /** Called once per dead node, on the one node that claimed it. */
  onNodeDead: (nodeId: string) => Promise<void>;
  /**
   * Called when this node (re)enters the live set: after start, after an outage, after being
   * reaped. `storeLost`: Redis lost its data meanwhile (a restart without persistence), which
   * every subscriber learns through `resync`; presence is then restored without announcements.
   */
  onJoined: (change: { storeLost: boolean; wasReaped: boolean }) => Promise<void>;
  /** Runs with each heartbeat (ghost expiry and other periodic cluster chores). */
  onTick?: () => Promise<void>;
}

const HEARTBEAT_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('HSET', KEYS[2], 'info', ARGV[2], 'at', now)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[4]))
local claimed = {}
for _, id in ipairs(dead) do
  if id ~= ARGV[1] and redis.call('ZREM', KEYS[1], id) == 1 then table.insert(claimed, id) end
end
local gen = redis.call('GET', KEYS[3])
if not gen then
  gen = ARGV[5]
  redis.call('SET', KEYS[3], gen)
end
return {added, now, claimed, gen}
`;

const LIVE_SCRIPT = `
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf', 'WITHSCORES')
`;

type Scripted = {
  rtHeartbeat(nodes: string, info: string, generation: string, nodeId: string, infoJson: string, infoTtl: number, nodeTtl: number, newGeneration: string): Promise<[number, number, string[], string]>;
  rtLive(nodes: string, nodeTtl: number): Promise<string[]>;
};

export class ClusterNode {
  readonly nodeId: string;
  readonly startedAt = Date.now();
  private readonly handlers = new Map<string, Handler>();
  private readonly notes = new Map<string, (arg: unknown) => void>();
  private readonly waiting = new Map<string, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly cmd: Scripted;
  private timer: NodeJS.Timeout | null = null;
  private beating = false;
  private firstBeat = true;
  /** The cluster state's generation in Redis; a new one means Redis lost its data. */
  private generation: string | null = null;
  private needsJoin = true;
  private closed = false;
  /**
   * After an outage this node was cut off for `downForMs`, and so, most likely, were the others:
   * until one heartbeat interval past a node TTL, a node counts as dead only when it has missed
   * its heartbeats for that long as well — not merely for the TTL, which the outage alone spans.
   */
  private recovered: { until: number; extraMs: number } | null = null;
  /**
   * Since when heartbeats have been failing with Redis connected (a full Redis refuses the
   * heartbeat's writes): the same for every node, so the first write that succeeds again is
   * treated as the end of an outage of that length (`recovered`).
   */
  private failingSince: number | null = null;
  private readonly offUp: () => void;
  private readonly offDown: () => void;
  /** The node's last successful heartbeat (Redis time), for `nodes`. */
  lastHeartbeat: Date | null = null;

  constructor(private readonly options: ClusterNodeOptions) {
    this.nodeId = options.nodeId;
    const { cmd, sub } = options.redis;
    cmd.defineCommand('rtHeartbeat', { numberOfKeys: 3, lua: HEARTBEAT_SCRIPT });
    cmd.defineCommand('rtLive', { numberOfKeys: 1, lua: LIVE_SCRIPT });
    this.cmd = cmd as unknown as Scripted;
    const channel = options.keys.nodeChannel(this.nodeId);
    // A sharded channel like the rooms': ioredis leaves subscriber mode when the count of shard
    // channels drops to 0, and would then drop a classic SUBSCRIBE's messages (found by chaos).
    sub.on('smessage', (from: string, message: string) => {
      if (from === channel) this.onMessage(message);
    });
    sub.ssubscribe(channel).catch((error: unknown) => options.log.warn({ err: error }, 'node channel subscribe failed; retried on reconnect'));
    this.offUp = options.redis.events.on('up', ({ downForMs }: { downForMs: number }) => {
      this.needsJoin = true;
      this.recovered = { until: Date.now() + options.nodeTtlMs + options.heartbeatMs, extraMs: downForMs };
      void this.beat();
    });
    this.offDown = options.redis.events.on('down', () => {
      for (const [id, w] of this.waiting) {
        clearTimeout(w.timer);
        w.reject(unavailable());
        this.waiting.delete(id);
      }
    });
  }

  start(): void {
    this.timer = setInterval(() => void this.beat(), this.options.heartbeatMs);
    this.timer.unref();
    void this.beat();
  }

  /** Registers a request handler other nodes can call with `call`/`callAll`. */
  handle(method: string, handler: Handler): void {
    this.handlers.set(method, handler);
  }

  /** Registers a receiver of one-way notifications of `kind`. */
  onNotification(kind: string, receiver: (arg: unknown) => void): void {
    this.notes.set(kind, receiver);
  }

  /** Sends a one-way notification to a node (to self: delivered locally). */
  notify(nodeId: string, kind: string, arg: unknown): void {
    if (nodeId === this.nodeId) {
      this.notes.get(kind)?.(arg);
      return;
    }
    this.send(nodeId, { k: 'note', id: kind, a: arg }).catch((error: unknown) => this.options.log.warn({ err: error, nodeId, kind }, 'notification failed'));
  }

  /** Calls `method` on one node and waits for its answer. */
  async call<T>(nodeId: string, method: string, arg: unknown, timeoutMs = 2000): Promise<T> {
    if (nodeId === this.nodeId) return (await this.local(method, arg)) as T;
    this.options.redis.assertAvailable();
    const id = randomUUID();
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`node ${nodeId} did not answer ${method} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
    });
    await this.send(nodeId, { k: 'req', id, from: this.nodeId, m: method, a: arg });
    return (await reply) as T;
  }

  /**
   * Calls `method` on every live node (this one included) and returns the answers of those that
   * answered in time; a node that died a moment ago is logged and left out.
   */
  async callAll<T>(method: string, arg: unknown, timeoutMs = 2000): Promise<Array<{ nodeId: string; value: T }>> {
    const nodes = await this.liveNodeIds();
    if (!nodes.includes(this.nodeId)) nodes.push(this.nodeId);
    const settled = await Promise.allSettled(nodes.map(async (nodeId) => ({ nodeId, value: await this.call<T>(nodeId, method, arg, timeoutMs) })));
    const out: Array<{ nodeId: string; value: T }> = [];
    for (const [i, result] of settled.entries()) {
      if (result.status === 'fulfilled') out.push(result.value);
      else this.options.log.warn({ nodeId: nodes[i], method, err: result.reason as unknown }, 'node left out of a cluster-wide call');
    }
    return out;
  }

  async liveNodeIds(): Promise<string[]> {
    return (await this.liveNodes()).map((n) => n.nodeId);
  }

  /** Every node with a heartbeat within the TTL, with what it last said about itself. */
  async liveNodes(): Promise<LiveNode[]> {
    this.options.redis.assertAvailable();
    const flat = await this.cmd.rtLive(this.options.keys.nodes, this.options.nodeTtlMs);
    const ids: Array<{ nodeId: string; at: number }> = [];
    for (let i = 0; i < flat.length; i += 2) ids.push({ nodeId: flat[i]!, at: Number(flat[i + 1]) });
    if (ids.length === 0) return [];
    const pipeline = this.options.redis.cmd.pipeline();
    for (const { nodeId } of ids) pipeline.hget(this.options.keys.nodeInfo(nodeId), 'info');
    const infos = (await pipeline.exec()) ?? [];
    return ids.map(({ nodeId, at }, i) => {
      const raw = infos[i]?.[1];
      const info = typeof raw === 'string' ? (JSON.parse(raw) as NodeInfo) : undefined;
      return {
        nodeId,
        address: info?.address ?? '',
        startedAt: info?.startedAt ?? at,
        connections: info?.connections ?? 0,
        // A node of an older version says nothing about transports: all its connections were WebSockets.
        connectionsByTransport: {
          websocket: info?.connectionsByTransport?.websocket ?? info?.connections ?? 0,
          sse: info?.connectionsByTransport?.sse ?? 0,
        },
        rooms: info?.rooms ?? 0,
        users: info?.users ?? 0,
        rssBytes: info?.rssBytes ?? 0,
        heapUsedBytes: info?.heapUsedBytes ?? 0,
        lastHeartbeat: new Date(at),
      };
    });
  }

  /**
   * Leaves the cluster: the heartbeat is set to the distant past, so the next survivor to beat
   * claims this node at once and does the usual clean-up (its users become ghosts for the
   * presence grace, which is what lets clients of a draining node move without leave/join noise).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.offUp();
    this.offDown();
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    if (this.options.redis.available) {
      await this.options.redis.cmd.zadd(this.options.keys.nodes, 'XX', 0, this.nodeId).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- internals

  private async beat(): Promise<void> {
    if (this.beating || this.closed || !this.options.redis.available) return;
    this.beating = true;
    if (this.failingSince !== null) {
      const now = Date.now();
      this.recovered = { until: now + this.options.nodeTtlMs + this.options.heartbeatMs, extraMs: Math.max(this.recovered?.extraMs ?? 0, now - this.failingSince) };
    }
    try {
      const info: NodeInfo = { nodeId: this.nodeId, startedAt: this.startedAt, ...this.options.describe() };
      const [added, now, claimed, generation] = await this.cmd.rtHeartbeat(
        this.options.keys.nodes,
        this.options.keys.nodeInfo(this.nodeId),
        this.options.keys.generation,
        this.nodeId,
        JSON.stringify(info),
        this.options.nodeTtlMs * 2,
        this.deadAfterMs(),
        randomUUID(),
      );
      this.lastHeartbeat = new Date(Number(now));
      if (this.failingSince !== null) {
        this.options.log.warn({ failedForMs: Date.now() - this.failingSince }, 'heartbeats work again');
        this.failingSince = null;
      }
      if (this.firstBeat && added === 0) {
        // A previous process with this NODE_ID died without being cleaned up yet: its entries
        // are ours by name but not by fact. Clean up after it before claiming anything.
        this.options.log.warn('a previous process with this NODE_ID left state behind; cleaning up after it');
        await this.options.onNodeDead(this.nodeId);
      }
      this.firstBeat = false;
      const storeLost = this.generation !== null && this.generation !== generation;
      // Back in the set although this node never left: a survivor took it for dead meanwhile.
      const wasReaped = added === 1 && this.generation !== null && !storeLost;
      this.generation = generation;
      if (added === 1 || this.needsJoin || storeLost) {
        this.needsJoin = false;
        if (storeLost) this.options.log.warn('Redis lost the cluster state (restarted empty?); restoring this node’s presence');
        if (wasReaped) this.options.log.warn('this node was taken for dead while cut off; re-asserting its presence');
        await this.options.onJoined({ storeLost, wasReaped });
      }
      for (const dead of claimed) {
        this.options.log.warn({ deadNode: dead }, 'node missed its heartbeats; cleaning up after it');
        await this.options.onNodeDead(dead).catch((error: unknown) => this.options.log.error({ err: error, deadNode: dead }, 'cleanup after dead node failed'));
      }
      await this.options.onTick?.();
    } catch (error) {
      this.needsJoin = true;
      // Once per failing stretch (a full Redis fails every beat): then once when it works again.
      if (this.failingSince === null) this.options.log.warn({ err: error }, 'heartbeat failed');
      this.failingSince ??= Date.now();
    } finally {
      this.beating = false;
    }
  }

  /** How long without a heartbeat before a node is claimed dead (see `recovered`). */
  private deadAfterMs(): number {
    if (this.recovered && Date.now() < this.recovered.until) return this.options.nodeTtlMs + this.recovered.extraMs;
    this.recovered = null;
    return this.options.nodeTtlMs;
  }

  private async send(nodeId: string, message: WireMessage): Promise<void> {
    await this.options.redis.cmd.spublish(this.options.keys.nodeChannel(nodeId), superjson.stringify(message));
  }

  private async local(method: string, arg: unknown): Promise<unknown> {
    const handler = this.handlers.get(method);
    if (!handler) throw new Error(`no cluster handler for ${method}`);
    return await handler(arg);
  }

  private onMessage(raw: string): void {
    let message: WireMessage;
    try {
      message = superjson.parse<WireMessage>(raw);
    } catch {
      return;
    }
    if (message.k === 'note') {
      try {
        this.notes.get(message.id)?.(message.a);
      } catch (error) {
        this.options.log.warn({ err: error, kind: message.id }, 'notification handler failed');
      }
      return;
    }
    if (message.k === 'res') {
      const w = this.waiting.get(message.id);
      if (!w) return;
      this.waiting.delete(message.id);
      clearTimeout(w.timer);
      if (message.ok) w.resolve(message.v);
      else w.reject(new Error(String(message.v)));
      return;
    }
    if (message.k === 'req' && message.from && message.m) {
      const { from, id } = message;
      this.local(message.m, message.a).then(
        (v) => this.send(from, { k: 'res', id, ok: true, v }),
        (error: unknown) => this.send(from, { k: 'res', id, ok: false, v: error instanceof Error ? error.message : String(error) }),
      ).catch(() => undefined);
    }
  }
}
