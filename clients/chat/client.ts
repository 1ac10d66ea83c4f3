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
 * Runtime-neutral: no Node built-in, no `ws`. index.ts (Node) passes the `ws` WebSocket class,
 * browser.ts uses the platform's; both re-export this module.
 */
import type { TRPCClientError, TRPCClient } from '@trpc/client';
import { decodeJwt } from 'jose';
import type { AppRouter } from '../../src/transport/router.ts';
import type { RoomEvent, SendResult, MemberPresence, DeliveryReport, PendingDeliveryReport } from '../../src/domain/types.ts';
import { createTransport, randomId, type TransportKind, type TransportOptions } from './transport.ts';
import type { HistoryPage } from '../../src/service/scrollback.ts';
import { PresenceModel, type PresenceView } from './presence-model.ts';

export type { AppRouter, RoomEvent, SendResult, MemberPresence, DeliveryReport };
export type { HistoryPage };
export type { PresenceMember, PresenceView } from './presence-model.ts';

export type TokenSource = string | (() => string | Promise<string>);
export type { TransportKind, TransportOptions, WebSocketClass } from './transport.ts';

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** What a UI draws the connection from (`chat.state`, `chat.onState`). */
export interface ConnectionState {
  /** connecting: never connected yet; reconnecting: was connected, lost it; closed: close() or refused for good. */
  status: ConnectionStatus;
  /** The transport in use; undefined while `auto` is still trying the WebSocket. */
  transport: 'websocket' | 'sse' | undefined;
  /** the last connection error (Socket.IO's connect_error), null once connected */
  error: Error | null;
}

/** A send's result; with `ack`, `report` resolves with the final delivery report. */
export interface SentMessage extends SendResult {
  report?: Promise<DeliveryReport>;
}

export interface AckedSentMessage extends SendResult {
  /** The final delivery report (delivered, partial or failed) — also when the sender is alone or has not joined the room. */
  report: Promise<DeliveryReport>;
}

/** A call failed because the client was not connected for `callTimeoutMs`. */
export class NotConnectedError extends Error {
  override name = 'NotConnectedError';
  constructor(message: string, readonly state: ConnectionState) {
    super(message, state.error ? { cause: state.error } : undefined);
  }
}

/** `url`, `transport` (websocket | sse | auto), `autoFallbackMs`, `retryDelayMs`, `maxFrameBytes`: see transport.ts. */
export interface ChatClientOptions extends TransportOptions {
  /** The token, or a function asked for a fresh one on every connection (and, over SSE/HTTP, every request). */
  token: TokenSource;
  /** Ack `ackRequired` messages automatically (default true). */
  autoAck?: boolean;
  /** Typing: at most one `typing.set(true)` per this interval while typing continues (default 2000). */
  typingThrottleMs?: number;
  /** Typing: sent `isTyping: false` after this long without a `setTyping(true)` call (default 4000). */
  typingIdleMs?: number;
  /** Called when the server closes the socket with a terminal code (4500–4999); the client then closes. WebSocket only. */
  onTerminalClose?: (code: number) => void;
  /**
   * Called when the server refuses the connection for good — UNAUTHORIZED: the token is missing,
   * invalid or expired (`error.message` says which). The client then closes instead of
   * reconnecting; every pending call and join fails with the same error.
   */
  onTerminalError?: (error: TRPCClientError<AppRouter>) => void;
  /** How many event ids to remember per conversation for de-duplication (default 4096). */
  dedupWindow?: number;
  /**
   * A call (send, ack, presence, history, deliveryStatus, setTyping's) made or pending while the
   * client is not connected fails after this long (default 10000) with a `NotConnectedError`
   * naming the URL, the status and the last error. Joins do not fail: they wait (`state` says why).
   */
  callTimeoutMs?: number;
}

export interface JoinOptions {
  /** Resume after this event id (e.g. one persisted across process restarts). */
  lastEventId?: string;
  onEvent?: (event: RoomEvent, eventId: string) => void;
  onError?: (error: unknown) => void;
}

export type SendOptions = {
  clientMessageId?: string;
  ack?: boolean | { timeoutMs: number };
  echo?: boolean;
};

