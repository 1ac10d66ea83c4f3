import type { TrackedEnvelope } from '@trpc/server';
import { z } from 'zod';
import type { Config } from '../config.ts';
import { CONVERSATION_ID_PATTERN } from '../domain/conversation-id.ts';
import { DomainError } from '../domain/errors.ts';
import type { RoomEvent, RoomEventType } from '../domain/types.ts';
import { parseEventId } from '../history/event-id.ts';
import { historyReadCost, memberReadCost, ReadRates } from '../service/read-rates.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import { ackReplyJson, createAckInput, runAck, type AckInput } from './ack-calls.ts';
import { trpcErrorOf } from './trpc-errors.ts';
import { authedProcedure, requireAccess, t, type Authorize, type Context } from './trpc.ts';

export const conversationIdSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(128, 'must be at most 128 characters')
  .regex(CONVERSATION_ID_PATTERN, 'must contain only A-Z a-z 0-9 _ . : -');

/**
 * A client's own id (chosen by the client, scoped by its user): named in the `conversation.events`
 * input of its SSE streams and in its sends over HTTP, it keeps those sends off its own streams.
 */
const clientIdSchema = z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1–64 characters of A-Z a-z 0-9 _ -');

/** `conversation.events` input; the WebSocket and SSE transports validate with this same schema. */
export const eventsInputSchema = z.object({ conversationId: conversationIdSchema, lastEventId: z.string().max(128).nullish(), clientId: clientIdSchema.optional() });

/** Most members one `conversation.presence` page lists (and its default). */
export const PRESENCE_PAGE_LIMIT = 1000;

const presenceInputSchema = z.object({
  conversationId: conversationIdSchema,
  after: z.string().min(1, 'must not be empty').max(256, 'must be at most 256 characters').nullish(),
  limit: z.number().int('must be a whole number').min(1, 'must be at least 1').max(PRESENCE_PAGE_LIMIT, `must be at most ${PRESENCE_PAGE_LIMIT}`).optional(),
});

const messageIdSchema = z.string().min(1, 'must not be empty').max(64, 'must be at most 64 characters');

/** Largest `conversation.history` page, and the size of a page when `limit` is not given. */
export const HISTORY_PAGE_LIMIT = 100;
export const HISTORY_DEFAULT_LIMIT = 50;

/**
 * Every RoomEvent type, for `conversation.history`'s `types` filter (types that are never stored —
 * typing, subscribed, resync — are accepted and match nothing). Fails to compile when RoomEvent
 * gains a type this list lacks.
 */
export const HISTORY_EVENT_TYPES = listsEveryEventType([
  'message', 'user_joined', 'user_left', 'user_disconnected', 'presence_diff', 'typing',
  'message_delivered', 'conversation_updated', 'system', 'resync', 'subscribed',
] as const);

function listsEveryEventType<T extends readonly [string, ...string[]]>(
  types: T & ([Exclude<RoomEventType, T[number]>] extends [never] ? unknown : { missing: Exclude<RoomEventType, T[number]> }),
): T {
  return types;
}

/** `conversation.history` input: one page of the room's stored events, newest first. */
export const historyInputSchema = z.object({
  conversationId: conversationIdSchema,
  before: z
    .string()
    .min(1, 'must not be empty')
    .max(128, 'must be at most 128 characters')
    .refine((id) => parseEventId(id) !== null, 'must be an event id of this conversation (a nextBefore, or an id its events carried)')
    .optional(),
  limit: z.number().int('must be a whole number').min(1, 'must be at least 1').max(HISTORY_PAGE_LIMIT, `must be at most ${HISTORY_PAGE_LIMIT}`).optional(),
  types: z.array(z.enum(HISTORY_EVENT_TYPES)).min(1, 'must name at least one event type (leave it out for all)').max(HISTORY_EVENT_TYPES.length).optional(),
});

export interface RouterDeps {
  service: RealtimeService;
  config: Config;
  authorize: Authorize;
}

