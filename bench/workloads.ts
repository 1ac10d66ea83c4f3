/**
 * The workloads (A–H, S) and their sizes, full and quick, and how each one's connections are
 * spread over load-generator processes (and, for G, over server nodes).
 */
import type { ConnSpec, Target } from './lib/types.ts';

export const WORKLOADS = ['A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'S'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface Sizes {
  /** Warm-up before each measured phase, and the measured phase itself. */
  warmupMs: number;
  measureMs: number;
  /** Cap on messages per sender per phase (quick mode: tiny, deterministic runs). */
  maxMessages?: number;
  /** Load-generator processes for receivers (small / large workloads); senders get their own. */
  receiverProcs: number;
  bigReceiverProcs: number;
  /** Connections opened at once per load generator. */
  connectBatch: number;
  /** Settling after connecting: poll interval (two quiet polls in a row end it). */
  settlePollMs: number;
  A: { receivers: number; window: number };
  B: { receivers: number; rates: number[] };
  C: { rooms: number; perRoom: number };
  D: { rooms: number; perRoom: number; senders: number; window: number };
  E: { receivers: number; concurrency: number };
  F: { total: number; hotReceivers: number; idlePerRoom: number; rate: number };
  /** Cluster fan-out: one room split over the nodes, one sender per node; A's flood, then B's fixed rate. */
  G: { receivers: number; window: number; rate: number; setups: readonly ClusterSetup[] };
  /** Presence storm: `members` join one room within `spreadMs`, on a server per batching variant. */
  H: { members: number; spreadMs: number; variants: readonly PresenceVariant[] };
  /** Fan-out over SSE against WebSocket: one room, A's flood then B's fixed rate, per subscriber transport. */
  S: { receivers: number; window: number; rate: number; variants: readonly TransportVariant[] };
}

/** How S's receivers subscribe; every run measures both, in this order, each on a fresh server. */
export interface TransportVariant {
  /** Receivers over HTTP: SSE (this service), long-polling (Socket.IO); otherwise WebSocket. */
  http: boolean;
}

export const TRANSPORT_VARIANTS: readonly TransportVariant[] = [{ http: true }, { http: false }];

/** The case's variant: what the subscribers speak, in the target's own terms. */
export function transportLabel(target: Target, v: TransportVariant): string {
  if (!v.http) return 'WebSocket';
  return target === 'socketio' ? 'long-polling' : 'SSE';
}

/** One server setting H is measured with; every run measures all of them, in this order. */
export interface PresenceVariant {
  label: string;
  /** PRESENCE_BATCH_MS; null = the default. */
  batchMs: number | null;
}

/** Batching as shipped, then switched off (every change its own event: the behaviour before issue 13). */
export const PRESENCE_VARIANTS: readonly PresenceVariant[] = [
  { label: 'PRESENCE_BATCH_MS default (50)', batchMs: null },
  { label: 'PRESENCE_BATCH_MS=0 (before)', batchMs: 0 },
];

/** Workloads some targets do not run, and why (null: the target runs it). */
const NOT_RUN: Partial<Record<Workload, Partial<Record<Target, string>>>> = {
  G: { socketio: 'it runs only against this service (cluster mode)', ws: 'it runs only against this service (cluster mode)' },
  H: {
    socketio: 'Socket.IO and plain ws have no presence (an application builds its own on top), so there is no presence storm to measure',
    ws: 'Socket.IO and plain ws have no presence (an application builds its own on top), so there is no presence storm to measure',
  },
  S: { ws: 'plain ws has no transport but the WebSocket (nothing to set beside SSE)' },
};

export function notRunReason(workload: Workload, target: Target): string | null {
  return NOT_RUN[workload]?.[target] ?? null;
}

/** One server setup G is measured on; every run measures all of them, in this order. */
export interface ClusterSetup {
  /** Shown as the case's variant. */
  label: string;
  nodes: number;
  /** Nodes share rooms over Redis (REDIS_URL); without it, one node with the in-process broker. */
  redis: boolean;
}

const ONE_NODE: ClusterSetup = { label: '1 node', nodes: 1, redis: false };
const ONE_NODE_REDIS: ClusterSetup = { label: '1 node over Redis', nodes: 1, redis: true };
const TWO_NODES_REDIS: ClusterSetup = { label: '2 nodes over Redis', nodes: 2, redis: true };

/** Every setup, in report order; the first is the baseline the others are compared with. */
export const CLUSTER_SETUPS: readonly ClusterSetup[] = [ONE_NODE, ONE_NODE_REDIS, TWO_NODES_REDIS];