/** A scrollback page request: `before` a page's `nextBefore` (newest first when absent), `limit` 1–100 (50). */
export interface HistoryOptions {
  before?: string;
  limit?: number;
  /** Only these event types (e.g. `['message']`). */
  types?: Array<RoomEvent['type']>;
}

/** One joined conversation: events as an async iterator and/or callbacks. */
export interface Conversation extends AsyncIterable<{ id: string; event: RoomEvent }> {
  readonly conversationId: string;
  /** The stream's position: the last event id it received (the resume point). */
  readonly lastEventId: string | undefined;
  /** Registers a callback for one event type; returns its remover. */
  on<TType extends RoomEvent['type']>(type: TType, listener: (event: Extract<RoomEvent, { type: TType }>, id: string) => void): () => void;
  /** Resolves with the next event matching the predicate (handy in scripts and tests). */
  next<TType extends RoomEvent['type']>(type: TType, predicate?: (event: Extract<RoomEvent, { type: TType }>) => boolean, timeoutMs?: number): Promise<Extract<RoomEvent, { type: TType }>>;
  /** Resolves once the server has started the subscription. */
  readonly started: Promise<void>;
  /** Who is here now (with typing), one model whatever the wire: snapshot, single events, `presence_diff`, pages. */
  readonly presence: PresenceView;
  /** Called after every change of `presence`; returns its remover. */
  onPresence(callback: (presence: PresenceView) => void): () => void;
  /** Scrollback: stored events newest first; pass `nextBefore` as `before` until it is null. Needs no join. */
  history(options?: HistoryOptions): Promise<HistoryPage>;
  leave(): void;
}

