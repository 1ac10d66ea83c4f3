import type { RoomView } from '../../admin-operations.ts';
import { badInput, requireAdmin } from '../../require-role.ts';
import type { QueryResolvers, RoomOrder } from './../types.generated.ts';

const MAX_FIRST = 500;

/** Sort key per order: rooms compare by key (descending where "most first"), then by id. */
const ORDERS: Record<RoomOrder, { key: (r: RoomView) => number | string; descending: boolean }> = {
  MEMBERS: { key: (r) => r.memberCount, descending: true },
  ACTIVITY: { key: (r) => r.lastActivityAt.getTime(), descending: true },
  MESSAGES: { key: (r) => r.messagesBroadcast, descending: true },
  ID: { key: (r) => r.conversationId, descending: false },
};

type CursorKey = [number | string, string];

function compare(order: (typeof ORDERS)[RoomOrder], a: CursorKey, b: CursorKey): number {
  const [ka, ia] = a;
  const [kb, ib] = b;
  if (ka !== kb) {
    const asc = ka < kb ? -1 : 1;
    return order.descending ? -asc : asc;
  }
  return ia < ib ? -1 : ia > ib ? 1 : 0;
}

/**
 * Keyset pagination: the cursor is the (sort key, id) of the last room returned, so pages stay
 * consistent while rooms come and go (nothing is skipped or repeated because of an offset).
 */
export const rooms: NonNullable<QueryResolvers['rooms']> = async (_parent, { first, after, orderBy }, ctx) => {
  requireAdmin(ctx);
  const limit = first ?? 20;
  if (limit < 0 || limit > MAX_FIRST) throw badInput(`first must be between 0 and ${MAX_FIRST}`);
  const orderName: RoomOrder = orderBy ?? 'MEMBERS';
  const order = ORDERS[orderName];
  const keyOf = (r: RoomView): CursorKey => [order.key(r), r.conversationId];
  const all = (await ctx.ops.rooms()).sort((a, b) => compare(order, keyOf(a), keyOf(b)));
  let start = 0;
  if (after) {
    const cursor = decodeCursor(after, orderName);
    start = all.findIndex((r) => compare(order, keyOf(r), cursor) > 0);
    if (start === -1) start = all.length;
  }
  const page = all.slice(start, start + limit);
  const edges = page.map((node) => ({ node, cursor: encodeCursor(orderName, keyOf(node)) }));
  return {
    edges,
    totalCount: all.length,
    pageInfo: { hasNextPage: start + limit < all.length, endCursor: edges.at(-1)?.cursor ?? null },
  };
};

function encodeCursor(order: RoomOrder, key: CursorKey): string {
  return Buffer.from(JSON.stringify([order, ...key])).toString('base64url');
}

function decodeCursor(cursor: string, order: RoomOrder): CursorKey {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (Array.isArray(parsed) && parsed.length === 3 && parsed[0] === order && typeof parsed[2] === 'string') {
      const key: unknown = parsed[1];
      if (typeof key === 'number' || typeof key === 'string') return [key, parsed[2]];
    }
  } catch {
    // fall through
  }
  throw badInput('after: not a cursor of this ordering (cursors are only valid with the orderBy that produced them)');
}
