/**
 * The typed chat client on the stock `@trpc/client`: one WebSocket (wsLink) for everything, so
 * the server knows the sending connection — or, with `transport: 'sse'` (or `'auto'` where
 * WebSockets cannot open), events over SSE and calls over HTTP (transport.ts builds the links).
 * Adds what an application otherwise writes itself:
 * automatic ack of `ackRequired` messages, de-duplication by event id, automatic resume (the
 * tRPC client re-subscribes with the last tracked id), idempotent sends with retry, a
 * throttled typing indicator that stops by itself, a connection state to render, calls that fail
 * when the server stays out of reach, and each acked send's delivery report.
 *
 *
 * Runtime-neutral: no Node built-in, no `ws`. index.ts (Node) passes the `ws` WebSocket class,
 * browser.ts uses the platform's; both re-export this module.
 *
 * This module wires the parts in `createChatClient` and keeps the typing indicator and the plain
 * calls; types.ts has the public types, state.ts the connection state and call timeouts,
 * conversation.ts one joined conversation, sends.ts sends and their delivery reports.
 */
import { decodeJwt } from 'jose';
import type { MemberPresence } from '../../src/domain/types.ts';
import type { HistoryPage } from '../../src/service/scrollback.ts';
import { createTransport } from './transport.ts';
import { NotConnectedError, type ChatClient, type ChatClientOptions, type HistoryOptions } from './types.ts';
import type { AckResult } from '../../src/acks/ack-results.ts';
import { createConnection, type Lifecycle } from './state.ts';
import { createSends, isConnectionError } from './sends.ts';
import { joinConversation } from './conversation.ts';
import { createAckBatcher, DEFAULT_ACK_BATCH_MS } from './ack-batcher.ts';
import { retryAfterOf, waitOut } from './retry-after.ts';

export * from './types.ts';

