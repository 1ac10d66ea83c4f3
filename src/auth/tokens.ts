import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';
import { z } from 'zod';
import { DomainError } from '../domain/errors.ts';
import type { Principal, Role, RoomId } from '../domain/types.ts';

/**
 * HS256 JWTs (CONTRACT §2): `sub` is the user id, `name` optional, `role` user | admin | service,
 * `conversations` the ids the user may join (or `["*"]`), `exp` honoured.
 */

const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  name: z.string().max(256).optional(),
  role: z.enum(['user', 'admin', 'service']).optional(),
  conversations: z.array(z.string().max(128)).max(10_000).optional(),
  exp: z.number().optional(),
  iat: z.number().optional(),
});

export type TokenVerifier = (token: string) => Promise<Principal>;

/** How far ahead of this server's clock a token's `iat` may be (clock skew between machines). */
export const MAX_IAT_SKEW_SEC = 60;

export interface TokenVerifierOptions {
  /**
   * Refuse tokens without `exp`, or whose `exp` lies more than this many seconds ahead
   * (production, unless ALLOW_LONG_LIVED_TOKENS). Unset: any `exp`, or none, is accepted.
   */
  maxLifetimeSec?: number;
  /** The secret was generated at start (no AUTH_SECRET): a bad signature says so and what to do. */
  generatedSecret?: boolean;
}

/** The UNAUTHORIZED message for a token signed with another secret, on a server that made its own up. */
export const GENERATED_SECRET_HINT =
  'invalid token: this development server generated a new AUTH_SECRET at start, so tokens from an earlier start no longer verify; use a token it printed or set AUTH_SECRET';

/**
 * The built-in check of `createRealtimeServer` (a custom `authenticate` hook replaces all of it):
 * HS256 signature, `exp` not passed, `iat` (when present) not more than MAX_IAT_SKEW_SEC ahead,
 * `exp` finite, and — with `maxLifetimeSec` — `exp` present and at most that far ahead.
 */
export function createTokenVerifier(secret: string, options: TokenVerifierOptions = {}): TokenVerifier {
  const key = new TextEncoder().encode(secret);
  const { maxLifetimeSec, generatedSecret = false } = options;
  const lifetimeRule = `tokens must expire within TOKEN_MAX_LIFETIME_SEC (${maxLifetimeSec} s) in production`;
  return async (token) => {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'] }));
    } catch (error) {
      const reason =
        error instanceof joseErrors.JWTExpired ? 'token expired' : error instanceof joseErrors.JWSSignatureVerificationFailed && generatedSecret ? GENERATED_SECRET_HINT : 'invalid token';
      throw new DomainError('UNAUTHENTICATED', reason);
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw new DomainError('UNAUTHENTICATED', 'invalid token claims');
    const c = claims.data;
    const nowSec = Date.now() / 1000;
    if (c.exp !== undefined && !Number.isFinite(c.exp)) throw new DomainError('UNAUTHENTICATED', 'invalid token claims: exp must be a finite number');
    if (c.iat !== undefined && c.iat > nowSec + MAX_IAT_SKEW_SEC) {
      throw new DomainError('UNAUTHENTICATED', `token issued in the future: iat is more than ${MAX_IAT_SKEW_SEC} s ahead of this server's clock`);
    }
    if (maxLifetimeSec !== undefined) {
      if (c.exp === undefined) throw new DomainError('UNAUTHENTICATED', `token has no exp: ${lifetimeRule}`);
      if (c.exp > nowSec + maxLifetimeSec) throw new DomainError('UNAUTHENTICATED', `token lives too long: its exp is more than ${maxLifetimeSec} s ahead; ${lifetimeRule}`);
    }
    const conversations = c.conversations?.includes('*') ? '*' : new Set(c.conversations ?? []);
    return {
      userId: c.sub,
      ...(c.name !== undefined && { name: c.name }),
      role: c.role ?? 'user',
      conversations,
      ...(c.exp !== undefined && { exp: c.exp }),
    };
  };
}

export interface MintOptions {
  userId: string;
  name?: string;
  role?: Role;
  conversations?: readonly string[];
  /** Lifetime, e.g. '12h' or seconds; none by default (the token CLI sets 24 h unless told otherwise). */
  expiresIn?: string | number;
}

const LIFETIME_UNIT_SEC: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 };

/**
 * A token lifetime as the token CLI's `--expires` takes it: `90s`, `30m`, `12h`, `7d`, a whole
 * number of seconds, or `never` (null). Throws an Error with a one-line message otherwise.
 */
export function parseLifetime(text: string): number | null {
  if (text === 'never') return null;
  const match = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  const seconds = match ? Number(match[1]) * LIFETIME_UNIT_SEC[match[2]!]! : NaN;
  if (!Number.isSafeInteger(seconds) || seconds < 1) {
    throw new Error(`--expires must be a duration such as 90s, 30m, 12h, 7d, a whole number of seconds, or never (got ${JSON.stringify(text)})`);
  }
  return seconds;
}

export async function mintToken(secret: string, options: MintOptions): Promise<string> {
  const claims: Record<string, unknown> = {};
  if (options.name !== undefined) claims.name = options.name;
  if (options.role !== undefined) claims.role = options.role;
  if (options.conversations !== undefined) claims.conversations = [...options.conversations];
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject(options.userId).setIssuedAt();
  if (options.expiresIn !== undefined) {
    jwt = jwt.setExpirationTime(typeof options.expiresIn === 'number' ? Math.floor(Date.now() / 1000) + options.expiresIn : options.expiresIn);
  }
  return jwt.sign(new TextEncoder().encode(secret));
}

/** The default access policy (the token's `conversations` claim); transport/trpc.ts's `requireAccess` enforces it. */
export function canAccess(principal: Principal, roomId: RoomId): boolean {
  return principal.conversations === '*' || principal.conversations.has(roomId);
}

export function isExpired(principal: Principal, nowMs: number = Date.now()): boolean {
  return principal.exp !== undefined && principal.exp * 1000 <= nowMs;
}
