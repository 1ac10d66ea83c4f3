/**
 * Sends and their delivery reports: idempotent sends retried after a dropped connection, the
 * `report` promise of an acked send — from the room's stream while the conversation is joined
 * (remembered when it came before send() resolved), else polled from `message.deliveryStatus` —
 * and the ids of events this process sent itself (kept off its own streams; conversation.ts reads them).
 */
import type { DeliveryReport } from '../../src/domain/types.ts';
import { retryAfterOf } from './retry-after.ts';
import { randomId, type ChatTransport } from './transport.ts';
import { NotConnectedError, type SendOptions, type SentMessage } from './types.ts';
import type { Connection, Lifecycle } from './state.ts';
import { remember } from './conversation.ts';

/** How many `message_delivered` reports each joined conversation remembers for sends still resolving. */
const RECENT_REPORTS = 256;

interface ReportWaiter {
  conversationId: string;
  messageId: string;
  resolve(report: DeliveryReport): void;
  reject(error: unknown): void;
  polling: boolean;
  timer: ReturnType<typeof setTimeout> | null;
}

export interface Sends {
  send(conversationId: string, body: string, sendOptions?: SendOptions): Promise<SentMessage>;
  /** Event ids this process sent itself in a conversation (excluded from its own stream, but replayed on resume). */
  ownEventIdsOf(conversationId: string): Set<string>;
  /** A `message_delivered` report came on a joined conversation's stream. */
  reportArrived(conversationId: string, report: DeliveryReport): void;
  /** A join's stream started: reports are awaited on the stream while one runs. */
  joinStarted(conversationId: string): void;
  joinEnded(conversationId: string): void;
  /** On close: every report still awaited fails. */
  closed(): void;
}

export interface SendsDeps {
  transport: ChatTransport;
  connection: Connection;
  life: Lifecycle;
  dedupWindow: number;
}

