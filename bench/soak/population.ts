/**
 * The soak's users, rooms and memberships as the traffic and the churn see them, and the
 * recording `WebSocket` that makes each user's current socket reachable.
 */
import { WebSocket } from 'ws';
import type { ChatClient, Conversation } from '../../clients/chat/index.ts';
import type { StreamCheck, RoomLog } from './stream-check.ts';
import type { RoomPlan } from './topology.ts';

/** `up`: connected and subscribed; the others are disruptions in progress. */
export type UserState = 'connecting' | 'up' | 'dropped' | 'restarting' | 'paused';

export interface Membership {
  room: Room;
  user: User;
  /** Subscribed (or wanting to be, during a restart). */
  joined: boolean;
  /** A leave, join or restart of this membership is under way. */
  busy: boolean;
  conversation: Conversation | null;
  check: StreamCheck | null;
  /** Bumped whenever the conversation feeding `check` is abandoned; stale callbacks compare it. */
  generation: number;
}

export interface User {
  id: string;
  token: string;
  client: ChatClient | null;
  state: UserState;
  memberships: Membership[];
  /** The client's current socket (null until it opens one). */
  socket: WebSocket | null;
  /** Sends in flight. */
  sending: number;
  /** Ends the disruption a close the soak did not cause began, once a new socket is open. */
  endReopen: (() => void) | null;
  /** When the user last received a message that asks for an ack (performance.now() ms). */
  lastAckRequiredAt: number;
}

export interface Room {
  plan: RoomPlan;
  log: RoomLog;
  members: Membership[];
}

/**
 * The chat client uses the platform's `WebSocket` when there is one (Node 20 has none), so a
 * recording subclass of `ws` installed as the global sees every socket it opens; each client's
 * URL carries `?soak=<user>` to say whose it is (as test/regression/issue-4-slow-consumer.test.ts
 * reaches its stalled client's socket).
 */
export function installRecordingWebSocket(onSocket: (userId: string, ws: WebSocket) => void): void {
  class RecordingWebSocket extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      const user = new URL(String(args[0])).searchParams.get('soak');
      if (user) onSocket(user, this);
    }
  }
  (globalThis as { WebSocket?: unknown }).WebSocket = RecordingWebSocket;
}

export function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not started within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
