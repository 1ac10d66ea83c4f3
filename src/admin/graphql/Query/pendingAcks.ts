import type { QueryResolvers } from './../types.generated.ts';
import { badInput, requireAdmin } from '../../require-role.ts';

const MAX_FIRST = 1000;

/** Oldest first: the entries most likely to end `partial` or `failed`. */
export const pendingAcks: NonNullable<QueryResolvers['pendingAcks']> = async (_parent, { conversationId, first }, ctx) => {
  requireAdmin(ctx);
  const limit = first ?? 100;
  if (limit < 0 || limit > MAX_FIRST) throw badInput(`first must be between 0 and ${MAX_FIRST}`);
  const all = await ctx.ops.pendingAcks(conversationId ? { conversationId } : {});
  return all.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime()).slice(0, limit);
};
