import type { IncomingMessage, ServerResponse } from 'node:http';
import { getTRPCErrorShape, transformTRPCResponse, type AnyTRPCRouter, type TRPCError } from '@trpc/server';
import { ZodError } from 'zod';
import { DomainError, type DomainErrorCode } from '../domain/errors.ts';
import { trpcErrorOf } from './trpc-errors.ts';

/**
 * The HTTP edge of tRPC: what is refused before the standalone handler does any work, and which
 * refusals are protocol errors (a malformed request) rather than an application's answer.
 */

/**
 * How many calls an HTTP tRPC request holds: the comma-separated paths of a `?batch=1` request
 * (counted as tRPC counts them, after URL-decoding), 1 otherwise.
 */
export function httpCallCount(url: string, basePath: string): number {
  const q = url.indexOf('?');
  if (q === -1 || new URLSearchParams(url.slice(q + 1)).get('batch') !== '1') return 1;
  const raw = url.slice(0, q).slice(basePath.length);
  let path = raw;
  try {
    path = decodeURIComponent(raw);
  } catch {
    // tRPC refuses a badly encoded path itself; count what is there.
  }
  let calls = 1;
  for (let i = path.indexOf(','); i !== -1; i = path.indexOf(',', i + 1)) calls += 1;
  return calls;
}

/**
 * Answers a batch of more than `max` calls with one BAD_REQUEST naming the limit, in tRPC's wire
 * shape (the stock client gives every call of the batch that error), before any call, context or
 * body is looked at. Returns the error it answered with, or null when the request may go on.
 */
export function refuseOversizedBatch(req: IncomingMessage, res: ServerResponse, options: { router: AnyTRPCRouter; basePath: string; max: number }): TRPCError | null {
  const calls = httpCallCount(req.url ?? '/', options.basePath);
  if (calls <= options.max) return null;
  const error = trpcErrorOf(new DomainError('INVALID_REQUEST', `batch of ${calls} calls refused: at most ${options.max} calls per HTTP request (MAX_HTTP_BATCH)`));
  const config = options.router._def._config;
  const shape = getTRPCErrorShape({ config, error, type: 'unknown', path: undefined, input: undefined, ctx: undefined });
  const body = JSON.stringify(transformTRPCResponse(config, { error: shape }));
  // The request may still be sending a body we will not read: close once answered.
  res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', connection: 'close' });
  res.end(body);
  return error;
}

/**
 * The kind of protocol error `error` is — what a malformed request earns (bad JSON, bad
 * encoding, an unknown procedure, a wrong method or content type, a body or batch over its
 * limit) — or null when it is an answer of the application: a domain refusal, invalid input
 * (zod), an auth failure, a rate limit. Kinds are tRPC codes, a small fixed set.
 */
export function protocolErrorKind(error: { code: string; cause?: unknown }): string | null {
  switch (error.code) {
    case 'PARSE_ERROR':
    case 'UNSUPPORTED_MEDIA_TYPE':
    case 'PAYLOAD_TOO_LARGE':
    case 'METHOD_NOT_SUPPORTED':
    case 'NOT_FOUND':
    case 'BAD_REQUEST':
      return fromApplication(error.cause) ? null : error.code;
    default:
      return null;
  }
}

/** Domain codes that name a malformed request, not an application's answer. */
const PROTOCOL_CODES: ReadonlySet<DomainErrorCode> = new Set(['BAD_FRAME', 'INVALID_REQUEST', 'BATCH_TOO_LARGE', 'METHOD_NOT_SUPPORTED']);

function fromApplication(cause: unknown): boolean {
  if (cause instanceof DomainError) return !PROTOCOL_CODES.has(cause.code);
  return cause instanceof ZodError || (cause instanceof Error && cause.cause instanceof ZodError);
}

/** A client-chosen string as it may appear in a log line: one line, at most `max` characters. */
export function clip(text: string, max = 200): string {
  const line = text.replace(/[\r\n]+/g, ' ');
  return line.length > max ? `${line.slice(0, max)}…` : line;
}
