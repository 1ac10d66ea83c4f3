import type { MutationResolvers } from './../types.generated.ts';
import { requirePublisher, validConversationId } from '../../require-role.ts';

export const broadcastSystemEvent: NonNullable<MutationResolvers['broadcastSystemEvent']> = async (_parent, { conversationId, event, data }, ctx) => {
  requirePublisher(ctx);
  await ctx.ops.broadcastSystemEvent(validConversationId(conversationId), event, data ?? null);
  return true;
};
