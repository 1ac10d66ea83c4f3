/**
 * The one place the web chat takes the typed client from: `realtime-broadcast/client`, as any
 * application would. esbuild (`platform: 'browser'`) resolves the package's `browser` export
 * condition to clients/chat/browser.ts — the platform's WebSocket, no `ws`, no Node built-ins.
 */
export { createChatClient } from 'realtime-broadcast/client';
export type { ChatClient, Conversation, ConnectionState, DeliveryReport, PresenceView, RoomEvent } from 'realtime-broadcast/client';
