import type { MutationResolvers } from './../types.generated.ts';
import { badInput, requirePublisher, validConversationId } from '../../require-role.ts';

export const updateConversation: NonNullable<MutationResolvers['updateConversation']> = async (_parent, { conversationId, changes }, ctx) => {
  requirePublisher(ctx);
  if (changes === null || typeof changes !== 'object' || Array.isArray(changes)) throw badInput('changes must be a JSON object');
  await ctx.ops.updateConversation(validConversationId(conversationId), changes as Record<string, unknown>);
  return true;
};
