/**
 * Automatic acks, coalesced: acks made within `ackBatchMs` of the first leave as one
 * `message.ack` call with a list (`{ acks: [...] }`, at most MAX_ACKS_PER_CALL; one ack alone goes
 * in the single form), so a burst of acknowledged messages costs the server one call, one reply and
 * one write instead of one each. While a call is in flight, further acks wait for its answer and
 * then leave together (Nagle's rule): a busy server gets fewer, larger calls the busier it is, an
 * idle one sees each ack after the window alone.
 *
 * Never lost: an ack is idempotent on the server (a repeat is `duplicate`), so a batch whose
 * answer never came because the socket dropped (in flight or not yet sent) is queued again and
 * leaves on the next connection. Given up only when the client closes, when the server answered
 * with an error, or when the client stayed disconnected past `callTimeoutMs` — then the server's
 * re-send (`ACK_RETRY_MS`, to connected recipients that have not acked) asks again, and the
 * re-sent message is acked again.
 */

/** Default coalescing window for automatic acks, in ms. */
export const DEFAULT_ACK_BATCH_MS = 5;
/** Most acks one call carries: the server's limit (src/transport/ack-calls.ts). */
export const MAX_ACKS_PER_CALL = 256;
/** Sends of one ack after dropped connections before it is left to the server's re-send. */
const MAX_ATTEMPTS = 5;

export interface AckToSend {
  conversationId: string;
  messageId: string;
}

export interface AckBatcherDeps {
  /** `ackBatchMs`: 0 sends every ack as its own call at once (the stock link still puts one tick's calls in one frame). */
  batchMs: number;
  /** Sends one call: a single ack, or a list of 2–MAX_ACKS_PER_CALL. */
  send(acks: AckToSend[]): Promise<unknown>;
  /** Whether a failed call should be sent again (the connection dropped before the answer). */
  shouldRetry(error: unknown): boolean;
  isClosed(): boolean;
}

interface Queued extends AckToSend {
  attempts: number;
}

export interface AckBatcher {
  ack(conversationId: string, messageId: string): void;
  /** Sends what waits now (the client is closing: nothing may stay behind). */
  flushNow(): void;
  /** Acks waiting for the window (or for a retry), for tests and diagnostics. */
  readonly queued: number;
}

export function createAckBatcher(deps: AckBatcherDeps): AckBatcher {
  let queue: Queued[] = [];
  /** Keys of queued acks: a message re-sent while its ack waits is acked once. */
  const queuedKeys = new Set<string>();
  let timer: ReturnType<typeof setTimeout> | null = null;

  const keyOf = (a: AckToSend) => `${a.conversationId}\n${a.messageId}`;

  /** Calls sent and not yet answered. */
  let inFlight = 0;

  /** Sends what waits: only when no call is in flight, unless `force` (or a full call's worth waits). */
  function flush(force = false): void {
    if (timer) clearTimeout(timer);
    timer = null;
    while (queue.length > 0 && (force || inFlight === 0 || queue.length >= MAX_ACKS_PER_CALL)) {
      const batch = queue.length > MAX_ACKS_PER_CALL ? queue.slice(0, MAX_ACKS_PER_CALL) : queue;
      queue = queue.length > MAX_ACKS_PER_CALL ? queue.slice(MAX_ACKS_PER_CALL) : [];
      for (const a of batch) queuedKeys.delete(keyOf(a));
      inFlight += 1;
      deps.send(batch.map(({ conversationId, messageId }) => ({ conversationId, messageId }))).then(answered, (error: unknown) => {
        if (!deps.isClosed() && deps.shouldRetry(error)) {
          for (const a of batch) if (a.attempts < MAX_ATTEMPTS) enqueue({ ...a, attempts: a.attempts + 1 });
        }
        answered();
      });
    }
  }

  /** A call was answered (or failed): what queued meanwhile leaves now, as one call. */
  function answered(): void {
    inFlight -= 1;
    if (inFlight === 0 && queue.length > 0 && !deps.isClosed()) flush();
  }

  function enqueue(a: Queued): void {
    const key = keyOf(a);
    if (queuedKeys.has(key)) return;
    queuedKeys.add(key);
    queue.push(a);
    if (deps.batchMs <= 0) flush(true);
    else if (queue.length >= MAX_ACKS_PER_CALL) flush();
    else if (inFlight === 0) timer ??= setTimeout(flush, deps.batchMs);
    // else: it leaves when the call in flight is answered
  }

  return {
    ack(conversationId, messageId) {
      if (deps.isClosed()) return;
      enqueue({ conversationId, messageId, attempts: 1 });
    },
    flushNow() {
      flush(true);
    },
    get queued() {
      return queue.length;
    },
  };
}
