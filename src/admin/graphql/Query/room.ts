import type { QueryResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const room: NonNullable<QueryResolvers['room']> = async (_parent, { conversationId }, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.room(conversationId);
};
