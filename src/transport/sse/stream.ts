import type { ServerResponse } from 'node:http';
import { TRPCError } from '@trpc/server';
import type { Principal } from '../../domain/types.ts';
import type { CloseReason, ConnectionHandle, SubscriptionHandle } from '../../service/realtime-service.ts';
import { streamEndFor } from '../close-codes.ts';
import type { FrameWriter, Writable } from '../writer.ts';
import { connectedChunk, PING_CHUNK, RETURN_CHUNK, SSE_HEADERS } from './events.ts';
import { flatRandomId } from '../../util/flat-id.ts';

/** What every stream of one server shares. */
export interface StreamShared {
  writer: FrameWriter;
  /** The `serialized-error` event of an error (the router's error formatter). */
  errorChunk(error: TRPCError): Buffer;
  retryMs: number;
  /** Silence after which tRPC's link gives a stream up and opens a new one (three pings missed). */
  inactivityMs: number;
}

/**
 * One SSE stream of `conversation.events`: one HTTP response carrying one subscription, and — for
 * the service — one connection (presence, typing, per-user limits and slow consumers treat it as
 * one; a user with streams to three rooms has three connections). Its state for the transport's
 * sweep (keep-alive pings, the longest life, token expiry) lives here; nothing is timed per stream.
 */
export class SseStream implements ConnectionHandle, Writable {
  readonly id = flatRandomId();
  readonly transport = 'sse' as const;
  readonly openedAt = Date.now();
  /** When the last bytes were queued (the sweep pings a stream silent for SSE_PING_MS). */
  lastWriteAt = this.openedAt;
  /** When the sweep ends it for a resume (SSE_MAX_DURATION_MS, with jitter); Infinity: never. */
  endAt: number;
  pendingFrames: Buffer[] | null = null;
  handle: SubscriptionHandle | null = null;
  /** Headers and `connected` written: the subscription is live. */
  private live = false;
  private closed = false;

  readonly res: ServerResponse;
  readonly principal: Principal;
  readonly clientKey: string | undefined;

  constructor(
    private readonly shared: StreamShared,
    opened: { res: ServerResponse; principal: Principal; clientKey: string | undefined; maxDurationMs: number },
  ) {
    ({ res: this.res, principal: this.principal, clientKey: this.clientKey } = opened);
    // Spread over a tenth of the duration, so streams opened together do not all move at once.
    const { maxDurationMs } = opened;
    this.endAt = maxDurationMs > 0 ? this.openedAt + maxDurationMs * (0.9 + Math.random() * 0.1) : Number.POSITIVE_INFINITY;
  }

  isOpen(): boolean {
    return !this.closed && !this.res.writableEnded && !this.res.destroyed;
  }

  writeOut(data: Buffer): void {
    this.res.write(data);
  }

  send(chunk: Buffer): void {
    this.lastWriteAt = Date.now();
    this.shared.writer.write(this, chunk);
  }

  /** The subscription receives the room's events: headers and `connected` (tRPC's `started`). */
  goLive(): void {
    if (this.live || !this.isOpen()) return;
    this.live = true;
    this.res.writeHead(200, SSE_HEADERS);
    this.send(connectedChunk(this.shared.retryMs, this.shared.inactivityMs));
  }

  ping(): void {
    if (this.live) this.send(PING_CHUNK);
  }

  /** Bytes the network has not taken yet (the response's buffer and its socket's). */
  bufferedBytes(): number {
    return this.res.writableLength;
  }

  /** Ended by the server, for a reason (close-codes.ts says how each ends an SSE stream). */
  close(reason: CloseReason, detail?: string): void {
    const end = streamEndFor(reason, detail);
    // After this turn's events, as the WebSocket transport closes (a reply in flight goes first).
    setImmediate(() => {
      if (!this.isOpen()) return;
      if (end.how === 'reset') return this.reset();
      this.shared.writer.flush();
      if (end.how === 'error') this.fail(end.code, end.message);
      else this.finish(null);
    });
  }

  /** The stream cannot go on: its error, then the end (headers first if it never went live). */
  refuse(error: TRPCError): void {
    if (!this.isOpen()) return;
    if (!this.live && !this.res.headersSent) this.res.writeHead(200, SSE_HEADERS);
    this.shared.writer.flush();
    this.res.end(this.shared.errorChunk(error));
    this.closed = true;
  }

  private fail(code: 'SERVICE_UNAVAILABLE' | 'FORBIDDEN', message: string): void {
    this.refuse(new TRPCError({ code, message }));
  }

  /** Ends the response: with `return` (the stream is complete: the client stops) or without (it reconnects). */
  finish(last: typeof RETURN_CHUNK | null): void {
    if (!this.isOpen()) return;
    this.shared.writer.flush();
    if (last) this.res.end(last);
    else this.res.end();
    this.closed = true;
  }

  /** Drops the connection at once; the client reconnects and resumes. */
  reset(): void {
    this.closed = true;
    this.res.destroy();
  }

  /** Ends the stream so that the client comes back (a drain, the longest life). */
  endForResume(): void {
    this.finish(null);
  }
}

export { RETURN_CHUNK };
