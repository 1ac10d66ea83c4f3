import { getTRPCErrorShape, transformTRPCResponse, type AnyTRPCRootTypes, type TRPCError, type TRPCRootConfig } from '@trpc/server';
import type { TRPCResponseMessage } from '@trpc/server/rpc';
import { DomainError } from '../../domain/errors.ts';
import { safeDeserialize, UnsafeInputError } from '../safe-superjson.ts';
import { trpcErrorOf } from '../trpc-errors.ts';
import type { Context } from '../trpc.ts';
import { frameTarget, textFrameOf, type FrameTarget } from './frames.ts';

/**
 * tRPC's WebSocket protocol, as documented and as the stock client speaks it: what a client
 * frame may hold, and the reply frames. Client frames are JSON text: one request or an array of
 * them (the stock client sends every call of one tick as one array), `PING`/`PONG`, and — first,
 * when the URL says `?connectionParams=1` — `{ method: 'connectionParams', data }`.
 */

export type CallMethod = 'query' | 'mutation' | 'subscription';

export type Request =
  | { kind: 'call'; method: CallMethod; target: FrameTarget; path: string; input: unknown; lastEventId: string | undefined }
  | { kind: 'stop'; id: string | number }
  /** Not a request we can serve; answered with `error` under `target` (or `id: null`). */
  | { kind: 'invalid'; target: FrameTarget | null; error: TRPCError };

/** Longer request ids and paths are refused: every reply echoes the id. */
const MAX_ID_LENGTH = 256;
const MAX_PATH_LENGTH = 256;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

const parseError = (message: string) => trpcErrorOf(new DomainError('BAD_FRAME', message));

/** One item of a client frame. */
export function parseRequest(item: unknown): Request {
  if (!isRecord(item)) return { kind: 'invalid', target: null, error: parseError('a request must be a JSON object') };
  const { id, method, params, jsonrpc } = item;
  if (typeof id !== 'number' && typeof id !== 'string') return { kind: 'invalid', target: null, error: parseError('`id` is required: a number or a string') };
  if (typeof id === 'string' && id.length > MAX_ID_LENGTH) return { kind: 'invalid', target: null, error: parseError(`\`id\` is longer than ${MAX_ID_LENGTH} characters`) };
  if (jsonrpc !== undefined && jsonrpc !== '2.0') return { kind: 'invalid', target: frameTarget(id, false), error: parseError('`jsonrpc` must be "2.0" when present') };
  const target = frameTarget(id, jsonrpc === '2.0');
  if (method === 'subscription.stop') return { kind: 'stop', id };
  if (method !== 'query' && method !== 'mutation' && method !== 'subscription') {
    return { kind: 'invalid', target, error: parseError(`unknown method ${JSON.stringify(method)}: expected query, mutation, subscription or subscription.stop`) };
  }
  if (!isRecord(params)) return { kind: 'invalid', target, error: parseError('`params` must be an object') };
  const { path, input, lastEventId } = params;
  if (typeof path !== 'string' || path.length === 0 || path.length > MAX_PATH_LENGTH) return { kind: 'invalid', target, error: parseError('`params.path` must be a procedure path') };
  if (lastEventId !== undefined && lastEventId !== null && typeof lastEventId !== 'string') {
    return { kind: 'invalid', target, error: parseError('`params.lastEventId` must be a string') };
  }
  return { kind: 'call', method, target, path, input, lastEventId: lastEventId ?? undefined };
}

/**
 * `connectionParams` from the first frame: `{ method: 'connectionParams', data: null | { [k]: string } }`.
 * Returns the token (null when none was sent), or why the frame is not connection params.
 */
export function parseConnectionParams(text: string): { token: string | null } | { error: string } {
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { error: 'the first frame must be the connectionParams message (JSON)' };
  }
  if (!isRecord(message) || message.method !== 'connectionParams') return { error: 'the first frame must be { method: "connectionParams", data }' };
  const { data } = message;
  if (data === null || data === undefined) return { token: null };
  if (!isRecord(data) || !Object.values(data).every((v) => typeof v === 'string')) return { error: 'connectionParams must be an object of strings' };
  const token = data.token;
  return { token: typeof token === 'string' && token !== '' ? token : null };
}

/** superjson input, checked (safe-superjson.ts); anything it cannot read is the client's PARSE_ERROR. */
export function readInput(input: unknown): unknown {
  if (input === undefined) return undefined;
  try {
    return safeDeserialize(input);
  } catch (cause) {
    // Already tRPC's error: tRPC's own input middleware calls this (getRawInput), past any mapping.
    throw trpcErrorOf(new DomainError('BAD_FRAME', `input is not valid superjson: ${cause instanceof UnsafeInputError ? cause.message : 'unreadable'}`, undefined, cause));
  }
}

/**
 * Builds reply frames through the router's own transformer and error formatter. With superjson
 * as the transformer (ours), a result that is plain JSON — what most calls return, an ack's
 * three booleans say — is written as superjson would write it (`{"json":…}`) without walking it
 * through superjson: the same text, a fraction of the work (test/ws-frames.test.ts compares).
 */
export class Replies {
  constructor(
    private readonly config: TRPCRootConfig<AnyTRPCRootTypes>,
    private readonly transformerIsSuperjson: boolean,
  ) {}

  private frame(message: TRPCResponseMessage): Buffer {
    return textFrameOf(JSON.stringify(transformTRPCResponse(this.config, message)));
  }

  result(target: FrameTarget, data: unknown): Buffer {
    if (this.transformerIsSuperjson && isPlainJson(data, 0)) {
      return textFrameOf(`${head(target)}"result":{"type":"data","data":{"json":${JSON.stringify(data)}}}}`);
    }
    return this.frame({ id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'data', data } });
  }

  /** A plain-JSON result whose JSON text the caller already has (`json` must be `JSON.stringify(data)`'s equal). */
  resultJson(target: FrameTarget, data: unknown, json: string): Buffer {
    if (!this.transformerIsSuperjson) return this.result(target, data);
    return textFrameOf(`${head(target)}"result":{"type":"data","data":{"json":${json}}}}`);
  }

  started(target: FrameTarget): Buffer {
    return textFrameOf(`${head(target)}"result":{"type":"started"}}`);
  }

  stopped(target: FrameTarget): Buffer {
    return textFrameOf(`${head(target)}"result":{"type":"stopped"}}`);
  }

  /** An error for one request, or for the connection (`target` null: `id: null`). */
  error(target: FrameTarget | null, error: TRPCError, call: { type?: CallMethod; path?: string; input?: unknown; ctx?: Context | null } = {}): Buffer {
    const shape = getTRPCErrorShape({ config: this.config, error, type: call.type ?? 'unknown', path: call.path, input: call.input, ctx: call.ctx ?? undefined });
    return this.frame({ id: target?.id ?? null, ...(target?.jsonrpc && { jsonrpc: '2.0' as const }), error: shape } as TRPCResponseMessage);
  }
}

function head(target: FrameTarget): string {
  return `{"id":${JSON.stringify(target.id)},${target.jsonrpc ? '"jsonrpc":"2.0",' : ''}`;
}

/**
 * Whether superjson would write `value` as `{ json: value }` with no annotations: null, strings,
 * booleans, finite numbers other than -0, arrays and plain objects of those (no undefined, no
 * `__proto__` key), not too deep.
 */
function isPlainJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      if (depth > 16) return false;
      if (Array.isArray(value)) {
        for (const item of value) if (!isPlainJson(item, depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (key === '__proto__' || !isPlainJson((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    case 'bigint':
    case 'function':
    case 'symbol':
    case 'undefined':
      return false;
  }
}
