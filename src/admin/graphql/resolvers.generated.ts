/* This file was automatically generated. DO NOT UPDATE MANUALLY. */
    import type   { Resolvers } from './types.generated.ts';
    import    { deliveryReport as Query_deliveryReport } from './Query/deliveryReport.ts';
import    { nodes as Query_nodes } from './Query/nodes.ts';
import    { pendingAcks as Query_pendingAcks } from './Query/pendingAcks.ts';
import    { room as Query_room } from './Query/room.ts';
import    { rooms as Query_rooms } from './Query/rooms.ts';
import    { stats as Query_stats } from './Query/stats.ts';
import    { user as Query_user } from './Query/user.ts';
import    { broadcastSystemEvent as Mutation_broadcastSystemEvent } from './Mutation/broadcastSystemEvent.ts';
import    { closeRoom as Mutation_closeRoom } from './Mutation/closeRoom.ts';
import    { disconnectUser as Mutation_disconnectUser } from './Mutation/disconnectUser.ts';
import    { updateConversation as Mutation_updateConversation } from './Mutation/updateConversation.ts';
import    { stats as Subscription_stats } from './Subscription/stats.ts';
import    { BroadcastStats } from './BroadcastStats.ts';
import    { NodeStats } from './NodeStats.ts';
import    { PendingAck } from './PendingAck.ts';
import    { Room } from './Room.ts';
import    { UserPresence } from './UserPresence.ts';
import    { DateTime } from './DateTime.ts';
import    { JSON } from './JSON.ts';
    export const resolvers: Resolvers = {
      Query: { deliveryReport: Query_deliveryReport,nodes: Query_nodes,pendingAcks: Query_pendingAcks,room: Query_room,rooms: Query_rooms,stats: Query_stats,user: Query_user },
      Mutation: { broadcastSystemEvent: Mutation_broadcastSystemEvent,closeRoom: Mutation_closeRoom,disconnectUser: Mutation_disconnectUser,updateConversation: Mutation_updateConversation },
      Subscription: { stats: Subscription_stats },
      BroadcastStats: BroadcastStats,
NodeStats: NodeStats,
PendingAck: PendingAck,
Room: Room,
UserPresence: UserPresence,
DateTime: DateTime,
JSON: JSON
    }