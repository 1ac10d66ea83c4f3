import type { QueryResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const user: NonNullable<QueryResolvers['user']> = async (_parent, { userId }, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.user(userId);
};
