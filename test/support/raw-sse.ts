import { request, type IncomingMessage } from 'node:http';
import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink } from '@trpc/client';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import type { AppRouter } from '../../src/transport/router.ts';

/** One parsed SSE event as the wire carries it. */
export interface RawSseEvent {
  event: string;
  id: string | undefined;
  data: string;
  retry: number | undefined;
}

/**
 * A raw SSE reader: GET with our headers, the response parsed event by event, the socket in our
 * hands (pause it to stall a reader, destroy it to drop). For checking the wire itself; client
 * behaviour is tested with the stock httpSubscriptionLink.
 */
export interface RawSse {
  status: number;
  headers: IncomingMessage['headers'];
  events: RawSseEvent[];
  /** Resolves with the first event (from the start) matching, or rejects after `timeoutMs`. */
  next(predicate: (e: RawSseEvent) => boolean, timeoutMs?: number): Promise<RawSseEvent>;
  /** Resolves when the server ends the response (cleanly or not). */
  ended: Promise<'end' | 'reset'>;
  response: IncomingMessage;
  close(): void;
}

export function eventsUrl(baseUrl: string, input: Record<string, unknown>, extra = ''): string {
  return `${baseUrl}/trpc/conversation.events?input=${encodeURIComponent(JSON.stringify(superjson.serialize(input)))}${extra}`;
}

export function openRawSse(url: string, headers: Record<string, string> = {}): Promise<RawSse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => {
      const events: RawSseEvent[] = [];
      const waiters = new Set<() => void>();
      let buffer = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.trim() === '') continue;
          const e: RawSseEvent = { event: 'message', id: undefined, data: '', retry: undefined };
          for (const line of block.split('\n')) {
            const colon = line.indexOf(':');
            const field = colon === -1 ? line : line.slice(0, colon);
            const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'event') e.event = value;
            else if (field === 'id') e.id = value;
            else if (field === 'data') e.data += value;
            else if (field === 'retry') e.retry = Number(value);
          }
          events.push(e);
          for (const wake of [...waiters]) wake();
        }
      });
      const ended = new Promise<'end' | 'reset'>((done) => {
        response.once('end', () => done('end'));
        response.once('error', () => done('reset'));
        response.once('aborted', () => done('reset'));
      });
      ended.catch(() => undefined);
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        events,
        response,
        ended,
        next(predicate, timeoutMs = 5000) {
          return new Promise((ok, fail) => {
            const check = () => {
              const found = events.find(predicate);
              if (!found) return;
              clearTimeout(timer);
              waiters.delete(check);
              ok(found);
            };
            const timer = setTimeout(() => {
              waiters.delete(check);
              fail(new Error(`no matching SSE event within ${timeoutMs} ms; got ${events.map((e) => e.event).join(',')}`));
            }, timeoutMs);
            waiters.add(check);
            check();
          });
        },
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** The tRPC error code in a `serialized-error` event. */
export function sseErrorOf(e: RawSseEvent): { code: string; message: string } {
  const shape = superjson.deserialize<{ message: string; data: { code: string } }>(JSON.parse(e.data) as never);
  return { code: shape.data.code, message: shape.message };
}

/**
 * The stock client over SSE, as the README shows it: httpSubscriptionLink with the `eventsource`
 * package (its fetch carries the Bearer header on every (re)connect), httpBatchLink for the rest.
 */
export function stockSseClient(baseUrl: string, token: string | (() => string)) {
  const bearer = () => `Bearer ${typeof token === 'function' ? token() : token}`;
  return createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: httpSubscriptionLink({
          url: `${baseUrl}/trpc`,
          transformer: superjson,
          EventSource,
          eventSourceOptions: () => ({ fetch: (url, init) => fetch(url, { ...init, headers: { ...init?.headers, Authorization: bearer() } }) }),
        }),
        false: httpBatchLink({ url: `${baseUrl}/trpc`, transformer: superjson, headers: () => ({ Authorization: bearer() }) }),
      }),
    ],
  });
}
