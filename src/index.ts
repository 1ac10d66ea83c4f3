/** Public entry point of the package: the embeddable server and the wire types. */
export { createRealtimeServer } from './server.ts';
export type { RealtimeServer, RealtimeServerOptions, BroadcastStats, RoomStats, ServerSend, RouteHandler } from './server.ts';
export type { AppRouter } from './transport/router.ts';
export type {
  RoomEvent,
  RoomEventType,
  ChatMessage,
  DeliveryReport,
  PendingDeliveryReport,
  DeliveryStatus,
  MemberPresence,
  SendResult,
  Principal,
  Role,
} from './domain/types.ts';
export { CloseCodes, shouldReconnect } from './transport/close-codes.ts';
export { mintToken } from './auth/tokens.ts';
export { loadConfig, ConfigError, type Config } from './config.ts';
