import type { QueryResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const stats: NonNullable<QueryResolvers['stats']> = async (_parent, _arg, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.stats();
};
