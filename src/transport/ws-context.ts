import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { TRPCError } from '@trpc/server';
import type { CreateWSSContextFnOptions } from '@trpc/server/adapters/ws';
import { WebSocket } from 'ws';
import { DomainError } from '../domain/errors.ts';
import type { Principal } from '../domain/types.ts';
import type { Logger } from '../logger.ts';
import type { ConnectionHandle, RealtimeService } from '../service/realtime-service.ts';
import { closeFrameFor } from './close-codes.ts';
import { toTRPCError } from './trpc-errors.ts';
import { unsentBytes } from './direct-frames.ts';
import type { Context } from './trpc.ts';

/** Turns a bearer token (or null when none was sent) into a principal, or throws. */
export type Authenticate = (input: { token: string | null; req: IncomingMessage }) => Promise<Principal>;

/** The frame that makes a tRPC client move to a new socket (make-before-break), re-reading connectionParams. */
export const RECONNECT_FRAME = JSON.stringify({ id: null, method: 'reconnect' });

const MAX_TIMER_MS = 2 ** 31 - 1;

export function createWsContextFactory(deps: { service: RealtimeService; authenticate: Authenticate; log: Logger; tokenRefreshGraceMs: number }) {
  const { service, authenticate, log, tokenRefreshGraceMs } = deps;
  return async function createWsContext({ req, res, info }: CreateWSSContextFnOptions): Promise<Context> {
    const raw = info.connectionParams?.token;
    const principal = await authenticateOrThrow(authenticate, typeof raw === 'string' && raw !== '' ? raw : null, req);
    if (res.readyState !== WebSocket.OPEN) throw new TRPCError({ code: 'CLIENT_CLOSED_REQUEST', message: 'connection closed' });

    const id = randomUUID();
    const connection: ConnectionHandle = {
      id,
      principal,
      bufferedBytes: () => unsentBytes(res),
      close(reason, detail) {
        const frame = closeFrameFor(reason, detail);
        // Deferred: closing inside a resolver would drop that call's own response.
        setImmediate(() => {
          if (res.readyState === WebSocket.OPEN || res.readyState === WebSocket.CONNECTING) res.close(frame.code, frame.reason);
        });
      },
    };
    try {
      service.openConnection(connection);
    } catch (error) {
      throw toContextError(error);
    }

    const timers: NodeJS.Timeout[] = [];
    if (principal.exp !== undefined) {
      const delay = principal.exp * 1000 - Date.now();
      if (delay < MAX_TIMER_MS) {
        // At expiry, ask the client to reconnect with fresh connectionParams; close if it does not.
        timers.push(
          setTimeout(() => {
            if (res.readyState === WebSocket.OPEN) res.send(RECONNECT_FRAME);
            timers.push(setTimeout(() => connection.close('token_expired'), tokenRefreshGraceMs).unref());
          }, Math.max(0, delay)).unref(),
        );
      }
    }
    res.once('close', () => {
      for (const timer of timers) clearTimeout(timer);
      service.closeConnection(id);
    });
    log.debug({ connectionId: id, userId: principal.userId }, 'connection opened');
    return { principal, connection, socket: res };
  };
}

export async function authenticateOrThrow(authenticate: Authenticate, token: string | null, req: IncomingMessage): Promise<Principal> {
  try {
    return await authenticate({ token, req });
  } catch (error) {
    throw toContextError(error);
  }
}

function toContextError(error: unknown): TRPCError {
  if (error instanceof TRPCError) return error;
  if (error instanceof DomainError && error.code !== 'UNAUTHENTICATED') return toTRPCError(error) as TRPCError;
  const message = error instanceof DomainError ? error.message : 'invalid token';
  return new TRPCError({ code: 'UNAUTHORIZED', message });
}
