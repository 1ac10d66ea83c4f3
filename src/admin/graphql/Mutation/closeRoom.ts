import type { MutationResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const closeRoom: NonNullable<MutationResolvers['closeRoom']> = async (_parent, { conversationId, reason }, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.closeRoom(conversationId, reason ?? null);
};
