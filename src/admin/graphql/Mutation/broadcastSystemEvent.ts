import type { MutationResolvers } from './../types.generated.ts';
import { requireConversation, requirePublisher, validConversationId } from '../../require-role.ts';

export const broadcastSystemEvent: NonNullable<MutationResolvers['broadcastSystemEvent']> = async (_parent, { conversationId, event, data }, ctx) => {
  requirePublisher(ctx);
  requireConversation(ctx, validConversationId(conversationId));
  await ctx.ops.broadcastSystemEvent(conversationId, event, data ?? null);
  return true;
};
