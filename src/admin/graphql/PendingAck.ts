import type { PendingAckResolvers } from './types.generated.ts';

export const PendingAck: PendingAckResolvers = {
  ageMs: (parent) => Date.now() - parent.createdAt.getTime(),
};