export function createAppRouter({ service, config, authorize }: RouterDeps) {
  // The read procedures' per-user rate (READ_RATE_PER_SEC): checked before any other work, so a
  // refusal is cheap; presence reads pay for the member list they read once it is known.
  const reads = new ReadRates(config);
  const conversation = t.router({
    /**
     * Joins the room and streams its events; resumes after `lastEventId` when given. Served by
     * the WebSocket transport (transport/ws/connection.ts) and the SSE transport
     * (transport/sse/transport.ts, GET) with this same input schema and the same checks; this
     * definition types it for clients.
     */
    events: authedProcedure
      .input(eventsInputSchema)
      // eslint-disable-next-line require-yield -- a type for clients; the transport serves the stream
      .subscription(async function* (): AsyncGenerator<TrackedEnvelope<RoomEvent>, void> {
        // Thrown while the stream is read, after the middleware's mapping: mapped here.
        throw trpcErrorOf(new DomainError('WEBSOCKET_REQUIRED', 'conversation.events is served over WebSocket at /trpc and over SSE (GET /trpc/conversation.events)'));
      }),

    /** Present members ordered by user id, in pages: pass `next` as `after` until it is null. */
    presence: authedProcedure.input(presenceInputSchema).query(async ({ ctx, input }) => {
      reads.take(ctx.principal.userId, 1);
      await requireAccess(authorize, ctx.principal, input.conversationId);
      const page = await service.presencePage(input.conversationId, input.after ?? undefined, input.limit ?? PRESENCE_PAGE_LIMIT);
      reads.charge(ctx.principal.userId, memberReadCost(page.memberCount));
      return page;
    }),

    /** The conversations the caller is present in, with its connection count in each. */
    mine: authedProcedure.query(async ({ ctx }) => {
      const userId = ctx.principal.userId;
      reads.take(userId, 1);
      const rooms = await service.userRooms(userId);
      let entries = 0;
      const mine = await Promise.all(
        rooms.map(async (conversationId) => {
          const members = await service.presence(conversationId);
          entries += members.length;
          const member = members.find((m) => m.userId === userId);
          return { conversationId, connections: member?.connections ?? 0, joinedAt: member?.joinedAt ?? new Date() };
        }),
      );
      reads.charge(userId, memberReadCost(entries));
      return mine;
    }),

    /**
     * Scrollback: the room's stored events, newest first, `limit` (default 50) a page; pass
     * `nextBefore` as `before` for the next, older page until it is null. Access as for
     * subscribing; being in the room is not required. A window of HISTORY_SIZE events per room.
     */
    history: authedProcedure.input(historyInputSchema).query(async ({ ctx, input }) => {
      const limit = input.limit ?? HISTORY_DEFAULT_LIMIT;
      reads.take(ctx.principal.userId, historyReadCost(limit));
      await requireAccess(authorize, ctx.principal, input.conversationId);
      return service.history(ctx.principal, {
        conversationId: input.conversationId,
        limit,
        ...(input.before !== undefined && { before: input.before }),
        ...(input.types !== undefined && { types: input.types }),
      });
    }),
  });

  const hot = createHotCalls({ service, config, authorize });
  const message = t.router({
    send: authedProcedure.input(hot['message.send'].input).mutation(({ ctx, input }) => hot['message.send'].run(ctx, input)),
    ack: authedProcedure.input(hot['message.ack'].input).mutation(({ ctx, input }) => hot['message.ack'].run(ctx, input)),
    deliveryStatus: authedProcedure
      .input(z.object({ messageId: messageIdSchema }))
      .query(({ ctx, input }) => {
        reads.take(ctx.principal.userId, 1);
        return service.deliveryStatus(ctx.principal, input.messageId);
      }),
  });

  const typing = t.router({
    set: authedProcedure.input(hot['typing.set'].input).mutation(({ ctx, input }) => hot['typing.set'].run(ctx, input)),
  });

  const session = t.router({
    /**
     * Who the server takes the caller for, from the token alone (no store is read): what a UI
     * shows as "signed in as", and — answered only once a socket's token is accepted — the typed
     * client's sign that its WebSocket is connected. Outside the read rate: it costs what a PING
     * costs, and the probe of every (re)connect must not eat a budget the application reads with.
     */
    me: authedProcedure.query(({ ctx }) => {
      const { userId, name, role, conversations, exp } = ctx.principal;
      return {
        userId,
        name: name ?? null,
        role,
        conversations: conversations === '*' ? ('*' as const) : [...conversations].sort(),
        expiresAt: exp === undefined ? null : new Date(exp * 1000),
      };
    }),
  });

  return t.router({ conversation, message, typing, session });
}

export type AppRouter = ReturnType<typeof createAppRouter>;

/**
 * The mutations every chat client calls all the time, as plain (schema, run) pairs: the router's
 * procedures are thin over them (HTTP), and the WebSocket transport runs them directly, without
 * a middleware chain per call. One definition, so both paths check alike.
 */
export function createHotCalls({ service, authorize }: RouterDeps) {
  // The size limit is the service's (PAYLOAD_TOO_LARGE, naming the field and the limit).
  const bodySchema = z.string().min(1, 'must not be empty');
  const sendInput = z.object({
    conversationId: conversationIdSchema,
    body: bodySchema,
    clientMessageId: z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters').optional(),
    ack: z.union([z.boolean(), z.object({ timeoutMs: z.number().int().min(1).max(3_600_000) })]).optional(),
    echo: z.boolean().optional(),
    clientId: clientIdSchema.optional(),
  });
  const ackInput = createAckInput(conversationIdSchema, messageIdSchema);
  const typingInput = z.object({ conversationId: conversationIdSchema, isTyping: z.boolean() });

  return {
    'message.send': {
      input: sendInput,
      async run(ctx: Context, input: z.infer<typeof sendInput>) {
        await requireAccess(authorize, ctx.principal, input.conversationId);
        return service.sendMessage({
          principal: ctx.principal,
          connectionId: ctx.connection?.id ?? null,
          conversationId: input.conversationId,
          body: input.body,
          ...(input.clientMessageId !== undefined && { clientMessageId: input.clientMessageId }),
          ...(input.ack !== undefined && { ack: input.ack }),
          ...(input.echo !== undefined && { echo: input.echo }),
          ...(input.clientId !== undefined && { clientId: input.clientId }),
        });
      },
    },
    /** One ack or a list (ack-calls.ts); `json` gives the WebSocket reply's pre-serialized text. */
    'message.ack': {
      input: ackInput,
      run: (ctx: Context, input: AckInput) => runAck({ service, authorize }, ctx, input),
      json: ackReplyJson,
    },
    'typing.set': {
      input: typingInput,
      async run(ctx: Context, input: z.infer<typeof typingInput>) {
        await requireAccess(authorize, ctx.principal, input.conversationId);
        service.setTyping(ctx.principal, ctx.connection?.id ?? null, input.conversationId, input.isTyping);
        return { ok: true as const };
      },
    },
  };
}

export type HotCalls = ReturnType<typeof createHotCalls>;
