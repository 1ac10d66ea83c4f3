import type { GraphQLResolveInfo, GraphQLScalarType, GraphQLScalarTypeConfig } from 'graphql';
import type { BroadcastStatsMapper, NodeStatsMapper, PendingAckMapper, RoomMapper, UserPresenceMapper } from './../mappers/admin.mappers.ts';
import type { AdminContext } from '../context.ts';
export type Maybe<T> = T | null | undefined;
export type InputMaybe<T> = T | null | undefined;
export type Omit<T, K extends keyof T> = Pick<T, Exclude<keyof T, K>>;
export type EnumResolverSignature<T, AllowedValues = any> = { [key in keyof T]?: AllowedValues };
export type RequireFields<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: NonNullable<T[P]> };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string | number; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** An ISO-8601 date-time string. */
  DateTime: { input: Date; output: Date | string; }
  /** Any JSON value. */
  JSON: { input: unknown; output: unknown; }
};

export type BroadcastStats = {
  __typename?: 'BroadcastStats';
  /** Send-to-report time of acknowledged messages. */
  ackLatencyMs: LatencyPercentiles;
  acksDelivered: Scalars['Float']['output'];
  acksFailed: Scalars['Float']['output'];
  acksPartial: Scalars['Float']['output'];
  activeRooms: Scalars['Int']['output'];
  /** When these numbers were read. */
  at: Scalars['DateTime']['output'];
  connections: Scalars['Int']['output'];
  /** `connections` by transport. */
  connectionsByTransport: TransportCounts;
  /** Events written to subscribers since start. */
  deliveries: Scalars['Float']['output'];
  /** Send-to-socket-write time of messages. */
  deliveryLatencyMs: LatencyPercentiles;
  memory: MemoryStats;
  /** Messages sent since start (counters are Float: they outgrow 32-bit Int). */
  messagesBroadcast: Scalars['Float']['output'];
  pendingAcks: Scalars['Int']['output'];
  slowConsumerCloses: Scalars['Float']['output'];
  uptimeSeconds: Scalars['Float']['output'];
  users: Scalars['Int']['output'];
};

export type DeliveryReport = {
  __typename?: 'DeliveryReport';
  acked: Array<Scalars['ID']['output']>;
  completedAt?: Maybe<Scalars['DateTime']['output']>;
  conversationId: Scalars['ID']['output'];
  createdAt: Scalars['DateTime']['output'];
  expected: Array<Scalars['ID']['output']>;
  latencyMs?: Maybe<Scalars['Float']['output']>;
  messageId: Scalars['ID']['output'];
  missing: Array<Scalars['ID']['output']>;
  status: DeliveryStatus;
};

export type DeliveryStatus =
  | 'delivered'
  | 'failed'
  | 'partial'
  | 'pending';

export type LatencyPercentiles = {
  __typename?: 'LatencyPercentiles';
  /** How many samples the percentiles are computed from. */
  count: Scalars['Float']['output'];
  max: Scalars['Float']['output'];
  p50: Scalars['Float']['output'];
  p95: Scalars['Float']['output'];
  p99: Scalars['Float']['output'];
};

export type Member = {
  __typename?: 'Member';
  /** 0 while the user is inside the reconnect grace period. */
  connections: Scalars['Int']['output'];
  joinedAt: Scalars['DateTime']['output'];
  name?: Maybe<Scalars['String']['output']>;
  typing: Scalars['Boolean']['output'];
  userId: Scalars['ID']['output'];
};

export type MemoryStats = {
  __typename?: 'MemoryStats';
  heapUsedBytes: Scalars['Float']['output'];
  rssBytes: Scalars['Float']['output'];
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Sends a `system` event to everyone in the room. Admin or service. */
  broadcastSystemEvent: Scalars['Boolean']['output'];
  /** Ends every subscription of the room (a `system` event `room_closed` goes out first); returns the connections affected. Admin. */
  closeRoom: Scalars['Int']['output'];
  /** Closes every connection of the user with close code 4500 (terminal); returns how many. Admin. */
  disconnectUser: Scalars['Int']['output'];
  /** Sends a `conversation_updated` event. Admin or service. */
  updateConversation: Scalars['Boolean']['output'];
};


