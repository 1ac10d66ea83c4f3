/**
 * The web chat: sign in with a token (or a ready-made dev token), join conversations, scrollback,
 * live messages, presence with typing, delivery reports and the connection state — everything
 * drawn from the typed client (clients/chat), no framework. All text goes in through
 * `textContent`, never as HTML; the server's CSP allows no inline code anyway.
 *
 * This file only wires the page together and starts it:
 *   dom.ts           the page's elements, the notice bar, scrolling
 *   state.ts         the shared session, rooms and names; the shapes and constants
 *   signin.ts        the sign-in form, dev tokens, connecting and signing out
 *   connection.ts    the connection status line
 *   conversations.ts joining, leaving and selecting conversations (the tabs)
 *   messages.ts      the message log: dedup, order, delivery reports, scrollback
 *   message-view.ts  one message as a list item, with its delivery line
 *   composer.ts      typing, Enter to send, sending
 *   presence.ts      the people list with who is typing
 *   unread.ts        unread counts on the conversations not on screen, and their announcement
 */
import { initComposer } from './composer.ts';
import { initConversations } from './conversations.ts';
import { initNotice, ui } from './dom.ts';
import { initMessages } from './messages.ts';
import { connect, initSignin, loadDevTokens, showSignin } from './signin.ts';
import { TOKEN_KEY } from './state.ts';

initSignin();
initConversations();
initMessages();
initComposer();
initNotice();

void loadDevTokens();
const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) {
  ui.token.value = saved;
  connect(saved);
} else {
  showSignin();
}
