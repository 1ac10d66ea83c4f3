/**
 * The one place the web chat takes the typed client from: its browser entry, the module the
 * package's `browser` export condition of `realtime-broadcast/client` names — the platform's
 * WebSocket, no `ws`, no Node built-ins. By path, not by package name: the package's exports
 * point at the built files (dist/), and the page is bundled from source.
 */
export { createChatClient } from '../chat/browser.ts';
export type { ChatClient, Conversation, ConnectionState, DeliveryReport, PresenceView, RoomEvent } from '../chat/browser.ts';
