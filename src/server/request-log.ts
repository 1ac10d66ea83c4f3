import type { Logger } from '../logger.ts';
import { clip, protocolErrorKind } from '../transport/http-edge.ts';
import type { Context } from '../transport/trpc.ts';
import { LogLimiter } from '../util/log-limiter.ts';

/** One refused or failed call, as every tRPC wire reports it (HTTP passes `req`, WebSocket does not, SSE names itself). */
export interface ReportedCall {
  error: { code: string; message: string; cause?: unknown };
  path?: string | undefined;
  type: string;
  ctx?: unknown;
  req?: unknown;
  transport?: 'sse';
}

/**
 * What the log says about calls the server refused or failed, for both tRPC wires:
 * - a failure of ours (INTERNAL_SERVER_ERROR) at error, with its cause;
 * - a malformed request (bad JSON, unknown path, oversized body or batch…) at warn, no stack;
 * - a refused token or a refused subscription at info, never the token;
 * each client-triggerable kind at most one line a minute, with the count held back since the last.
 * Every refusal is also counted (`rejected`, by tRPC code) for /metrics.
 */
export function createRequestReporter(log: Logger, rejected: (code: string) => void): (call: ReportedCall) => void {
  const refusals = new LogLimiter();
  const protocolErrors = new LogLimiter();
  return ({ error, path, type, ctx, req, transport: named }) => {
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      log.error({ err: error.cause ?? error, path, type }, 'procedure failed');
      return;
    }
    rejected(error.code);
    log.debug({ code: error.code, path, type, message: error.message }, 'request rejected');
    const transport = named ?? (req === undefined ? 'ws' : 'http');
    const kind = protocolErrorKind(error);
    if (kind) {
      const allowed = protocolErrors.allow(`${transport}:${kind}`);
      if (allowed) log.warn({ transport, code: kind, message: clip(error.message), ...(path !== undefined && { path: clip(path, 100) }), heldBack: allowed.suppressed }, 'malformed request refused');
    }
    const token = error.code === 'UNAUTHORIZED';
    // A malformed subscription request is a protocol error (logged as such), not a refusal.
    if (!token && (path !== 'conversation.events' || kind !== null)) return;
    const allowed = refusals.allow(token ? `token:${transport}` : `subscription:${error.code}`);
    if (!allowed) return;
    const userId = (ctx as Partial<Context> | null | undefined)?.principal?.userId;
    log.info(
      { transport, code: error.code, reason: clip(error.message, 300), ...(path !== undefined && { path }), ...(userId !== undefined && { userId }), heldBack: allowed.suppressed },
      token ? 'token refused' : 'subscription refused',
    );
  };
}

/** Connection counts at info once a minute, only when they changed since the last line. */
export function createCountsLog(log: Logger, counts: () => { connections: number; users: number; rooms: number }): { start(): void; stop(): void } {
  let timer: NodeJS.Timeout | null = null;
  let last = '0/0/0';
  const tick = () => {
    const { connections, users, rooms } = counts();
    const now = `${connections}/${users}/${rooms}`;
    if (now === last) return;
    last = now;
    log.info({ connections, users, rooms }, 'connection counts');
  };
  return {
    start() {
      timer ??= setInterval(tick, 60_000);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