export type MutationbroadcastSystemEventArgs = {
  conversationId: Scalars['ID']['input'];
  data?: InputMaybe<Scalars['JSON']['input']>;
  event: Scalars['String']['input'];
};


export type MutationcloseRoomArgs = {
  conversationId: Scalars['ID']['input'];
  reason?: InputMaybe<Scalars['String']['input']>;
};


export type MutationdisconnectUserArgs = {
  reason?: InputMaybe<Scalars['String']['input']>;
  userId: Scalars['ID']['input'];
};


export type MutationupdateConversationArgs = {
  changes: Scalars['JSON']['input'];
  conversationId: Scalars['ID']['input'];
};

export type NodeStats = {
  __typename?: 'NodeStats';
  /** host:port this node listens on. */
  address: Scalars['String']['output'];
  connections: Scalars['Int']['output'];
  /** `connections` by transport. */
  connectionsByTransport: TransportCounts;
  lastHeartbeat: Scalars['DateTime']['output'];
  memory: MemoryStats;
  nodeId: Scalars['ID']['output'];
  rooms: Scalars['Int']['output'];
  /** True for the node that answered this query. */
  self: Scalars['Boolean']['output'];
  uptimeSeconds: Scalars['Float']['output'];
  users: Scalars['Int']['output'];
};

export type PageInfo = {
  __typename?: 'PageInfo';
  endCursor?: Maybe<Scalars['String']['output']>;
  hasNextPage: Scalars['Boolean']['output'];
};

export type PendingAck = {
  __typename?: 'PendingAck';
  acked: Array<Scalars['ID']['output']>;
  ageMs: Scalars['Float']['output'];
  /** Deliveries so far: 1 plus the re-sends. */
  attempts: Scalars['Int']['output'];
  conversationId: Scalars['ID']['output'];
  createdAt: Scalars['DateTime']['output'];
  expected: Array<Scalars['ID']['output']>;
  expiresAt: Scalars['DateTime']['output'];
  messageId: Scalars['ID']['output'];
  missing: Array<Scalars['ID']['output']>;
  senderId: Scalars['ID']['output'];
};

export type Query = {
  __typename?: 'Query';
  /** The delivery report of one acknowledged message (finished or pending). */
  deliveryReport?: Maybe<DeliveryReport>;
  /** One entry per server node (one when single-node). */
  nodes: Array<NodeStats>;
  /** Acknowledged messages still waiting for acks, oldest first. */
  pendingAcks: Array<PendingAck>;
  room?: Maybe<Room>;
  /** Active rooms, busiest first by default; cursor pagination. */
  rooms: RoomConnection;
  /** Totals of the whole service (all nodes). */
  stats: BroadcastStats;
  /** The rooms and connections of one user; null when the user has no connection. */
  user?: Maybe<UserPresence>;
};


export type QuerydeliveryReportArgs = {
  messageId: Scalars['ID']['input'];
};


export type QuerypendingAcksArgs = {
  conversationId?: InputMaybe<Scalars['ID']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type QueryroomArgs = {
  conversationId: Scalars['ID']['input'];
};


export type QueryroomsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  orderBy?: InputMaybe<RoomOrder>;
};


export type QueryuserArgs = {
  userId: Scalars['ID']['input'];
};

export type Room = {
  __typename?: 'Room';
  connectionCount: Scalars['Int']['output'];
  conversationId: Scalars['ID']['output'];
  createdAt: Scalars['DateTime']['output'];
  lastActivityAt: Scalars['DateTime']['output'];
  /** Distinct users present (including those inside their reconnect grace). */
  memberCount: Scalars['Int']['output'];
  members: Array<Member>;
  messagesBroadcast: Scalars['Float']['output'];
  /** The waiting acknowledged messages themselves. */
  pendingAckList: Array<PendingAck>;
  /** How many acknowledged messages of this room are still waiting. */
  pendingAcks: Scalars['Int']['output'];
  /** User ids currently typing. */
  typing: Array<Scalars['ID']['output']>;
};