export function createSends({ transport, connection, life, dedupWindow }: SendsDeps): Sends {
  const { trpc } = transport;
  const { gated } = connection;
  const explain = (error: unknown) => transport.explain(error);
  /**
   * Started joins per conversation: a report is awaited on the stream only while one runs (a send
   * made before the server started the stream may have its report broadcast before it).
   */
  const joinCount = new Map<string, number>();
  /** Recent `message_delivered` reports per joined conversation, by message id (a report can come before send() resolves). */
  const recentReports = new Map<string, Map<string, DeliveryReport>>();
  /** Acked sends waiting for their report. */
  const reportWaiters = new Set<ReportWaiter>();
  /** Event ids this process sent itself (excluded from its own stream, but replayed on resume). */
  const ownEventIds = new Map<string, Set<string>>();

  function reportArrived(conversationId: string, report: DeliveryReport): void {
    const recent = recentReports.get(conversationId) ?? new Map<string, DeliveryReport>();
    recentReports.set(conversationId, recent);
    recent.set(report.messageId, report);
    if (recent.size > RECENT_REPORTS) recent.delete(recent.keys().next().value as string);
    for (const waiter of reportWaiters) if (waiter.messageId === report.messageId) waiter.resolve(report);
  }

  function joinEnded(conversationId: string): void {
    const left = (joinCount.get(conversationId) ?? 1) - 1;
    if (left > 0) return void joinCount.set(conversationId, left);
    joinCount.delete(conversationId);
    recentReports.delete(conversationId);
    // No stream brings the report any more: ask for it.
    for (const waiter of reportWaiters) if (waiter.conversationId === conversationId && !waiter.polling) pollReport(waiter);
  }

  /**
   * The final report of an acked send: from the room's stream when it is joined (remembered if
   * it came before send() resolved), else from `message.deliveryStatus` once the pending
   * report's `expiresAt` has passed.
   */
  function reportOf(conversationId: string, messageId: string): Promise<DeliveryReport> {
    const known = recentReports.get(conversationId)?.get(messageId);
    if (known) return Promise.resolve(known);
    const promise = new Promise<DeliveryReport>((resolve, reject) => {
      const waiter: ReportWaiter = {
        conversationId,
        messageId,
        polling: false,
        timer: null,
        resolve(report) {
          if (waiter.timer) clearTimeout(waiter.timer);
          reportWaiters.delete(waiter);
          resolve(report);
        },
        reject(error) {
          if (waiter.timer) clearTimeout(waiter.timer);
          reportWaiters.delete(waiter);
          reject(error);
        },
      };
      reportWaiters.add(waiter);
      if (!joinCount.has(conversationId)) pollReport(waiter);
    });
    promise.catch(() => undefined); // an application that never awaits it gets no unhandled rejection
    return promise;
  }

  function pollReport(waiter: ReportWaiter, attempt = 0): void {
    waiter.polling = true;
    const again = (waitMs: number) => {
      if (!reportWaiters.has(waiter)) return;
      waiter.timer = setTimeout(() => pollReport(waiter, attempt + 1), waitMs);
    };
    const backoff = Math.min(100 * 2 ** attempt, 5000);
    gated(null, (signal) => trpc.message.deliveryStatus.query({ messageId: waiter.messageId }, { signal })).then(
      (status) => {
        if (!reportWaiters.has(waiter)) return;
        if (status.status !== 'pending') return waiter.resolve(status);
        // The server's clock says when the report is due; ours may differ, so never sooner than the back-off.
        again(Math.min(Math.max(status.expiresAt.getTime() - Date.now() + 50, backoff), 60_000));
      },
      (error: unknown) => {
        if (life.closed) return waiter.reject(life.terminalError ?? error);
        // A connection problem is tried again, and so is a refusal that names a wait (the read
        // rate, a cluster outage); a server's answer (not found, forbidden) is final.
        const retryAfter = retryAfterOf(error);
        if (retryAfter !== undefined) again(Math.max(retryAfter, backoff));
        else if (error instanceof NotConnectedError || isConnectionError(error)) again(backoff);
        else waiter.reject(explain(error));
      },
    );
  }

  async function send(conversationId: string, body: string, sendOptions: SendOptions = {}): Promise<SentMessage> {
    // A clientMessageId makes the send idempotent, so a retry after a dropped socket is safe.
    const clientMessageId = sendOptions.clientMessageId ?? randomId();
    // Over SSE the clientId keeps the message off this client's own streams (unless `echo`).
    const input = { conversationId, body, clientMessageId, ...(transport.clientId !== undefined && { clientId: transport.clientId }), ...(sendOptions.ack !== undefined && { ack: sendOptions.ack }), ...(sendOptions.echo !== undefined && { echo: sendOptions.echo }) };
    for (let attempt = 0; ; attempt += 1) {
      try {
        const result = await gated(input, (signal) => trpc.message.send.mutate(input, { signal }));
        const own = ownEventIds.get(conversationId);
        if (own && !sendOptions.echo) remember(own, result.eventId, dedupWindow);
        return sendOptions.ack ? { ...result, report: reportOf(conversationId, result.messageId) } : result;
      } catch (error) {
        if (attempt >= 3 || error instanceof NotConnectedError || !isConnectionError(error) || life.closed) throw explain(error);
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  }

  return {
    send,
    ownEventIdsOf(conversationId) {
      const own = ownEventIds.get(conversationId) ?? new Set<string>();
      ownEventIds.set(conversationId, own);
      return own;
    },
    reportArrived,
    joinStarted(conversationId) {
      joinCount.set(conversationId, (joinCount.get(conversationId) ?? 0) + 1);
    },
    joinEnded,
    closed() {
      for (const waiter of [...reportWaiters]) waiter.reject(life.terminalError ?? new Error('the chat client is closed before the delivery report came'));
    },
  };
}

/** The call's answer was lost with the connection (WebSocket closed, fetch failed). */
export function isConnectionError(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message} ${String(error.cause ?? '')}` : '';
  const cause = error instanceof Error ? (error.cause as { type?: unknown } | undefined) : undefined;
  // Also "Active connection is not open" and an "Unknown error" caused by a CloseEvent (found by
  // chaos); over HTTP, a request that never got an answer ("fetch failed").
  return /WebSocket|closed|not open|ECONNRE|fetch failed/i.test(text) || cause?.type === 'close';
}
