import type { MutationResolvers } from './../types.generated.ts';
import { badInput, requireConversation, requirePublisher, validConversationId } from '../../require-role.ts';

export const updateConversation: NonNullable<MutationResolvers['updateConversation']> = async (_parent, { conversationId, changes }, ctx) => {
  requirePublisher(ctx);
  requireConversation(ctx, validConversationId(conversationId));
  if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) throw badInput('changes must be a JSON object');
  await ctx.ops.updateConversation(validConversationId(conversationId), changes as Record<string, unknown>);
  return true;
};