export type RoomConnection = {
  __typename?: 'RoomConnection';
  edges: Array<RoomEdge>;
  pageInfo: PageInfo;
  totalCount: Scalars['Int']['output'];
};

export type RoomEdge = {
  __typename?: 'RoomEdge';
  cursor: Scalars['String']['output'];
  node: Room;
};

export type RoomOrder =
  /** Most recently active first. */
  | 'ACTIVITY'
  /** Alphabetical by conversation id. */
  | 'ID'
  /** Most members first. */
  | 'MEMBERS'
  /** Most messages broadcast first. */
  | 'MESSAGES';

export type Subscription = {
  __typename?: 'Subscription';
  /** Live stats over SSE, every `intervalMs` (default 2000, 250–60000). */
  stats: BroadcastStats;
};


export type SubscriptionstatsArgs = {
  intervalMs?: InputMaybe<Scalars['Int']['input']>;
};

/** Open connections by transport: WebSockets, and SSE streams of `conversation.events` (each stream is one connection). */
export type TransportCounts = {
  __typename?: 'TransportCounts';
  sse: Scalars['Int']['output'];
  websocket: Scalars['Int']['output'];
};

export type UserPresence = {
  __typename?: 'UserPresence';
  connections: Scalars['Int']['output'];
  rooms: Array<UserRoom>;
  userId: Scalars['ID']['output'];
};

export type UserRoom = {
  __typename?: 'UserRoom';
  connections: Scalars['Int']['output'];
  conversationId: Scalars['ID']['output'];
  joinedAt: Scalars['DateTime']['output'];
  typing: Scalars['Boolean']['output'];
};



export type ResolverTypeWrapper<T> = Promise<T> | T;


export type ResolverWithResolve<TResult, TParent, TContext, TArgs> = {
  resolve: ResolverFn<TResult, TParent, TContext, TArgs>;
};
export type Resolver<TResult, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = ResolverFn<TResult, TParent, TContext, TArgs> | ResolverWithResolve<TResult, TParent, TContext, TArgs>;

export type ResolverFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => Promise<TResult> | TResult;

export type SubscriptionSubscribeFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => AsyncIterable<TResult> | Promise<AsyncIterable<TResult>>;

export type SubscriptionResolveFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;

export interface SubscriptionSubscriberObject<TResult, TKey extends string, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<{ [key in TKey]: TResult }, TParent, TContext, TArgs>;
  resolve?: SubscriptionResolveFn<TResult, { [key in TKey]: TResult }, TContext, TArgs>;
}

export interface SubscriptionResolverObject<TResult, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<any, TParent, TContext, TArgs>;
  resolve: SubscriptionResolveFn<TResult, any, TContext, TArgs>;
}

export type SubscriptionObject<TResult, TKey extends string, TParent, TContext, TArgs> =
  | SubscriptionSubscriberObject<TResult, TKey, TParent, TContext, TArgs>
  | SubscriptionResolverObject<TResult, TParent, TContext, TArgs>;

export type SubscriptionResolver<TResult, TKey extends string, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> =
  | ((...args: any[]) => SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>)
  | SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>;

export type TypeResolveFn<TTypes, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (
  parent: TParent,
  context: TContext,
  info: GraphQLResolveInfo
) => Maybe<TTypes> | Promise<Maybe<TTypes>>;

export type IsTypeOfResolverFn<T = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (obj: T, context: TContext, info: GraphQLResolveInfo) => boolean | Promise<boolean>;

export type NextResolverFn<T> = () => Promise<T>;

