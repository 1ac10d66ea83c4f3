/**
 * `realtime-broadcast/client` in a browser bundle (the `browser` export condition): the typed
 * chat client (client.ts) on `globalThis.WebSocket`, with no Node built-in and no `ws`.
 * `eventsource` (fetch-based) carries SSE here as in Node: it can send the Authorization header
 * a browser's own EventSource cannot.
 */
export * from './client.ts';