export const FULL: Sizes = {
  warmupMs: 1000,
  measureMs: 5000,
  receiverProcs: 2,
  bigReceiverProcs: 4,
  connectBatch: 100,
  settlePollMs: 250,
  A: { receivers: 1000, window: 16 },
  B: { receivers: 1000, rates: [50, 100, 200] },
  C: { rooms: 1000, perRoom: 10 },
  D: { rooms: 100, perRoom: 10, senders: 10, window: 4 },
  E: { receivers: 1000, concurrency: 4 },
  F: { total: 20_000, hotReceivers: 1000, idlePerRoom: 10, rate: 100 },
  G: { receivers: 1000, window: 8, rate: 100, setups: CLUSTER_SETUPS },
  H: { members: 1000, spreadMs: 2000, variants: PRESENCE_VARIANTS },
  S: { receivers: 1000, window: 16, rate: 100, variants: TRANSPORT_VARIANTS },
};

export const QUICK: Sizes = {
  warmupMs: 100,
  measureMs: 400,
  maxMessages: 50,
  receiverProcs: 1,
  bigReceiverProcs: 1,
  connectBatch: 50,
  settlePollMs: 60,
  A: { receivers: 20, window: 4 },
  B: { receivers: 20, rates: [50, 100, 200] },
  C: { rooms: 10, perRoom: 5 },
  D: { rooms: 5, perRoom: 4, senders: 2, window: 2 },
  E: { receivers: 20, concurrency: 2 },
  F: { total: 200, hotReceivers: 20, idlePerRoom: 10, rate: 100 },
  // Quick: the baseline and the two nodes only (each realtime node takes seconds to start).
  G: { receivers: 20, window: 2, rate: 100, setups: [ONE_NODE, TWO_NODES_REDIS] },
  H: { members: 120, spreadMs: 300, variants: PRESENCE_VARIANTS },
  S: { receivers: 20, window: 4, rate: 100, variants: TRANSPORT_VARIANTS },
};

export interface Plan {
  /** Connections per load-generator process; process 0 holds the senders when `senderProc`. */
  procs: ConnSpec[][];
  /** Recipients of one message sent to each room. */
  recipients: Map<string, number>;
  connections: number;
  rooms: number;
  ackMode: boolean;
  description: string;
}

function spread(conns: ConnSpec[], procs: number): ConnSpec[][] {
  const out: ConnSpec[][] = Array.from({ length: procs }, () => []);
  conns.forEach((c, i) => out[i % procs]!.push(c));
  return out;
}

/** One room of `receivers` plus one sender that is also subscribed (and excluded from its own messages). */
function oneRoom(tag: string, receivers: number, procs: number): { procs: ConnSpec[][]; recipients: Map<string, number> } {
  const room = `${tag}-room`;
  const recv: ConnSpec[] = Array.from({ length: receivers }, (_, i) => ({ i, user: `${tag}-u${i}`, room }));
  const sender: ConnSpec = { i: receivers, user: `${tag}-sender`, room, sender: { index: 0, rooms: [room] } };
  return { procs: [[sender], ...spread(recv, procs)], recipients: new Map([[room, receivers]]) };
}

/**
 * @param maxOpenFiles the per-process open-files limit: F is capped below it, since one server
 *   process must hold every socket.
 */
