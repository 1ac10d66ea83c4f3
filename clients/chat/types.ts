/**
 * The chat client's public types and options — what an application names: the client, one
 * joined conversation, the connection state, sends and their reports, and `NotConnectedError`
 * (the one class). No behaviour lives here; client.ts re-exports all of it.
 */
import type { TRPCClientError, TRPCClient } from '@trpc/client';
import type { AppRouter } from '../../src/transport/router.ts';
import type { RoomEvent, SendResult, MemberPresence, DeliveryReport, PendingDeliveryReport } from '../../src/domain/types.ts';
import type { TransportKind, TransportOptions } from './transport.ts';
import type { HistoryPage } from '../../src/service/scrollback.ts';
import type { PresenceView } from './presence-model.ts';

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
  /**
   * Automatic acks made within this many ms of the first leave as one `message.ack` call with a
   * list (default 5; 0: each ack its own call, at once). See ack-batcher.ts.
   */
  ackBatchMs?: number;
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
