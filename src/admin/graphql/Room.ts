import type { RoomResolvers } from './types.generated.ts';

export const Room: RoomResolvers = {
  pendingAckList: (parent, _arg, ctx) => ctx.ops.pendingAcks({ conversationId: parent.conversationId }),
};
