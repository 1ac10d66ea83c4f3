/**
 * One joined conversation: its event stream (resumed from the last id, restarted after the wait
 * a refused start names), de-duplication by event id and `resendOf`, the resume point a `resync`
 * voids, automatic ack of `ackRequired` messages, the async iterator and `on`/`next`, the
 * presence model it feeds, and the delivery reports it hands to sends.ts.
 */
import type { TRPCClientError } from '@trpc/client';
import type { AppRouter } from '../../src/transport/router.ts';
import type { RoomEvent } from '../../src/domain/types.ts';
import type { HistoryPage } from '../../src/service/scrollback.ts';
import type { ChatTransport } from './transport.ts';
import { PresenceModel } from './presence-model.ts';
import { retryAfterOf } from './retry-after.ts';
import type { Conversation, HistoryOptions, JoinOptions } from './types.ts';
import type { Connection, Lifecycle } from './state.ts';
import type { Sends } from './sends.ts';
import type { AckBatcher } from './ack-batcher.ts';

/** What a join needs of its client. */
export interface JoinDeps {
  transport: ChatTransport;
  connection: Connection;
  life: Lifecycle;
  sends: Sends;
  /** Joins still running, to fail with the reason when the server refuses the client for good. */
  openJoins: Set<(error: unknown) => void>;
  autoAck: boolean;
  /** Where automatic acks go: coalesced into list calls (ack-batcher.ts). */
  acks: AckBatcher;
  dedupWindow: number;
  /** The token's user (its own ackRequired messages are not acked). */
  userId(): string | undefined;
  history(conversationId: string, options?: HistoryOptions): Promise<HistoryPage>;
}

/** Adds `id` to a de-duplication set that keeps the newest `max` ids. */
export function remember(set: Set<string>, id: string, max: number): void {
  set.add(id);
  if (set.size > max) set.delete(set.values().next().value as string);
}

export function joinConversation(deps: JoinDeps, conversationId: string, joinOptions: JoinOptions = {}): Conversation {
  const { transport, connection, life, sends, openJoins, autoAck, dedupWindow, history } = deps;
  const { trpc } = transport;
  const { gated } = connection;
  const explain = (error: unknown) => transport.explain(error);
  const seen = new Set<string>();
  const own = sends.ownEventIdsOf(conversationId);
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
    if (!done && counted) sends.joinEnded(conversationId);
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
    const wait = retryAfterOf(error);
    if (wait === undefined || done || life.closed) return fail(explain(error));
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (!done && !life.closed) subscription = subscribe(lastEventId);
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
          sends.joinStarted(conversationId);
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
        if (event.type === 'message_delivered') sends.reportArrived(conversationId, event.report);
        const original = event.type === 'message' && event.resendOf !== undefined ? event.resendOf : id;
        const duplicate = seen.has(original) || own.has(original) || (event.type !== 'resync' && isAtOrBefore(original, resumeFrom));
        if (event.type === 'message' && event.message.ackRequired && autoAck && event.message.senderId !== deps.userId()) {
          // Re-sends of a message we already have are acked again: our first ack may have been lost.
          deps.acks.ack(conversationId, event.message.id);
        }
        lastEventId = id;
        if (duplicate) return;
        remember(seen, original, dedupWindow);
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

/** Whether `id` is `resumeFrom` or older, in the same room history (ids of one epoch sort as strings). */
function isAtOrBefore(id: string, resumeFrom: string | undefined): boolean {
  if (resumeFrom === undefined) return false;
  const epoch = id.slice(0, id.indexOf(':') + 1);
  return epoch !== '' && resumeFrom.startsWith(epoch) && id <= resumeFrom;
}
