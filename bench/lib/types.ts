/** Shapes shared by the orchestrator, the load generators and the target servers. */
import type { SparseHistogram } from './histogram.ts';

export const TARGETS = ['realtime', 'socketio', 'ws'] as const;
export type Target = (typeof TARGETS)[number];

export const TARGET_LABELS: Record<Target, string> = {
  realtime: 'this service (tRPC ws)',
  socketio: 'Socket.IO 4.8',
  ws: 'plain ws (limit)',
};

/** One connection a load generator opens. */
export interface ConnSpec {
  /** Globally unique index of the connection in the run. */
  i: number;
  user: string;
  /** The room it subscribes to (joins), or null for a sender that only sends. */
  room: string | null;
  /** Present when this connection sends: its sender index and the rooms it sends to. */
  sender?: { index: number; rooms: string[] };
  /** Which server node it connects to (G): an index into `LoadgenInit.urls`, modulo their number. */
  node?: number;
}

export interface LoadgenInit {
  target: Target;
  /** ws://127.0.0.1:port/trpc (realtime), http://127.0.0.1:port (socketio), ws://127.0.0.1:port (ws) */
  url: string;
  /** Several server nodes (G): a connection goes to `urls[spec.node % urls.length]`; default [url]. */
  urls?: string[];
  secret: string;
  /** process.hrtime.bigint() base shared by every process, as a decimal string. */
  base: string;
  /** Receivers ack every message that asks for it (workload E). */
  ackMode: boolean;
  /**
   * Workload S: receivers subscribe over HTTP — SSE (realtime), long-polling (Socket.IO) —
   * instead of a WebSocket; senders stay on their WebSocket.
   */
  receiversOverHttp?: boolean;
}

export type SendMode = 'flood' | 'rate' | 'ack' | 'once';

export interface RunArgs {
  phase: number;
  mode: SendMode;
  /** How long to keep sending (flood, rate, ack). */
  durationMs: number;
  /** Messages per second for all senders of this load generator together (rate). */
  rate?: number;
  /** Messages in flight per sender (flood, ack). */
  window?: number;
  /** Stop after this many messages per sender (any mode). */
  maxMessages?: number;
}

export interface RunResult {
  /** Per room, per sender index: the last sequence number sent (cumulative over phases). */
  lastSeq: Record<string, Record<number, number>>;
  /** Per room: messages sent in this phase (accepted by the server). */
  sentInPhase: Record<string, number>;
  sent: number;
  failed: number;
  errors: string[];
  wallMs: number;
  /** Sends issued (accepted or not), and the time from the first to the last one. */
  issued: number;
  issueSpanMs: number;
  /** Ack mode: time from send to the full delivery report, and what the reports said. */
  reportTime?: SparseHistogram;
  acked?: number;
  expected?: number;
  reportsNotDelivered?: number;
}

export interface Counters {
  connected: number;
  frames: number;
  deliveries: number;
  /** Deliveries per phase id. */
  phaseDeliveries: Record<number, number>;
  unexpectedCloses: number;
  errorFrames: number;
}

export interface PhaseStats {
  deliveries: number;
  latency: SparseHistogram;
}

export interface VerifyResult {
  receivers: number;
  expected: number;
  received: number;
  missing: number;
  /** Deliveries whose sequence number was not the next one expected (reordered or duplicated). */
  outOfOrder: number;
  duplicates: number;
  gaps: number;
  /** Sampled frames whose envelope did not have the expected shape. */
  structureErrors: number;
  structureChecked: number;
  unexpectedCloses: number;
  errorFrames: number;
}

export interface CpuSample {
  userUs: number;
  systemUs: number;
  wallUs: number;
}

export interface MemorySample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}
