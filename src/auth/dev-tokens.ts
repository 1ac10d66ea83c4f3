import { mintToken } from './tokens.ts';

/** How long the ready-made development tokens live. */
export const DEV_TOKEN_LIFETIME_SEC = 24 * 60 * 60;

export interface DevToken {
  userId: string;
  name: string;
  role: 'user' | 'admin';
  token: string;
}

/** Who gets a ready-made token: two users to chat with, and an operator for the dashboard. */
const DEV_USERS: ReadonlyArray<Omit<DevToken, 'token'>> = [
  { userId: 'alice', name: 'Alice', role: 'user' },
  { userId: 'bob', name: 'Bob', role: 'user' },
  { userId: 'admin', name: 'Admin', role: 'admin' },
];

/** Re-minted once half their life is gone, so a long-running dev server never hands out a token about to expire. */
const REMINT_AFTER_MS = (DEV_TOKEN_LIFETIME_SEC * 1000) / 2;
const minted = new Map<string, { at: number; tokens: Promise<DevToken[]> }>();

/**
 * The ready-made tokens of a development server that made up its own secret (all conversations,
 * 24 h): the start banner prints them and, outside production, `GET /chat/dev-tokens` hands the
 * same ones to the web chat. Callers decide whether they may be shown at all — never for a real
 * AUTH_SECRET (a log or a page is no place for tokens that outlive the start).
 */
export function devTokens(secret: string, now: number = Date.now()): Promise<DevToken[]> {
  const cached = minted.get(secret);
  if (cached && now - cached.at < REMINT_AFTER_MS) return cached.tokens;
  const tokens = Promise.all(
    DEV_USERS.map(async (user) => ({
      ...user,
      token: await mintToken(secret, { userId: user.userId, name: user.name, ...(user.role === 'admin' && { role: 'admin' as const }), conversations: ['*'], expiresIn: DEV_TOKEN_LIFETIME_SEC }),
    })),
  );
  minted.clear(); // one server's secret at a time is plenty; never a growing list of secrets
  minted.set(secret, { at: now, tokens });
  return tokens;
}
