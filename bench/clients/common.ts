/** What every target's benchmark client implements, and the sink receivers report into. */
import type { BodyFields } from '../lib/body.ts';
import type { ConnSpec } from '../lib/types.ts';

/** Per (receiver, sender): the last sequence number seen and how many arrived. */
export interface SenderTrack {
  last: number;
  count: number;
}

export interface ReceiverState {
  room: string;
  senders: Map<number, SenderTrack>;
}

/** Where clients report what they receive; the load generator implements it. */
export interface Sink {
  readonly ackMode: boolean;
  /** A benchmark message arrived at a receiver. */
  deliver(receiver: ReceiverState, fields: BodyFields): void;
  /** Any frame arrived (for quiescence detection). */
  frame(): void;
  /** An error frame arrived (a failed request or a refused connection). */
  errorFrame(detail: string): void;
  /** The server closed a connection the bench did not close. */
  unexpectedClose(detail: string): void;
  /** Whether to fully parse and check this frame's envelope (sampled). */
  sampleStructure(): boolean;
  structure(ok: boolean, detail?: string): void;
}

export interface SendOutcome {
  ok: boolean;
  error?: string;
  /** Ack mode: the report's counts and status. */
  acked?: number;
  expected?: number;
  status?: string;
}

export interface BenchClient {
  readonly spec: ConnSpec;
  /** Connects, authenticates and subscribes to `spec.room`; resolves once the server confirmed. */
  open(): Promise<void>;
  /** Sends one message; resolves when the server accepted it (ack: when the full report arrived). */
  send(room: string, body: string, ack: boolean): Promise<SendOutcome>;
  /** Drops the connection at once (no close handshake). */
  close(): void;
}

export function newReceiver(room: string): ReceiverState {
  return { room, senders: new Map() };
}

/**
 * A callback that settles a promise once: `done()` resolves, `done(error)` rejects, later calls
 * do nothing (a socket's open, error and close may each report the outcome).
 */
export function settleOnce(resolve: () => void, reject: (error: Error) => void): (error?: Error) => void {
  let settled = false;
  return (error) => {
    if (settled) return;
    settled = true;
    if (error) reject(error);
    else resolve();
  };
}
