/**
 * The chat client's connection state and call timeouts: turns what the transport reports into
 * connecting / connected / reconnecting / closed for `chat.state` and `chat.onState`, and runs
 * every call through `gated` — the transport's frame budget, and a `NotConnectedError` once the
 * client has not been connected for `callTimeoutMs` while the call was pending.
 * Also the `Lifecycle` every module of one client shares: closed, and why refused for good.
 */
import type { TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../../src/transport/router.ts';
import type { ChatTransport } from './transport.ts';
import { NotConnectedError, type ChatClientOptions, type ConnectionState, type ConnectionStatus } from './types.ts';

/** One client's life, shared by its modules (read at the moment each needs it). */
export interface Lifecycle {
  closed: boolean;
  /** Why the server refused this client for good, once it has. */
  terminalError: TRPCClientError<AppRouter> | null;
}

/** A call in flight, with a timer that runs while the client is not connected. */
interface PendingCall {
  timer: ReturnType<typeof setTimeout> | null;
  fail: (error: Error) => void;
}

export interface Connection {
  readonly state: ConnectionState;
  onState(callback: (state: ConnectionState) => void): () => void;
  setState(status: ConnectionStatus, error: Error | null): void;
  /** The transport's `state` hook: 'connected', or down with the error. */
  reported(status: 'connected' | 'down', error: Error | null): void;
  /** Called once the transport is made (the state's `transport` and the timeout's URL come from it). */
  attach(transport: ChatTransport): void;
  /** A call through the transport's budget and the call timeout (see below). */
  gated<T>(input: unknown, call: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /** On close: stops every pending call's timer. */
  clearTimers(): void;
}

export function createConnection(options: ChatClientOptions, life: Lifecycle): Connection {
  const callTimeoutMs = options.callTimeoutMs ?? 10_000;
  let everConnected = false;
  let state: ConnectionState = { status: 'connecting', transport: undefined, error: null };
  const stateListeners = new Set<(state: ConnectionState) => void>();
  const pendingCalls = new Set<PendingCall>();
  /** The transport, once made. */
  const made: { transport?: ChatTransport } = {};

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
  function armCallTimer(call: PendingCall): void {
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

  /**
   * A call through the transport's budget: it joins a frame (or batch) only when that stays small
   * enough. It fails with a NotConnectedError once the client has not been connected for
   * `callTimeoutMs` while it was pending (and is aborted, so it does not leave later).
   */
  function gated<T>(input: unknown, call: (signal: AbortSignal) => Promise<T>): Promise<T> {
    // A closed client stays closed (the stock client would open a new socket for the call).
    if (life.closed) return Promise.reject(life.terminalError ?? new Error('the chat client is closed'));
    const transport = made.transport as ChatTransport; // calls are made once the transport is
    return new Promise<T>((resolve, reject) => {
      const controller = new AbortController();
      let settled = false;
      const settle = () => {
        settled = true;
        if (pending.timer) clearTimeout(pending.timer);
        pendingCalls.delete(pending);
      };
      const pending: PendingCall = {
        timer: null,
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
        if (life.closed) throw life.terminalError ?? new Error('the chat client is closed');
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

  return {
    get state() {
      return state;
    },
    onState(callback) {
      stateListeners.add(callback);
      return () => stateListeners.delete(callback);
    },
    setState,
    reported(status, error) {
      if (life.closed) return;
      if (status === 'connected') {
        everConnected = true;
        setState('connected', null);
      } else {
        setState(everConnected ? 'reconnecting' : 'connecting', error);
      }
    },
    attach(transport) {
      made.transport = transport;
      state = { ...state, transport: transport.kind };
    },
    gated,
    clearTimers() {
      for (const call of pendingCalls) if (call.timer) clearTimeout(call.timer);
    },
  };
}