export function planFor(workload: Workload, sizes: Sizes, maxOpenFiles: number): Plan {
  switch (workload) {
    case 'A': {
      const p = oneRoom('a', sizes.A.receivers, sizes.receiverProcs);
      return { ...p, connections: sizes.A.receivers + 1, rooms: 1, ackMode: false, description: `flood: 1 sender, one room of ${sizes.A.receivers} receivers, ${sizes.A.window} sends in flight` };
    }
    case 'B': {
      const p = oneRoom('b', sizes.B.receivers, sizes.receiverProcs);
      return { ...p, connections: sizes.B.receivers + 1, rooms: 1, ackMode: false, description: `fixed rates ${sizes.B.rates.join(', ')} msgs/s: 1 sender, one room of ${sizes.B.receivers} receivers` };
    }
    case 'C': {
      const { rooms, perRoom } = sizes.C;
      const conns: ConnSpec[] = [];
      const recipients = new Map<string, number>();
      for (let r = 0; r < rooms; r += 1) {
        const room = `c-room${r}`;
        recipients.set(room, perRoom - 1);
        for (let k = 0; k < perRoom; k += 1) {
          const i = r * perRoom + k;
          conns.push({ i, user: `c-u${i}`, room, ...(k === 0 && { sender: { index: r, rooms: [room] } }) });
        }
      }
      return { procs: spread(conns, sizes.bigReceiverProcs), recipients, connections: rooms * perRoom, rooms, ackMode: false, description: `${rooms * perRoom} connections in ${rooms} rooms of ${perRoom}; one message per room for the loss check` };
    }
    case 'D': {
      const { rooms, perRoom, senders, window } = sizes.D;
      const roomNames = Array.from({ length: rooms }, (_, r) => `d-room${r}`);
      const recv: ConnSpec[] = [];
      const recipients = new Map<string, number>();
      roomNames.forEach((room, r) => {
        recipients.set(room, perRoom);
        for (let k = 0; k < perRoom; k += 1) recv.push({ i: r * perRoom + k, user: `d-u${r * perRoom + k}`, room });
      });
      const send: ConnSpec[] = Array.from({ length: senders }, (_, s) => ({ i: rooms * perRoom + s, user: `d-sender${s}`, room: null, sender: { index: s, rooms: roomNames } }));
      return {
        procs: [send, ...spread(recv, sizes.receiverProcs)],
        recipients,
        connections: rooms * perRoom + senders,
        rooms,
        ackMode: false,
        description: `${rooms} rooms of ${perRoom}; ${senders} senders (not members) flooding, a random room per message, ${window} in flight each`,
      };
    }
    case 'E': {
      const p = oneRoom('e', sizes.E.receivers, sizes.receiverProcs);
      return { ...p, connections: sizes.E.receivers + 1, rooms: 1, ackMode: true, description: `acknowledged broadcast: 1 sender, one room of ${sizes.E.receivers} receivers that ack every message, ${sizes.E.concurrency} reports awaited at once` };
    }
    case 'F': {
      const { hotReceivers, idlePerRoom, rate } = sizes.F;
      // One server process holds every socket: stay below its open-files limit.
      const total = Math.min(sizes.F.total, Number.isFinite(maxOpenFiles) ? Math.floor((maxOpenFiles - 500) / 500) * 500 : sizes.F.total);
      const hot = oneRoom('f', hotReceivers, sizes.bigReceiverProcs);
      const idle: ConnSpec[] = [];
      const idleCount = total - hotReceivers - 1;
      let rooms = 1;
      for (let k = 0; k < idleCount; k += 1) {
        const r = Math.floor(k / idlePerRoom);
        rooms = Math.max(rooms, r + 2);
        idle.push({ i: hotReceivers + 1 + k, user: `f-idle${k}`, room: `f-idle-room${r}` });
      }
      const idleSpread = spread(idle, sizes.bigReceiverProcs);
      const procs = hot.procs.map((p, i) => (i === 0 ? p : [...p, ...idleSpread[i - 1]!]));
      return {
        procs,
        recipients: hot.recipients,
        connections: total,
        rooms,
        ackMode: false,
        description: `${total.toLocaleString('en-US')} connections: one hot room of ${hotReceivers} receivers at ${rate} msgs/s, the rest idle in rooms of ${idlePerRoom}`,
      };
    }
    case 'H': {
      // Members only (no sender): each keeps a presence view; they join on the orchestrator's schedule.
      const { members } = sizes.H;
      const room = 'h-room';
      const conns: ConnSpec[] = Array.from({ length: members }, (_, i) => ({ i, user: `h-u${String(i).padStart(5, '0')}`, room }));
      return {
        procs: spread(conns, sizes.receiverProcs),
        recipients: new Map([[room, members]]),
        connections: members,
        rooms: 1,
        ackMode: false,
        description: `presence storm: ${members.toLocaleString('en-US')} members, sockets open, join one room within ${sizes.H.spreadMs / 1000} s (a room coming back after a deploy); each keeps a presence view (snapshot, pages, single events, diffs)`,
      };
    }
    case 'S': {
      // A's room (same sender, same spread over processes); the variant decides the receivers' transport.
      const { receivers, window, rate } = sizes.S;
      const p = oneRoom('s', receivers, sizes.receiverProcs);
      return {
        ...p,
        connections: receivers + 1,
        rooms: 1,
        ackMode: false,
        description:
          `one room of ${receivers.toLocaleString('en-US')} receivers subscribed over HTTP (SSE; Socket.IO: long-polling) or WebSocket, 1 sender on a WebSocket (excluded): ` +
          `flood with ${window} sends in flight (deliveries/s), then ${rate} msgs/s (latency)`,
      };
    }
    case 'G': {
      // Connections alternate between node 0 and node 1 (one node: all on it), so each node holds
      // half the receivers and one of the two senders; both senders are members of the room.
      const { receivers, window, rate } = sizes.G;
      const room = 'g-room';
      const recv: ConnSpec[] = Array.from({ length: receivers }, (_, i) => ({ i, user: `g-u${i}`, room, node: i % 2 }));
      const send: ConnSpec[] = [0, 1].map((s) => ({ i: receivers + s, user: `g-sender${s}`, room, node: s, sender: { index: s, rooms: [room] } }));
      return {
        procs: [send, ...spread(recv, sizes.receiverProcs)],
        // Every receiver, plus the other sender (a sender does not get its own messages).
        recipients: new Map([[room, receivers + send.length - 1]]),
        connections: receivers + send.length,
        rooms: 1,
        ackMode: false,
        description:
          `one room of ${receivers} receivers plus 2 senders (members), split evenly over the nodes with one sender on each: ` +
          `flood with ${window} sends in flight per sender (deliveries/s), then ${rate} msgs/s from both together (latency)`,
      };
    }
  }
}