export function createChatClient(options: ChatClientOptions): ChatClient {
  const autoAck = options.autoAck ?? true;
  const throttleMs = options.typingThrottleMs ?? 2000;
  const idleMs = options.typingIdleMs ?? 4000;
  const dedupWindow = options.dedupWindow ?? 4096;
  let userId: string | undefined;

  const resolveToken = async (): Promise<string> => {
    const token = typeof options.token === 'function' ? await options.token() : options.token;
    try {
      userId = decodeJwt(token).sub;
    } catch {
      userId = undefined; // not a JWT (custom authenticate): the server still decides
    }
    return token;
  };
  if (typeof options.token === 'string') void resolveToken().catch(() => undefined);

  const life: Lifecycle = { closed: false, terminalError: null };
  // The connection state, from what the transport reports (state.ts).
  const connection = createConnection(options, life);
  const { setState, gated } = connection;

  const transport = createTransport(options, {
    token: resolveToken,
    isClosed: () => life.closed,
    refused(error) {
      if (life.closed || life.terminalError) return;
      // Refused for good (UNAUTHORIZED): say so once and stop, rather than reconnect with the
      // same token — after the frames of this turn, which answer each pending call with its own error.
      life.terminalError = error;
      setTimeout(() => {
        if (life.closed) return;
        setState('closed', error);
        options.onTerminalError?.(error);
        for (const fail of openJoins) fail(error);
        void client.close();
      }, 0);
    },
    closedForGood(code) {
      setState('closed', life.terminalError ?? new Error(`the server closed the connection for good (${code})`));
      options.onTerminalClose?.(code);
      void client.close();
    },
    state(status, error) {
      connection.reported(status, error);
    },
    kindChanged() {
      setState(connection.state.status, connection.state.error);
    },
  });
  connection.attach(transport);
  const { trpc } = transport;
  const explain = (error: unknown) => transport.explain(error);

  /** Joins still running, to fail with the reason when the server refuses the client for good. */
  const openJoins = new Set<(error: unknown) => void>();
  const sends = createSends({ transport, connection, life, dedupWindow });
  const acks = createAckBatcher({
    batchMs: options.ackBatchMs ?? DEFAULT_ACK_BATCH_MS,
    send: (list) => {
      const input = list.length === 1 ? list[0]! : { acks: list };
      return gated(input, (signal) => trpc.message.ack.mutate(input, { signal }));
    },
    // The answer was lost with the socket: send again (acks are idempotent). Not after
    // callTimeoutMs offline (NotConnectedError): the server's re-send asks again then.
    shouldRetry: (error) => !(error instanceof NotConnectedError) && isConnectionError(error),
    isClosed: () => life.closed,
  });
  const typingState = new Map<string, { on: boolean; lastSent: number; idle: ReturnType<typeof setTimeout> | null }>();

  function setTyping(conversationId: string, isTyping: boolean): void {
    const state = typingState.get(conversationId) ?? { on: false, lastSent: 0, idle: null };
    typingState.set(conversationId, state);
    if (state.idle) clearTimeout(state.idle);
    state.idle = null;
    const now = Date.now();
    if (isTyping) {
      if (!state.on || now - state.lastSent >= throttleMs) {
        state.on = true;
        state.lastSent = now;
        void gated(null, () => trpc.typing.set.mutate({ conversationId, isTyping: true })).catch(() => undefined);
      }
      state.idle = setTimeout(() => setTyping(conversationId, false), idleMs);
      state.idle.unref?.();
    } else if (state.on) {
      state.on = false;
      typingState.delete(conversationId);
      void gated(null, () => trpc.typing.set.mutate({ conversationId, isTyping: false })).catch(() => undefined);
    }
  }

  function history(conversationId: string, { before, limit, types }: HistoryOptions = {}): Promise<HistoryPage> {
    const input = { conversationId, ...(before !== undefined && { before }), ...(limit !== undefined && { limit }), ...(types !== undefined && { types }) };
    return gated(input, (signal) => trpc.conversation.history.query(input, { signal })).catch((e: unknown) => Promise.reject(explain(e)));
  }

  const client: ChatClient = {
    get userId() {
      return userId;
    },
    get state() {
      return connection.state;
    },
    onState: (callback) => connection.onState(callback),
    get transport() {
      return transport.kind;
    },
    trpc,
    join: (conversationId, joinOptions) => joinConversation(
      { transport, connection, life, sends, openJoins, autoAck, acks, dedupWindow, userId: () => userId, history },
      conversationId,
      joinOptions,
    ),
    send: sends.send as ChatClient['send'],
    ack: (conversationId, messageId) =>
      gated(null, (signal) => trpc.message.ack.mutate({ conversationId, messageId }, { signal })).then(
        (result) => result as AckResult, // the single form is answered in the single form
        (e: unknown) => Promise.reject(explain(e)),
      ),
    setTyping,
    presence: async (conversationId) => {
      const members: MemberPresence[] = [];
      for (let after: string | undefined; ; ) {
        const input = { conversationId, ...(after !== undefined && { after }) };
        // A page refused under the read rate is asked again after the wait it names: the walk
        // completes at the server's pace rather than failing halfway with the pages read so far.
        const page = await gated(null, (signal) => trpc.conversation.presence.query(input, { signal })).catch(async (e: unknown) => {
          const wait = retryAfterOf(e);
          if (wait === undefined || life.closed) throw explain(e);
          await waitOut(wait);
          return null;
        });
        if (page === null) continue;
        members.push(...page.members);
        if (page.next === null) return members;
        after = page.next;
      }
    },
    deliveryStatus: (messageId) => gated(null, (signal) => trpc.message.deliveryStatus.query({ messageId }, { signal })).catch((e: unknown) => Promise.reject(explain(e))),
    history,
    async close() {
      if (life.closed) return;
      acks.flushNow(); // acks still in their window leave before the socket closes
      life.closed = true;
      for (const state of typingState.values()) if (state.idle) clearTimeout(state.idle);
      typingState.clear();
      setState('closed', null);
      connection.clearTimers();
      sends.closed();
      await transport.close();
    },
  };
  return client;
}
