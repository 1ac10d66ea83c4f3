/**
 * The soak's population: users, the rooms they belong to, each room's message rate, and the
 * message bodies. Everything is drawn from a seeded PRNG, so a seed gives the same population
 * (timing, and so the exact interleaving, still varies from run to run).
 */

/** Mulberry32: small, fast, good enough for picking rooms and sizes. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RoomPlan {
  id: string;
  members: string[];
  /** Messages per second into this room (one in flight at a time). */
  rate: number;
}

export interface Topology {
  users: string[];
  rooms: RoomPlan[];
}

export interface TopologyOptions {
  users: number;
  smallRooms: number;
  /** Smallest and largest small room. */
  smallSize: [number, number];
  bigRoomSize: number;
  /** Messages per second into the big room. */
  bigRate: number;
  /** Messages per second into all small rooms together (split by size). */
  smallRate: number;
  seed: number;
}

export const FULL_TOPOLOGY: Omit<TopologyOptions, 'seed'> = {
  users: 300,
  smallRooms: 50,
  smallSize: [2, 50],
  bigRoomSize: 150,
  bigRate: 12,
  smallRate: 100,
};

export const QUICK_TOPOLOGY: Omit<TopologyOptions, 'seed'> = {
  users: 40,
  smallRooms: 8,
  smallSize: [2, 12],
  bigRoomSize: 24,
  bigRate: 8,
  smallRate: 24,
};

/**
 * Small-room sizes spread from the smallest to the largest, most of them small (a power curve);
 * members drawn at random; every user is in at least one room; the big room takes the first
 * `bigRoomSize` users of a shuffle. A small room's share of the message rate grows with its size.
 */
export function buildTopology(options: TopologyOptions): Topology {
  const random = seededRandom(options.seed);
  const users = Array.from({ length: options.users }, (_, i) => `u${String(i).padStart(3, '0')}`);
  const pick = (n: number): string[] => shuffle(users, random).slice(0, Math.min(n, users.length));
  const [lo, hi] = options.smallSize;
  const sizes = Array.from({ length: options.smallRooms }, (_, i) => {
    const x = options.smallRooms === 1 ? 1 : i / (options.smallRooms - 1);
    return Math.round(lo + (hi - lo) * x ** 2.5);
  });
  const weights = sizes.map((s) => 1 + s / 15);
  const totalWeight = weights.reduce((a, b) => a + b, 0);
  const rooms: RoomPlan[] = sizes.map((size, i) => ({
    id: `room-${String(i).padStart(2, '0')}-of-${size}`,
    members: pick(size),
    rate: (options.smallRate * weights[i]!) / totalWeight,
  }));
  rooms.push({ id: `big-of-${options.bigRoomSize}`, members: pick(options.bigRoomSize), rate: options.bigRate });
  // Nobody left out: a user in no room joins a random small room.
  const placed = new Set(rooms.flatMap((r) => r.members));
  for (const user of users) {
    if (placed.has(user)) continue;
    rooms[Math.floor(random() * options.smallRooms)]!.members.push(user);
  }
  return { users, rooms };
}

function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The marker and fields every soak message body starts with: `soak|<room seq>|<issued ms>|`. */
const MARKER = 'soak|';
const WORDS = ['ship it', 'lgtm', 'déjà vu', 'naïve café', 'über', '日本語', 'emoji 🚀', 'ok', 'the build is green', 'rebasing'];

/**
 * A body of mixed size and script: mostly short chat lines, some paragraphs with multi-byte
 * characters, a few kilobytes now and then, rarely close to the 16 KiB limit (ASCII there, so the
 * byte size is known).
 */
export function makeBody(seq: number, issuedAtMs: number, random: () => number): string {
  const head = `${MARKER}${seq}|${issuedAtMs.toFixed(3)}|`;
  const r = random();
  if (r < 0.02) return head + 'L'.repeat(8000 + Math.floor(random() * 7000));
  if (r < 0.1) return head + 'k'.repeat(1000 + Math.floor(random() * 3000));
  const target = r < 0.3 ? 200 + Math.floor(random() * 800) : 20 + Math.floor(random() * 180);
  let body = head;
  while (body.length < target) body += `${WORDS[Math.floor(random() * WORDS.length)]} `;
  return body;
}

/** The room sequence number and issue time carried by a soak body, or null for anything else. */
export function parseBody(body: string): { seq: number; issuedAtMs: number } | null {
  if (!body.startsWith(MARKER)) return null;
  const a = body.indexOf('|', MARKER.length);
  const b = body.indexOf('|', a + 1);
  if (a < 0 || b < 0) return null;
  const seq = Number(body.slice(MARKER.length, a));
  const issuedAtMs = Number(body.slice(a + 1, b));
  return Number.isInteger(seq) && Number.isFinite(issuedAtMs) ? { seq, issuedAtMs } : null;
}
