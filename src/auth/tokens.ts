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
});

export type TokenVerifier = (token: string) => Promise<Principal>;

export function createTokenVerifier(secret: string): TokenVerifier {
  const key = new TextEncoder().encode(secret);
  return async (token) => {
    let payload: unknown;
    try {
      ({ payload } = await jwtVerify(token, key, { algorithms: ['HS256'] }));
    } catch (error) {
      const reason = error instanceof joseErrors.JWTExpired ? 'token expired' : 'invalid token';
      throw new DomainError('UNAUTHENTICATED', reason);
    }
    const claims = claimsSchema.safeParse(payload);
    if (!claims.success) throw new DomainError('UNAUTHENTICATED', 'invalid token claims');
    const c = claims.data;
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
  /** Lifetime, e.g. '12h' or seconds; none by default. */
  expiresIn?: string | number;
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

export function canAccess(principal: Principal, roomId: RoomId): boolean {
  return principal.conversations === '*' || principal.conversations.has(roomId);
}

export function assertAccess(principal: Principal, roomId: RoomId): void {
  if (!canAccess(principal, roomId)) {
    throw new DomainError('FORBIDDEN_CONVERSATION', `not allowed in conversation ${roomId}`);
  }
}

export function isExpired(principal: Principal, nowMs: number = Date.now()): boolean {
  return principal.exp !== undefined && principal.exp * 1000 <= nowMs;
}