export type DirectiveResolverFn<TResult = Record<PropertyKey, never>, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = (
  next: NextResolverFn<TResult>,
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;





/** Mapping between all available schema types and the resolvers types */
export type ResolversTypes = {
  BroadcastStats: ResolverTypeWrapper<BroadcastStatsMapper>;
  Float: ResolverTypeWrapper<Scalars['Float']['output']>;
  Int: ResolverTypeWrapper<Scalars['Int']['output']>;
  DateTime: ResolverTypeWrapper<Scalars['DateTime']['output']>;
  DeliveryReport: ResolverTypeWrapper<Omit<DeliveryReport, 'status'> & { status: ResolversTypes['DeliveryStatus'] }>;
  ID: ResolverTypeWrapper<Scalars['ID']['output']>;
  DeliveryStatus: ResolverTypeWrapper<'pending' | 'delivered' | 'partial' | 'failed'>;
  JSON: ResolverTypeWrapper<Scalars['JSON']['output']>;
  LatencyPercentiles: ResolverTypeWrapper<LatencyPercentiles>;
  Member: ResolverTypeWrapper<Member>;
  String: ResolverTypeWrapper<Scalars['String']['output']>;
  Boolean: ResolverTypeWrapper<Scalars['Boolean']['output']>;
  MemoryStats: ResolverTypeWrapper<MemoryStats>;
  Mutation: ResolverTypeWrapper<Record<PropertyKey, never>>;
  NodeStats: ResolverTypeWrapper<NodeStatsMapper>;
  PageInfo: ResolverTypeWrapper<PageInfo>;
  PendingAck: ResolverTypeWrapper<PendingAckMapper>;
  Query: ResolverTypeWrapper<Record<PropertyKey, never>>;
  Room: ResolverTypeWrapper<RoomMapper>;
  RoomConnection: ResolverTypeWrapper<Omit<RoomConnection, 'edges'> & { edges: Array<ResolversTypes['RoomEdge']> }>;
  RoomEdge: ResolverTypeWrapper<Omit<RoomEdge, 'node'> & { node: ResolversTypes['Room'] }>;
  RoomOrder: ResolverTypeWrapper<'MEMBERS' | 'ACTIVITY' | 'MESSAGES' | 'ID'>;
  Subscription: ResolverTypeWrapper<Record<PropertyKey, never>>;
  TransportCounts: ResolverTypeWrapper<TransportCounts>;
  UserPresence: ResolverTypeWrapper<UserPresenceMapper>;
  UserRoom: ResolverTypeWrapper<UserRoom>;
};

/** Mapping between all available schema types and the resolvers parents */
export type ResolversParentTypes = {
  BroadcastStats: BroadcastStatsMapper;
  Float: Scalars['Float']['output'];
  Int: Scalars['Int']['output'];
  DateTime: Scalars['DateTime']['output'];
  DeliveryReport: DeliveryReport;
  ID: Scalars['ID']['output'];
  JSON: Scalars['JSON']['output'];
  LatencyPercentiles: LatencyPercentiles;
  Member: Member;
  String: Scalars['String']['output'];
  Boolean: Scalars['Boolean']['output'];
  MemoryStats: MemoryStats;
  Mutation: Record<PropertyKey, never>;
  NodeStats: NodeStatsMapper;
  PageInfo: PageInfo;
  PendingAck: PendingAckMapper;
  Query: Record<PropertyKey, never>;
  Room: RoomMapper;
  RoomConnection: Omit<RoomConnection, 'edges'> & { edges: Array<ResolversParentTypes['RoomEdge']> };
  RoomEdge: Omit<RoomEdge, 'node'> & { node: ResolversParentTypes['Room'] };
  Subscription: Record<PropertyKey, never>;
  TransportCounts: TransportCounts;
  UserPresence: UserPresenceMapper;
  UserRoom: UserRoom;
};

export type BroadcastStatsResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['BroadcastStats'] = ResolversParentTypes['BroadcastStats']> = {
  ackLatencyMs?: Resolver<ResolversTypes['LatencyPercentiles'], ParentType, ContextType>;
  acksDelivered?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  acksFailed?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  acksPartial?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  activeRooms?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  at?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  connectionsByTransport?: Resolver<ResolversTypes['TransportCounts'], ParentType, ContextType>;
  deliveries?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  deliveryLatencyMs?: Resolver<ResolversTypes['LatencyPercentiles'], ParentType, ContextType>;
  memory?: Resolver<ResolversTypes['MemoryStats'], ParentType, ContextType>;
  messagesBroadcast?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  pendingAcks?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  slowConsumerCloses?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  uptimeSeconds?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  users?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export interface DateTimeScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['DateTime'], any> {
  name: 'DateTime';
}

export type DeliveryReportResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['DeliveryReport'] = ResolversParentTypes['DeliveryReport']> = {
  acked?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  completedAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  conversationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  expected?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  latencyMs?: Resolver<Maybe<ResolversTypes['Float']>, ParentType, ContextType>;
  messageId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  missing?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  status?: Resolver<ResolversTypes['DeliveryStatus'], ParentType, ContextType>;
};

export type DeliveryStatusResolvers = EnumResolverSignature<{ delivered?: any, failed?: any, partial?: any, pending?: any }, ResolversTypes['DeliveryStatus']>;

export interface JSONScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['JSON'], any> {
  name: 'JSON';
}

export type LatencyPercentilesResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['LatencyPercentiles'] = ResolversParentTypes['LatencyPercentiles']> = {
  count?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  max?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  p50?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  p95?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  p99?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
};

export type MemberResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['Member'] = ResolversParentTypes['Member']> = {
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  joinedAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  name?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  typing?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  userId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
};

export type MemoryStatsResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['MemoryStats'] = ResolversParentTypes['MemoryStats']> = {
  heapUsedBytes?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  rssBytes?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
};

export type MutationResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['Mutation'] = ResolversParentTypes['Mutation']> = {
  broadcastSystemEvent?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType, RequireFields<MutationbroadcastSystemEventArgs, 'conversationId' | 'event'>>;
  closeRoom?: Resolver<ResolversTypes['Int'], ParentType, ContextType, RequireFields<MutationcloseRoomArgs, 'conversationId'>>;
  disconnectUser?: Resolver<ResolversTypes['Int'], ParentType, ContextType, RequireFields<MutationdisconnectUserArgs, 'userId'>>;
  updateConversation?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType, RequireFields<MutationupdateConversationArgs, 'changes' | 'conversationId'>>;
};

export type NodeStatsResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['NodeStats'] = ResolversParentTypes['NodeStats']> = {
  address?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  connectionsByTransport?: Resolver<ResolversTypes['TransportCounts'], ParentType, ContextType>;
  lastHeartbeat?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  memory?: Resolver<ResolversTypes['MemoryStats'], ParentType, ContextType>;
  nodeId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  rooms?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  self?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  uptimeSeconds?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  users?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type PageInfoResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['PageInfo'] = ResolversParentTypes['PageInfo']> = {
  endCursor?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  hasNextPage?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
};

export type PendingAckResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['PendingAck'] = ResolversParentTypes['PendingAck']> = {
  acked?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  ageMs?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  attempts?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  conversationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  expected?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  expiresAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  messageId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  missing?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
  senderId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
};

export type QueryResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['Query'] = ResolversParentTypes['Query']> = {
  deliveryReport?: Resolver<Maybe<ResolversTypes['DeliveryReport']>, ParentType, ContextType, RequireFields<QuerydeliveryReportArgs, 'messageId'>>;
  nodes?: Resolver<Array<ResolversTypes['NodeStats']>, ParentType, ContextType>;
  pendingAcks?: Resolver<Array<ResolversTypes['PendingAck']>, ParentType, ContextType, RequireFields<QuerypendingAcksArgs, 'first'>>;
  room?: Resolver<Maybe<ResolversTypes['Room']>, ParentType, ContextType, RequireFields<QueryroomArgs, 'conversationId'>>;
  rooms?: Resolver<ResolversTypes['RoomConnection'], ParentType, ContextType, RequireFields<QueryroomsArgs, 'first' | 'orderBy'>>;
  stats?: Resolver<ResolversTypes['BroadcastStats'], ParentType, ContextType>;
  user?: Resolver<Maybe<ResolversTypes['UserPresence']>, ParentType, ContextType, RequireFields<QueryuserArgs, 'userId'>>;
};

export type RoomResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['Room'] = ResolversParentTypes['Room']> = {
  connectionCount?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  conversationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  lastActivityAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  memberCount?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  members?: Resolver<Array<ResolversTypes['Member']>, ParentType, ContextType>;
  messagesBroadcast?: Resolver<ResolversTypes['Float'], ParentType, ContextType>;
  pendingAckList?: Resolver<Array<ResolversTypes['PendingAck']>, ParentType, ContextType>;
  pendingAcks?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  typing?: Resolver<Array<ResolversTypes['ID']>, ParentType, ContextType>;
};

export type RoomConnectionResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['RoomConnection'] = ResolversParentTypes['RoomConnection']> = {
  edges?: Resolver<Array<ResolversTypes['RoomEdge']>, ParentType, ContextType>;
  pageInfo?: Resolver<ResolversTypes['PageInfo'], ParentType, ContextType>;
  totalCount?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type RoomEdgeResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['RoomEdge'] = ResolversParentTypes['RoomEdge']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  node?: Resolver<ResolversTypes['Room'], ParentType, ContextType>;
};

export type RoomOrderResolvers = EnumResolverSignature<{ ACTIVITY?: any, ID?: any, MEMBERS?: any, MESSAGES?: any }, ResolversTypes['RoomOrder']>;

export type SubscriptionResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['Subscription'] = ResolversParentTypes['Subscription']> = {
  stats?: SubscriptionResolver<ResolversTypes['BroadcastStats'], "stats", ParentType, ContextType, Partial<SubscriptionstatsArgs>>;
};

export type TransportCountsResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['TransportCounts'] = ResolversParentTypes['TransportCounts']> = {
  sse?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  websocket?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type UserPresenceResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['UserPresence'] = ResolversParentTypes['UserPresence']> = {
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  rooms?: Resolver<Array<ResolversTypes['UserRoom']>, ParentType, ContextType>;
  userId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
};

export type UserRoomResolvers<ContextType = AdminContext, ParentType extends ResolversParentTypes['UserRoom'] = ResolversParentTypes['UserRoom']> = {
  connections?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  conversationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  joinedAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  typing?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
};

export type Resolvers<ContextType = AdminContext> = {
  BroadcastStats?: BroadcastStatsResolvers<ContextType>;
  DateTime?: GraphQLScalarType;
  DeliveryReport?: DeliveryReportResolvers<ContextType>;
  DeliveryStatus?: DeliveryStatusResolvers;
  JSON?: GraphQLScalarType;
  LatencyPercentiles?: LatencyPercentilesResolvers<ContextType>;
  Member?: MemberResolvers<ContextType>;
  MemoryStats?: MemoryStatsResolvers<ContextType>;
  Mutation?: MutationResolvers<ContextType>;
  NodeStats?: NodeStatsResolvers<ContextType>;
  PageInfo?: PageInfoResolvers<ContextType>;
  PendingAck?: PendingAckResolvers<ContextType>;
  Query?: QueryResolvers<ContextType>;
  Room?: RoomResolvers<ContextType>;
  RoomConnection?: RoomConnectionResolvers<ContextType>;
  RoomEdge?: RoomEdgeResolvers<ContextType>;
  RoomOrder?: RoomOrderResolvers;
  Subscription?: SubscriptionResolvers<ContextType>;
  TransportCounts?: TransportCountsResolvers<ContextType>;
  UserPresence?: UserPresenceResolvers<ContextType>;
  UserRoom?: UserRoomResolvers<ContextType>;
};

