/**
 * Signing in and out: the token form, the "Dev token" picker (where the server hands out its
 * ready-made tokens), reading a token's claims, and starting or tearing down the client session.
 */
import { createChatClient } from './client.ts';
import { setConnection, renderConnection } from './connection.ts';
import { join, select } from './conversations.ts';
import { ui } from './dom.ts';
import { CONVERSATION_ID, names, rooms, ROOMS_KEY, session, TOKEN_KEY } from './state.ts';
import { resetAnnouncer } from './unread.ts';

let stopStateUpdates: () => void = () => undefined;

/** The "Dev token" picker exists only where the server hands out its ready-made tokens. */
export async function loadDevTokens(): Promise<void> {
  let tokens: Array<{ userId: string; name: string; token: string }>;
  try {
    const res = await fetch('/chat/dev-tokens', { cache: 'no-store' });
    if (!res.ok) return; // production, or a real AUTH_SECRET: paste one
    ({ tokens } = (await res.json()) as { tokens: typeof tokens });
  } catch {
    return;
  }
  if (tokens.length === 0) return;
  const label = document.createElement('label');
  label.htmlFor = 'dev-token';
  label.textContent = 'Dev token';
  const select = document.createElement('select');
  select.id = 'dev-token';
  const none = document.createElement('option');
  none.value = '';
  none.textContent = 'Pick a ready-made token…';
  select.append(none);
  for (const t of tokens) {
    const option = document.createElement('option');
    option.value = t.userId;
    option.textContent = t.name;
    option.dataset.token = t.token;
    select.append(option);
  }
  select.addEventListener('change', () => {
    const token = select.selectedOptions[0]?.dataset.token;
    if (token) ui.token.value = token;
  });
  ui.devTokens.replaceChildren(label, select);
  ui.devTokens.hidden = false;
}

/** The sign-in form and the sign-out button. */
export function initSignin(): void {
  ui.signinForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const token = ui.token.value.trim();
    if (!token) {
      showSigninError('Paste a token first (or pick a dev token).');
      ui.token.focus();
      return;
    }
    connect(token);
  });

  ui.signout.addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(ROOMS_KEY);
    void disconnect();
    showSignin();
    setConnection({ status: 'signed-out', text: 'Signed out' });
  });
}

function showSigninError(text: string): void {
  ui.signinError.textContent = text;
  ui.signinError.hidden = false;
}

export function showSignin(): void {
  ui.chat.hidden = true;
  ui.signin.hidden = false;
  ui.signout.hidden = true;
  ui.me.hidden = true;
  ui.token.focus();
}

/** The token's claims as the page shows them (the server checks the signature; this only reads). */
function claimsOf(token: string): { sub?: string; name?: string } | null {
  try {
    const payload = token.split('.')[1] ?? '';
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as unknown;
    return claims && typeof claims === 'object' ? (claims as { sub?: string; name?: string }) : null;
  } catch {
    return null;
  }
}

export function connect(token: string): void {
  const claims = claimsOf(token);
  if (!claims?.sub) {
    showSigninError('That is not a token: a token is a JWT, three base64url parts separated by dots.');
    ui.token.focus();
    return;
  }
  ui.signinError.hidden = true;
  const me = { userId: claims.sub, name: claims.name };
  session.me = me;
  if (claims.name) names.set(claims.sub, claims.name);
  sessionStorage.setItem(TOKEN_KEY, token);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const client = createChatClient({
    url: `${scheme}//${location.host}/trpc`,
    token,
    transport: 'auto',
    onTerminalError: (error) => {
      // The server refused the token for good: back to the sign-in form, saying why.
      if (session.chat !== client) return;
      sessionStorage.removeItem(TOKEN_KEY);
      showSigninError(`The server refused this token: ${error.message}`);
      void disconnect(false);
      showSignin();
    },
  });
  session.chat = client;
  stopStateUpdates = client.onState(renderConnection);
  renderConnection(client.state);

  ui.signin.hidden = true;
  ui.chat.hidden = false;
  ui.signout.hidden = false;
  ui.me.hidden = false;
  ui.me.textContent = `Signed in as ${me.name ?? me.userId}`;
  const saved = (sessionStorage.getItem(ROOMS_KEY) ?? '').split(',').filter((id) => CONVERSATION_ID.test(id));
  for (const id of saved.length > 0 ? saved : ['general']) join(id, false);
  select(rooms.values().next().value!);
  ui.message.focus();
}

async function disconnect(clearState = true): Promise<void> {
  const client = session.chat;
  session.chat = null;
  // What the status says now stays (e.g. `Closed: <why>` after a refused token).
  stopStateUpdates();
  for (const room of rooms.values()) for (const remove of room.removers) remove();
  rooms.clear();
  session.active = null;
  ui.tabs.replaceChildren();
  ui.messages.replaceChildren();
  ui.people.replaceChildren();
  ui.notice.hidden = true;
  ui.composerError.textContent = '';
  resetAnnouncer();
  if (clearState) names.clear();
  await client?.close().catch(() => undefined);
}
