import type { QueryResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const nodes: NonNullable<QueryResolvers['nodes']> = async (_parent, _arg, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.nodes();
};
