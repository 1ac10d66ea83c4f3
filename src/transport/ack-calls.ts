import { z } from 'zod';
import { ackResultJson, type AckResult } from '../acks/ack-results.ts';
import type { AckItem } from '../acks/ack-router.ts';
import { DomainError } from '../domain/errors.ts';
import type { RealtimeService } from '../service/realtime-service.ts';
import { TRPC_CODES } from './trpc-errors.ts';
import { requireAccess, type Authorize, type Context } from './trpc.ts';

/**
 * `message.ack`, one ack or a list of them. A list (`{ acks: [{ conversationId, messageId }, …] }`,
 * 1–MAX_ACKS_PER_CALL items) is what a client sends when it coalesces its acks: one call, one
 * reply, one write, for acks that would otherwise each be a call. The list is checked as a whole
 * first (a malformed item refuses the call with BAD_REQUEST naming it, and nothing is applied);
 * then each item is applied in order and answered on its own — its `AckResult`, or `{ error:
 * { code, message } }` with the code a single ack would have got (FORBIDDEN, NOT_FOUND, …) — so
 * one unknown or refused item changes nothing and does not hold back the others.
 */

/** Most acks one `message.ack` call may carry. */
export const MAX_ACKS_PER_CALL = 256;

/** A list item that was refused: the tRPC code and message a single ack would have got. */
export interface AckItemError {
  error: { code: string; message: string };
}

export type AckListResult = { results: Array<AckResult | AckItemError> };

export function createAckInput(conversationIdSchema: z.ZodString, messageIdSchema: z.ZodString) {
  const one = z.object({ conversationId: conversationIdSchema, messageId: messageIdSchema });
  const list = z.object({
    acks: z.array(one).min(1, 'must hold at least one ack').max(MAX_ACKS_PER_CALL, `must hold at most ${MAX_ACKS_PER_CALL} acks: split the list`),
  });
  // Validated by the form the input has (an `acks` key: a list), so an error names the field of
  // that form — `acks: must hold at most 256 acks…`, or `conversationId: …` as it always did —
  // never the other form's missing fields. Typed as the union for clients.
  const byForm = z.unknown().transform((value, ctx) => {
    const form = typeof value === 'object' && value !== null && 'acks' in value ? list : one;
    const parsed = form.safeParse(value);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue({ code: 'custom', message: issue.message, path: issue.path });
    return z.NEVER;
  });
  return byForm as unknown as z.ZodUnion<[typeof one, typeof list]>;
}

export type AckInput = z.infer<ReturnType<typeof createAckInput>>;

export interface AckCallDeps {
  service: RealtimeService;
  authorize: Authorize;
}

export function runAck({ service, authorize }: AckCallDeps, ctx: Context, input: AckInput): Promise<AckResult | AckListResult> {
  if ('acks' in input) return runAckList({ service, authorize }, ctx, input.acks);
  return requireAccess(authorize, ctx.principal, input.conversationId).then(() => service.ack(ctx.principal, input.conversationId, input.messageId));
}

async function runAckList({ service, authorize }: AckCallDeps, ctx: Context, acks: readonly AckItem[]): Promise<AckListResult> {
  // Access once per conversation named (a client's list is mostly one or a few conversations).
  let refused: Map<string, DomainError> | null = null;
  let checked: string | null = null;
  for (const { conversationId } of acks) {
    if (conversationId === checked || refused?.has(conversationId)) continue;
    try {
      await requireAccess(authorize, ctx.principal, conversationId);
      checked = conversationId;
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      (refused ??= new Map()).set(conversationId, error);
    }
  }
  const denied = refused;
  const allowed = denied ? acks.filter((a) => !denied.has(a.conversationId)) : acks;
  const outcomes = allowed.length > 0 ? await service.ackMany(ctx.principal, allowed) : [];
  const results = new Array<AckResult | AckItemError>(acks.length);
  for (let i = 0, j = 0; i < acks.length; i += 1) {
    const outcome = denied?.get(acks[i]!.conversationId) ?? outcomes[j++]!;
    results[i] = outcome instanceof DomainError ? { error: { code: TRPC_CODES[outcome.code], message: outcome.message } } : outcome;
  }
  return { results };
}

/**
 * The reply's JSON text without a walk through superjson or JSON.stringify of the result: the
 * four possible ack answers are pre-serialized (ack-results.ts). Plain JSON either way, so
 * superjson's form is `{"json":…}` of exactly this text.
 */
export function ackReplyJson(data: AckResult | AckListResult): string {
  if (!('results' in data)) return ackResultJson(data);
  let text = '{"results":[';
  const { results } = data;
  for (let i = 0; i < results.length; i += 1) {
    const item = results[i]!;
    if (i > 0) text += ',';
    text += 'error' in item ? JSON.stringify({ error: { code: item.error.code, message: item.error.message } }) : ackResultJson(item);
  }
  return `${text}]}`;
}