export interface ChatClient {
  readonly userId: string | undefined;
  /** The connection state: status, transport, last error. */
  readonly state: ConnectionState;
  /** Called on every change of `state`; returns its remover. */
  onState(callback: (state: ConnectionState) => void): () => void;
  /** The transport in use: `websocket` or `sse`; undefined while `auto` is still trying the WebSocket. */
  readonly transport: TransportKind | undefined;
  readonly trpc: TRPCClient<AppRouter>;
  join(conversationId: string, options?: JoinOptions): Conversation;
  /** With `ack`, the result carries `report`: a promise of the final delivery report. */
  send(conversationId: string, body: string, options: SendOptions & { ack: true | { timeoutMs: number } }): Promise<AckedSentMessage>;
  send(conversationId: string, body: string, options?: SendOptions): Promise<SentMessage>;
  ack(conversationId: string, messageId: string): Promise<{ accepted: boolean; duplicate: boolean; late: boolean }>;
  setTyping(conversationId: string, isTyping: boolean): void;
  presence(conversationId: string): Promise<MemberPresence[]>;
  deliveryStatus(messageId: string): Promise<DeliveryReport | PendingDeliveryReport>;
  /** Scrollback of a conversation (a window of HISTORY_SIZE events, not an archive); no join needed. */
  history(conversationId: string, options?: HistoryOptions): Promise<HistoryPage>;
  close(): Promise<void>;
}

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

  let closed = false;
  /** Why the server refused this client for good, once it has. */
  let terminalError: TRPCClientError<AppRouter> | null = null;

  // The connection state, from what the transport reports (see setState).
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  let everConnected = false;
  let state: ConnectionState = { status: 'connecting', transport: undefined, error: null };
  const stateListeners = new Set<(state: ConnectionState) => void>();
  /** Calls in flight, each with a timer that runs while the client is not connected. */
  const pendingCalls = new Set<{ timer: ReturnType<typeof setTimeout> | null; fail: (error: Error) => void }>();
  /** The transport, once made (the state's `transport` and the timeout's URL come from it). */
  const made: { transport?: ReturnType<typeof createTransport> } = {};
  function setState(status: ConnectionStatus, error: Error | null): void {
    if (state.status === 'closed') return; // closed stays closed (with the reason it closed for)
    const next: ConnectionState = { status, transport: made.transport?.kind, error };
    if (next.status === state.status && next.transport === state.transport && next.error === state.error) return;
    state = next;
    for (const call of pendingCalls) armCallTimer(call);
    for (const listener of [...stateListeners]) {
      try {
        listener(state);
      } catch (listenerError) {
        setTimeout(() => { throw listenerError; }, 0); // the application's bug, not the client's: report it
      }
    }
  }
  function armCallTimer(call: { timer: ReturnType<typeof setTimeout> | null; fail: (error: Error) => void }): void {
    if (state.status === 'connected') {
      if (call.timer) clearTimeout(call.timer);
      call.timer = null;
    } else {
      call.timer ??= setTimeout(() => call.fail(notConnected()), callTimeoutMs);
    }
  }
  function notConnected(): NotConnectedError {
    const url = made.transport?.url ?? (typeof options.url === 'string' ? options.url : 'the server');
    return new NotConnectedError(`not connected to ${url} after ${callTimeoutMs} ms (${state.status})${state.error ? `: ${state.error.message}` : ''}`, state);
  }

  const transport = createTransport(options, {
    token: resolveToken,
    isClosed: () => closed,
    refused(error) {
      if (closed || terminalError) return;
      // Refused for good (UNAUTHORIZED): say so once and stop, rather than reconnect with the
      // same token — after the frames of this turn, which answer each pending call with its own error.
      terminalError = error;
      setTimeout(() => {
        if (closed) return;
        setState('closed', error);
        options.onTerminalError?.(error);
        for (const fail of openJoins) fail(error);
        void client.close();
      }, 0);
    },
    closedForGood(code) {
      setState('closed', terminalError ?? new Error(`the server closed the connection for good (${code})`));
      options.onTerminalClose?.(code);
      void client.close();
    },
    state(status, error) {
      if (closed) return;
      if (status === 'connected') {
        everConnected = true;
        setState('connected', null);
      } else {
        setState(everConnected ? 'reconnecting' : 'connecting', error);
      }
    },
    kindChanged() {
      setState(state.status, state.error);
    },
  });
  made.transport = transport;
  state = { ...state, transport: transport.kind };
  const { trpc } = transport;
  const explain = (error: unknown) => transport.explain(error);

  /** Joins still running, to fail with the reason when the server refuses the client for good. */
  const openJoins = new Set<(error: unknown) => void>();
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
  const typingState = new Map<string, { on: boolean; lastSent: number; idle: ReturnType<typeof setTimeout> | null }>();

  function remember(set: Set<string>, id: string): void {
    set.add(id);
    if (set.size > dedupWindow) set.delete(set.values().next().value as string);
  }

  function join(conversationId: string, joinOptions: JoinOptions = {}): Conversation {
    const seen = new Set<string>();
    const own = ownEventIds.get(conversationId) ?? new Set<string>();
    ownEventIds.set(conversationId, own);
    const listeners = new Set<(event: RoomEvent, id: string) => void>();
    if (joinOptions.onEvent) listeners.add(joinOptions.onEvent);
    const buffered: Array<{ id: string; event: RoomEvent }> = [];
    const iterWaiters: Array<(v: IteratorResult<{ id: string; event: RoomEvent }>) => void> = [];
    let iterating = false;
    let done = false;
    let lastEventId = joinOptions.lastEventId;
    let resumeFrom = joinOptions.lastEventId;
    let markStarted!: () => void;
    const started = new Promise<void>((resolve) => (markStarted = resolve));

    let counted = false;
    const finish = () => {
      if (!done && counted) joinEnded(conversationId);
      done = true;
      openJoins.delete(fail);
      for (const w of iterWaiters.splice(0)) w({ value: undefined, done: true });
    };
    const fail = (error: unknown) => {
      if (done) return;
      joinOptions.onError?.(error);
      finish();
    };
    openJoins.add(fail);

    // A start refused for a while (the per-user subscribe rate, a cluster outage) is tried again
    // after the wait the server names, from where the stream stands.
    let retryTimer: ReturnType<typeof setTimeout> | null = null;
    const retryOrFail = (error: TRPCClientError<AppRouter>) => {
      const data: unknown = error.data;
      const wait = typeof data === 'object' && data !== null && 'retryAfterMs' in data ? data.retryAfterMs : undefined;
      if (typeof wait !== 'number' || done || closed) return fail(explain(error));
      retryTimer = setTimeout(() => {
        retryTimer = null;
        if (!done && !closed) subscription = subscribe(lastEventId);
      }, wait + Math.floor(Math.random() * 100));
    };
    const presenceModel = new PresenceModel(
      (after) => gated(null, () => trpc.conversation.presence.query({ conversationId, ...(after !== undefined && { after }) })),
    );
    const subscribe = (from: string | undefined) => trpc.conversation.events.subscribe(
      { conversationId, ...(from !== undefined && { lastEventId: from }), ...(transport.clientId !== undefined && { clientId: transport.clientId }) },
      {
        onStarted: () => {
          if (!counted && !done) {
            counted = true;
            joinCount.set(conversationId, (joinCount.get(conversationId) ?? 0) + 1);
          }
          markStarted();
        },
        onData: ({ id, data: event }) => {
          if (event.type === 'subscribed') {
            presenceModel.apply(event);
            // The stream's position and who is here: for `on('subscribed')` listeners only.
            lastEventId = id;
            for (const listener of listeners) if (listener !== joinOptions.onEvent) listener(event, id);
            return;
          }
          // An event at or before the id this join resumed from was delivered before (to an
          // earlier page, say); an ack re-send names the id its message had first (`resendOf`):
          // either is acked again, but not shown again.
          // A resync says the resume point is void: from then on nothing is hidden by it.
          if (event.type === 'resync') resumeFrom = undefined;
          if (event.type === 'message_delivered') reportArrived(conversationId, event.report);
          const original = event.type === 'message' && event.resendOf !== undefined ? event.resendOf : id;
          const duplicate = seen.has(original) || own.has(original) || (event.type !== 'resync' && isAtOrBefore(original, resumeFrom));
          if (event.type === 'message' && event.message.ackRequired && autoAck && event.message.senderId !== userId) {
            // Re-sends of a message we already have are acked again: our first ack may have been lost.
            const ack = { conversationId, messageId: event.message.id };
            void gated(ack, () => trpc.message.ack.mutate(ack)).catch(() => undefined);
          }
          lastEventId = id;
          if (duplicate) return;
          remember(seen, original);
          presenceModel.apply(event);
          for (const listener of listeners) listener(event, id);
          const item = { id, event };
          const waiter = iterWaiters.shift();
          if (waiter) waiter({ value: item, done: false });
          else if (iterating) buffered.push(item);
        },
        onError: retryOrFail,
        onComplete: finish,
        onStopped: finish,
      },
    );
    let subscription = subscribe(joinOptions.lastEventId);

    const conversation: Conversation = {
      conversationId,
      get lastEventId() {
        return lastEventId;
      },
      started,
      get presence() {
        return presenceModel.view;
      },
      onPresence: (callback) => presenceModel.onChange(callback),
      on(type, listener) {
        const wrapped = (event: RoomEvent, id: string) => {
          if (event.type === type) (listener as (e: RoomEvent, id: string) => void)(event, id);
        };
        listeners.add(wrapped);
        return () => listeners.delete(wrapped);
      },
      next(type, predicate, timeoutMs = 5000) {
        return new Promise((resolve, reject) => {
          const timer = setTimeout(() => {
            off();
            reject(new Error(`no ${type} event within ${timeoutMs} ms in ${conversationId}`));
          }, timeoutMs);
          const off = conversation.on(type, (event) => {
            if (predicate && !predicate(event)) return;
            clearTimeout(timer);
            off();
            resolve(event);
          });
        });
      },
      history: (historyOptions) => history(conversationId, historyOptions),
      leave() {
        if (retryTimer) clearTimeout(retryTimer);
        subscription.unsubscribe();
        finish();
      },
      [Symbol.asyncIterator]() {
        iterating = true;
        return {
          next: () => {
            const item = buffered.shift();
            if (item) return Promise.resolve({ value: item, done: false });
            if (done) return Promise.resolve({ value: undefined, done: true });
            return new Promise((resolve) => iterWaiters.push(resolve));
          },
          return: () => {
            conversation.leave();
            return Promise.resolve({ value: undefined, done: true });
          },
        };
      },
    };
    return conversation;
  }

  /**
   * A call through the transport's budget: it joins a frame (or batch) only when that stays small
   * enough. It fails with a NotConnectedError once the client has not been connected for
   * `callTimeoutMs` while it was pending (and is aborted, so it does not leave later).
   */
  function gated<T>(input: unknown, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    // A closed client stays closed (the stock client would open a new socket for the call).
    if (closed) return Promise.reject(terminalError ?? new Error('the chat client is closed'));
    return new Promise<T>((resolve, reject) => {
      const controller = new AbortController();
      let settled = false;
      const settle = () => {
        settled = true;
        if (pending.timer) clearTimeout(pending.timer);
        pendingCalls.delete(pending);
      };
      const pending = {
        timer: null as ReturnType<typeof setTimeout> | null,
        fail(error: Error) {
          if (settled) return;
          settle();
          controller.abort(error);
          reject(error);
        },
      };
      pendingCalls.add(pending);
      armCallTimer(pending);
      (async () => {
        await transport.admit(input).catch(() => undefined); // refused only when closed: said below
        if (settled) return undefined as T;
        if (closed) throw terminalError ?? new Error('the chat client is closed');
        return call(controller.signal);
      })().then(
        (value) => {
          if (settled) return;
          settle();
          resolve(value);
        },
        (error: unknown) => {
          if (settled) return;
          settle();
          reject(error);
        },
      );
    });
  }

  interface ReportWaiter {
    conversationId: string;
    messageId: string;
    resolve(report: DeliveryReport): void;
    reject(error: unknown): void;
    polling: boolean;
    timer: ReturnType<typeof setTimeout> | null;
  }

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
        if (closed) return waiter.reject(terminalError ?? error);
        // A connection problem is tried again; a server's answer (not found, forbidden) is final.
        if (error instanceof NotConnectedError || isConnectionError(error)) again(backoff);
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
        if (own && !sendOptions.echo) remember(own, result.eventId);
        return sendOptions.ack ? { ...result, report: reportOf(conversationId, result.messageId) } : result;
      } catch (error) {
        if (attempt >= 3 || error instanceof NotConnectedError || !isConnectionError(error) || closed) throw explain(error);
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  }

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
      return state;
    },
    onState(callback) {
      stateListeners.add(callback);
      return () => stateListeners.delete(callback);
    },
    get transport() {
      return transport.kind;
    },
    trpc,
    join,
    send: send as ChatClient['send'],
    ack: (conversationId, messageId) => gated(null, (signal) => trpc.message.ack.mutate({ conversationId, messageId }, { signal })).catch((e: unknown) => Promise.reject(explain(e))),
    setTyping,
    presence: async (conversationId) => {
      const members: MemberPresence[] = [];
      for (let after: string | undefined; ; ) {
        const page = await gated(null, (signal) => trpc.conversation.presence.query({ conversationId, ...(after !== undefined && { after }) }, { signal })).catch((e: unknown) => Promise.reject(explain(e)));
        members.push(...page.members);
        if (page.next === null) return members;
        after = page.next;
      }
    },
    deliveryStatus: (messageId) => gated(null, (signal) => trpc.message.deliveryStatus.query({ messageId }, { signal })).catch((e: unknown) => Promise.reject(explain(e))),
    history,
    async close() {
      if (closed) return;
      closed = true;
      for (const state of typingState.values()) if (state.idle) clearTimeout(state.idle);
      typingState.clear();
      setState('closed', null);
      for (const call of pendingCalls) if (call.timer) clearTimeout(call.timer);
      for (const waiter of [...reportWaiters]) waiter.reject(terminalError ?? new Error('the chat client is closed before the delivery report came'));
      await transport.close();
    },
  };
  return client;
}

/** How many `message_delivered` reports each joined conversation remembers for sends still resolving. */
const RECENT_REPORTS = 256;

function isConnectionError(error: unknown): boolean {
  const text = error instanceof Error ? `${error.name} ${error.message} ${String(error.cause ?? '')}` : '';
  const cause = error instanceof Error ? (error.cause as { type?: unknown } | undefined) : undefined;
  // Also "Active connection is not open" and an "Unknown error" caused by a CloseEvent (found by
  // chaos); over HTTP, a request that never got an answer ("fetch failed").
  return /WebSocket|closed|not open|ECONNRE|fetch failed/i.test(text) || cause?.type === 'close';
}

/** Whether `id` is `resumeFrom` or older, in the same room history (ids of one epoch sort as strings). */
function isAtOrBefore(id: string, resumeFrom: string | undefined): boolean {
  if (resumeFrom === undefined) return false;
  const epoch = id.slice(0, id.indexOf(':') + 1);
  return epoch !== '' && resumeFrom.startsWith(epoch) && id <= resumeFrom;
}
