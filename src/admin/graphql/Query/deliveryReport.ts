import type { QueryResolvers } from './../types.generated.ts';
import { requireAdmin } from '../../require-role.ts';

export const deliveryReport: NonNullable<QueryResolvers['deliveryReport']> = async (_parent, { messageId }, ctx) => {
  requireAdmin(ctx);
  return ctx.ops.deliveryReport(messageId);
};
