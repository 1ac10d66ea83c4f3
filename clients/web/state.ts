/**
 * The page's shared state and its shapes: the signed-in session (client, user, active
 * conversation), the joined rooms, display names, and the constants the modules agree on.
 * Reassigned values live on `session` (an ES module's exports cannot be reassigned by importers).
 */
import type { ChatClient, Conversation, DeliveryReport, RoomEvent } from './client.ts';

export type MessageEvent = Extract<RoomEvent, { type: 'message' }>;

export const CONVERSATION_ID = /^[A-Za-z0-9_.:-]{1,128}$/;
export const PAGE_SIZE = 50;
export const TOKEN_KEY = 'realtime-chat-token';
export const ROOMS_KEY = 'realtime-chat-rooms';

export type Delivery = { status: 'pending' } | { status: 'error'; message: string } | DeliveryReport;

export interface MessageView {
  /** The server's message id; a local key (`local:n`) until the send returns. */
  key: string;
  senderId: string;
  senderName: string | undefined;
  body: string;
  sentAt: Date;
  /** The stored event's id (`<epoch>:<seq>`): the room's order; undefined while the own send is in flight. */
  eventId: string | undefined;
  mine: boolean;
  sending: boolean;
  delivery: Delivery | undefined;
  element: HTMLLIElement | null;
}

export interface Room {
  id: string;
  conversation: Conversation;
  /** By message id (or local key): each message once, whichever way it came (live, scrollback, own send). */
  messages: Map<string, MessageView>;
  /** Oldest first. */
  order: MessageView[];
  /** undefined: the first page is not read yet; null: nothing older is kept. */
  nextBefore: string | null | undefined;
  loadingEarlier: boolean;
  /** Someone else's live messages since the conversation was last on screen. */
  unread: number;
  tab: HTMLButtonElement;
  draft: string;
  /** Reports that arrived before the message they are about (scrollback pages come newest first). */
  reports: Map<string, DeliveryReport>;
  removers: Array<() => void>;
}

export const session: {
  chat: ChatClient | null;
  me: { userId: string; name: string | undefined } | null;
  active: Room | null;
} = { chat: null, me: null, active: null };

export const rooms = new Map<string, Room>();

/** Display names by user id, learned from presence, messages and the token. */
export const names = new Map<string, string>();

export const nameOf = (userId: string): string => names.get(userId) ?? userId;
