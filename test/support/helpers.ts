import { TRPCClientError } from '@trpc/client';
import superjson from 'superjson';
import { expect } from 'vitest';
import { WebSocket } from 'ws';
import type { ChatClient, Conversation } from '../../clients/chat/index.ts';
import type { RoomEvent } from '../../src/domain/types.ts';

/** Joins and waits until the server has started the subscription. */
export async function joined(client: ChatClient, conversationId: string, options?: Parameters<ChatClient['join']>[1]): Promise<Conversation> {
  const conversation = client.join(conversationId, options);
  await conversation.started;
  return conversation;
}

/** Everything a conversation delivers to the application, in order. */
export function record(conversation: Conversation): Array<{ id: string; event: RoomEvent }> {
  const seen: Array<{ id: string; event: RoomEvent }> = [];
  conversation.on('message', (event, id) => seen.push({ id, event }));
  for (const type of ['user_joined', 'user_left', 'user_disconnected', 'typing', 'message_delivered', 'conversation_updated', 'system', 'resync'] as const) {
    conversation.on(type, (event, id) => seen.push({ id, event }));
  }
  return seen;
}

/** The tRPC error code (`data.code`) a promise rejects with; fails the test if it resolves. */
export async function errorOf(promise: Promise<unknown>): Promise<{ code: string | undefined; message: string; httpStatus: number | undefined }> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(TRPCClientError);
    const e = error as { message: string; data?: { code?: string; httpStatus?: number } | null };
    return { code: e.data?.code, message: e.message, httpStatus: e.data?.httpStatus };
  }
  throw new Error('expected the call to fail, but it succeeded');
}

/** Calls a tRPC procedure over HTTP with `fetch` (superjson wire format); a mutation unless `kind` says otherwise. */
export async function trpcHttp(
  baseUrl: string,
  path: string,
  input: unknown,
  options: { kind?: 'query' | 'mutation'; token?: string | null; headers?: Record<string, string> } = {},
): Promise<{ status: number; body: unknown; result: unknown; error: { code?: string; message?: string } | undefined }> {
  const { kind = 'mutation', token, headers = {} } = options;
  const auth: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const serialized = superjson.serialize(input);
  let res: Response;
  if (kind === 'query') {
    const q = encodeURIComponent(JSON.stringify(serialized));
    res = await fetch(`${baseUrl}/trpc/${path}?input=${q}`, { headers: { ...auth, ...headers } });
  } else {
    res = await fetch(`${baseUrl}/trpc/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth, ...headers },
      body: JSON.stringify(serialized),
    });
  }
  const body = (await res.json()) as { result?: { data?: unknown }; error?: { json?: { message?: string; data?: { code?: string } } } };
  const result = body.result?.data === undefined ? undefined : superjson.deserialize(body.result.data as Parameters<typeof superjson.deserialize>[0]);
  const error = body.error?.json ? { code: body.error.json.data?.code, message: body.error.json.message } : undefined;
  return { status: res.status, body, result, error };
}

export interface RawFrameClient {
  ws: WebSocket;
  frames: unknown[];
  /** Resolves once the socket is open. */
  opened: Promise<void>;
  /** Resolves with { code, reason } once the socket closed. */
  closed: Promise<{ code: number; reason: string }>;
  send(frame: unknown): void;
  /** Resolves with the first frame (already received or future) matching the predicate. */
  waitFor(predicate: (frame: unknown) => boolean, timeoutMs?: number): Promise<unknown>;
}

/** A bare `ws` socket that records every JSON frame it receives and answers PING. */
export function rawClient(url: string): RawFrameClient {
  const ws = new WebSocket(url);
  const frames: unknown[] = [];
  const waiters: Array<{ predicate: (frame: unknown) => boolean; resolve: (frame: unknown) => void }> = [];
  ws.on('message', (data) => {
    const text = data.toString();
    if (text === 'PING') {
      ws.send('PONG');
      return;
    }
    if (text === 'PONG') return;
    const frame: unknown = JSON.parse(text);
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.predicate(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });
  ws.on('error', () => undefined);
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected response ${res.statusCode}`)));
    ws.once('error', reject);
  });
  opened.catch(() => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  return {
    ws,
    frames,
    opened,
    closed,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    waitFor(predicate, timeoutMs = 3000) {
      const found = frames.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no matching frame')), timeoutMs);
        waiters.push({
          predicate,
          resolve: (frame) => {
            clearTimeout(timer);
            resolve(frame);
          },
        });
      });
    },
  };
}

/** The tRPC error code inside a superjson-serialized error frame, if the frame is one. */
export function frameErrorCode(frame: unknown): string | undefined {
  const f = frame as { error?: { json?: { data?: { code?: string } } } };
  return f.error?.json?.data?.code;
}
