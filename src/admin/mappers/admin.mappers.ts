/**
 * The domain shapes the GraphQL types resolve from (codegen reads exports ending in `Mapper`).
 * A schema field missing here gets a generated field resolver that must be implemented.
 */
export type { BroadcastStatsView as BroadcastStatsMapper } from '../admin-operations.ts';
export type { RoomView as RoomMapper } from '../admin-operations.ts';
export type { UserPresenceView as UserPresenceMapper } from '../admin-operations.ts';
export type { NodeStatsView as NodeStatsMapper } from '../admin-operations.ts';
export type { PendingAckSnapshot as PendingAckMapper } from '../../acks/ack-tracker.ts';
