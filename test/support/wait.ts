import type { ChatClient, Conversation, JoinOptions, RoomEvent } from '../../clients/chat/index.ts';
import type { CloseReason } from '../../src/service/realtime-service.ts';
import type { TestApp } from './start-test-app.ts';

/**
 * Small helpers for integration tests: awaiting conditions and recording event streams, so that
 * tests wait for something that happens instead of sleeping.
 */

/**
 * Resolves as soon as `condition()` is true, polling every `intervalMs`. The caller's
 * continuation runs in the same macrotask as the successful check, before any further I/O is
 * processed; tests use that to act while a state (e.g. "socket down") certainly still holds.
 */
export function waitUntil(condition: () => boolean, { timeoutMs = 5000, intervalMs = 1, what = 'condition' } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = () => {
      if (condition()) return resolve();
      if (Date.now() > deadline) return reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      setTimeout(check, intervalMs);
    };
    check();
  });
}

export interface RecordedEvent {
  id: string;
  event: RoomEvent;
}

export interface RawRecorder {
  /** Every data frame of the subscription, in arrival order, duplicates included — but `subscribed`. */
  readonly events: RecordedEvent[];
  /** The `subscribed` frames (each stream's first: its position and presence snapshot), in order. */
  readonly positions: RecordedEvent[];
  /** How many times the server started the subscription (1 + number of resumes). */
  readonly starts: number;
  readonly errors: unknown[];
  /** Resolves with the first recorded event (from `from` on) matching the predicate. */
  until(predicate: (e: RecordedEvent) => boolean, options?: { from?: number; timeoutMs?: number }): Promise<RecordedEvent>;
  /** Resolves once the subscription has been started `n` times. */
  started(n?: number): Promise<void>;
  stop(): void;
}

/**
 * Subscribes to `conversation.events` through the stock tRPC client of `client`, without the chat
 * client's de-duplication, so tests see exactly what the server sent (and resent after resume).
 */
export function recordRaw(client: ChatClient, conversationId: string, lastEventId?: string): RawRecorder {
  const events: RecordedEvent[] = [];
  const positions: RecordedEvent[] = [];
  const errors: unknown[] = [];
  let starts = 0;
  const subscription = client.trpc.conversation.events.subscribe(
    { conversationId, ...(lastEventId !== undefined && { lastEventId }) },
    {
      onStarted: () => {
        starts += 1;
      },
      onData: ({ id, data }) => {
        (data.type === 'subscribed' ? positions : events).push({ id, event: data });
      },
      onError: (error) => {
        errors.push(error);
      },
    },
  );
  return {
    events,
    positions,
    errors,
    get starts() {
      return starts;
    },
    async until(predicate, { from = 0, timeoutMs = 5000 } = {}) {
      let found: RecordedEvent | undefined;
      await waitUntil(
        () => {
          found = events.slice(from).find(predicate);
          return found !== undefined || errors.length > 0;
        },
        { timeoutMs, what: `an event in ${conversationId}` },
      );
      if (!found) throw new Error(`subscription to ${conversationId} failed: ${String(errors[0])}`);
      return found;
    },
    started(n = 1) {
      return waitUntil(() => starts >= n, { what: `subscription ${conversationId} started ${n}×` });
    },
    stop: () => subscription.unsubscribe(),
  };
}

/** The message bodies of a recorded stream, in order. */
export function bodies(events: readonly RecordedEvent[]): string[] {
  return events.flatMap((e) => (e.event.type === 'message' ? [e.event.message.body] : []));
}

/** Splits `<epoch>:<rest>`; the epoch part is what ids of one room history share. */
export function epochOf(id: string): string {
  return id.slice(0, id.indexOf(':'));
}

/** The first pair of ids that is not strictly increasing as strings, or null when they all are. */
export function firstOutOfOrder(ids: readonly string[]): [string, string] | null {
  for (let i = 1; i < ids.length; i += 1) if (!(ids[i - 1]! < ids[i]!)) return [ids[i - 1]!, ids[i]!];
  return null;
}

/**
 * Closes every server-side connection of `userId` with `reason` (default `slow_consumer`, a
 * reconnect code: the stock client reconnects and resumes) and resolves once the server has
 * dropped them all. Returns the ids of the closed connections.
 */
export async function dropConnections(t: TestApp, userId: string, reason: CloseReason = 'slow_consumer'): Promise<string[]> {
  const { service } = t.app;
  const ids = [...service.registry.userConnections(userId)];
  if (ids.length === 0) throw new Error(`${userId} has no connection to drop`);
  for (const id of ids) service.connection(id)?.close(reason);
  await waitUntil(() => ids.every((id) => service.connection(id) === undefined), { what: `${userId}'s connections to close` });
  return ids;
}

/** Resolves once the server has `count` live connections for `userId`. */
export function connectionsOf(t: TestApp, userId: string, count: number): Promise<void> {
  return waitUntil(() => t.app.service.registry.userConnections(userId).size === count, { what: `${userId} to have ${count} connection(s)` });
}

export interface LoggedConversation {
  conversation: Conversation;
  /** Every event the chat client delivered to the application, in order. */
  log: RecordedEvent[];
}

/** Joins through the chat client and logs every delivered event (after its de-duplication). */
export function joinLogged(client: ChatClient, conversationId: string, options: JoinOptions = {}): LoggedConversation {
  const log: RecordedEvent[] = [];
  const conversation = client.join(conversationId, {
    ...options,
    onEvent: (event, id) => {
      log.push({ id, event });
      options.onEvent?.(event, id);
    },
  });
  return { conversation, log };
}

let markerCount = 0;

/**
 * Publishes a `system` marker event in the room and waits until every given conversation has
 * received it. Room events reach each subscriber in publish order, so anything published before
 * the marker (say, a `user_left` that must not happen) would have arrived by then: this is how
 * tests prove that something did NOT happen without sleeping.
 */
export async function syncMarker(t: TestApp, conversationId: string, ...conversations: Conversation[]): Promise<string> {
  const label = `marker-${++markerCount}`;
  const arrivals = conversations.map((c) => c.next('system', (e) => e.event === label));
  const { eventId } = await t.app.broadcastSystemEvent(conversationId, label);
  await Promise.all(arrivals);
  return eventId;
}

/** The events of a log that concern `userId` (presence and typing). */
export function aboutUser(log: readonly RecordedEvent[], userId: string): string[] {
  return log.flatMap(({ event }) => ('userId' in event && event.userId === userId ? [event.type === 'typing' ? `typing:${event.isTyping}` : event.type] : []));
}

/**
 * The usual opening of a presence or typing test: alice watches 'room' (every event logged),
 * then bob joins it; both subscriptions have started.
 */
export async function aliceWatchesBobJoin(t: TestApp) {
  const alice = await t.client('alice');
  const bob = await t.client('bob');
  const a = joinLogged(alice, 'room');
  await a.conversation.started;
  const b = bob.join('room');
  await b.started;
  return { alice, bob, a, b };
}
