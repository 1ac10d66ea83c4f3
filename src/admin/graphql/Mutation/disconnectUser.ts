import type { MutationResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const disconnectUser: NonNullable<MutationResolvers['disconnectUser']> = async (_parent, { userId, reason }, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.disconnectUser(userId, reason ?? null);
};
