import { stockSseClient } from './raw-sse.ts';

/**
 * One SSE stream of `conversation.events` through the stock client: tRPC's httpSubscriptionLink
 * over the `eventsource` package, the token in an Authorization header (never the URL). For
 * tests that need an SSE connection beside WebSocket ones; the wire itself is raw-sse.ts's.
 */
export interface SseStream {
  /** Resolves when the server has started the subscription; rejects on its error. */
  started: Promise<void>;
  /** Stops the subscription and closes the stream. */
  close(): void;
}

export function openSseStream(baseUrl: string, token: string, conversationId: string): SseStream {
  const client = stockSseClient(baseUrl, token);
  let onStarted!: () => void;
  let onError!: (error: unknown) => void;
  const started = new Promise<void>((resolve, reject) => {
    onStarted = resolve;
    onError = reject;
  });
  started.catch(() => undefined); // a caller that never awaits it does not get an unhandled rejection
  const subscription = client.conversation.events.subscribe({ conversationId }, { onStarted, onError });
  return { started, close: () => subscription.unsubscribe() };
}
