import superjson from 'superjson';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';

/**
 * What test/fuzz-protocol.test.ts throws at the server, and how it judges what comes back: a
 * seeded PRNG, generators of hostile frames (malformed, mistyped, oversized, nested, binary,
 * protocol-level garbage, and valid-but-hostile calls), and a checker for server frames.
 */

// ---------------------------------------------------------------- PRNG

/** mulberry32: small, fast and good enough to make a fuzz run reproducible from its seed. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  /** One of the entries, each with its weight. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    let roll = this.next() * entries.reduce((sum, [w]) => sum + w, 0);
    for (const [weight, value] of entries) {
      roll -= weight;
      if (roll < 0) return value;
    }
    return entries.at(-1)![1];
  }

  string(length: number, alphabet = ALPHABET): string {
    let out = '';
    for (let i = 0; i < length; i += 1) out += alphabet[this.int(0, alphabet.length - 1)];
    return out;
  }

  bytes(length: number): Buffer {
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i += 1) out[i] = this.int(0, 255);
    return out;
  }

  /** An independent generator, so that each worker's frames do not depend on scheduling. */
  fork(): Prng {
    return new Prng(this.int(0, 0xffff_ffff));
  }
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _-.:/\\"\'{}[],é€😀\u0000\n\u2028';

// ---------------------------------------------------------------- frames

export type Outgoing =
  | { kind: 'text'; data: string; category: string }
  | { kind: 'binary'; data: Buffer; category: string }
  /** A text message split into fragments (valid WebSocket fragmentation). */
  | { kind: 'fragments'; parts: string[]; category: string }
  /** A text frame whose payload is not UTF-8 (RFC 6455: the server closes with 1007). */
  | { kind: 'invalid-utf8'; data: Buffer; category: string }
  /** Bytes written straight onto the TCP socket: a malformed WebSocket frame (closes with 1002). */
  | { kind: 'raw'; data: Buffer; category: string };

/** What one fuzzer knows while it generates frames (kept across its sockets). */
export interface FuzzState {
  rng: Prng;
  maxFrameBytes: number;
  /** Conversations the socket's token allows. */
  rooms: readonly string[];
  /** A conversation the token does not allow (the healthy clients' room). */
  forbiddenRoom: string;
  /** Ids it used, and the subscriptions it believes live. */
  usedIds: Array<string | number>;
  liveSubscriptions: Array<string | number>;
  /** Messages seen by any fuzz socket (for acks and status queries of real ids). */
  seenMessages: Array<{ conversationId: string; messageId: string }>;
  /** The last request id handed out (ids are mostly fresh numbers). */
  nextId: number;
}

const BAD_CONVERSATION_IDS = ['', 'x'.repeat(129), 'bad room', 'räum', '../etc/passwd', 'a/b', '\u0000', '*', ' ', 'room\n'];
const WEIRD_IDS: unknown[] = [null, -1, 0, 1.5, 1e300, 'x'.repeat(300), '', true, {}, [], { id: 1 }, '__proto__', Number.MAX_SAFE_INTEGER + 2];
const METHODS: unknown[] = ['query', 'mutation', 'subscription', 'subscription.stop', 'bogus', '', 'connectionParams', 'reconnect', 'QUERY', null, 5, ['query']];
const PATHS: unknown[] = [
  'nope',
  '',
  'conversation',
  'message.send.x',
  '__proto__',
  'constructor',
  'toString',
  'conversation.events.x',
  'message',
  'message.send',
  'message.ack',
  'typing.set',
  'conversation.events',
  'conversation.presence',
  'x'.repeat(300),
  null,
  7,
  ['message', 'send'],
];

/** A random JSON value, at most `depth` levels deep. */
export function randomJson(rng: Prng, depth = 3): unknown {
  const kind = rng.int(0, depth > 0 ? 8 : 5);
  switch (kind) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -1, 1.5, 1e21, -0, 2 ** 53, rng.int(-1000, 1000)]);
    case 3:
      return rng.string(rng.int(0, 20));
    case 4:
      return rng.pick(['', 'null', '{}', '__proto__', 'constructor', 'conversation.events', 'mutation']);
    case 5:
      return rng.int(0, 3);
    case 6:
    case 7:
      return Object.fromEntries(Array.from({ length: rng.int(0, 4) }, () => [rng.pick(['id', 'method', 'params', 'path', 'input', 'json', 'meta', '__proto__', 'constructor', rng.string(4)]), randomJson(rng, depth - 1)]));
    default:
      return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth - 1));
  }
}

/**
 * Superjson `meta` that superjson rejects or chokes on (unknown transforms, prototype paths, wrong
 * types). Several (a string where an annotation tree is expected) make superjson 2.2.x recurse
 * until the stack overflows, allocating a path array per level: ~10 ms and megabytes per request.
 */
function hostileMeta(rng: Prng, key: string): unknown {
  return rng.pick<unknown>([
    { values: { [key]: ['custom', 'nope'] } },
    { values: { [key]: ['map'] } },
    { values: { [key]: ['bigint'] } },
    { values: { [key]: 'regexp' } },
    { values: { [key]: ['class', 'Nope'] } },
    { values: { [key]: [['map', {}]] } },
    { values: { '__proto__.polluted': ['undefined'] } },
    { values: { 'constructor.prototype.polluted': ['undefined'] } },
    { referentialEqualities: { [key]: ['__proto__.polluted'] } },
    { referentialEqualities: { [key]: ['constructor.prototype.polluted'] } },
  ]);
}

/** superjson on the client side; it refuses own `__proto__` keys, which the wire then carries as plain JSON. */
function serialize(value: unknown): unknown {
  try {
    return superjson.serialize(value);
  } catch {
    return { json: value };
  }
}

function nextId(state: FuzzState): number {
  state.nextId += 1;
  return state.nextId;
}

/** A request id: mostly fresh, sometimes reused, sometimes of the wrong type. */
function requestId(state: FuzzState): unknown {
  const { rng } = state;
  const roll = rng.next();
  if (roll < 0.1 && state.usedIds.length > 0) return rng.pick(state.usedIds);
  if (roll < 0.15) return rng.pick(WEIRD_IDS);
  const id = rng.chance(0.1) ? `s-${nextId(state)}` : nextId(state);
  state.usedIds.push(id);
  if (state.usedIds.length > 50) state.usedIds.shift();
  return id;
}

function conversationId(state: FuzzState): string {
  const { rng } = state;
  return rng.weighted<string>([
    [7, rng.pick(state.rooms)],
    [1, state.forbiddenRoom],
    [2, rng.pick(BAD_CONVERSATION_IDS)],
  ]);
}

/** Wraps an input the way clients do (superjson), or not, or with hostile superjson meta. */
function call(state: FuzzState, method: string, path: string, input?: Record<string, unknown>): Record<string, unknown> {
  const { rng } = state;
  const roll = rng.next();
  const id = requestId(state);
  // Rare: each such input costs the server ~10 ms of CPU and much garbage (issue-6-fuzz-findings).
  if (roll < 0.005 && input) {
    const key = rng.pick(Object.keys(input).concat('x'));
    return { id, method, params: { path, input: { json: input, meta: hostileMeta(rng, key) } } };
  }
  const wire = roll < 0.1 ? input : roll < 0.13 ? randomJson(rng) : serialize(input);
  return { id, method, params: { path, input: wire } };
}

function body(rng: Prng): string {
  return rng.weighted<string>([
    [8, rng.string(rng.int(1, 60))],
    [1, ''],
    [1, rng.string(rng.int(400, 700))],
  ]);
}

function lastEventId(rng: Prng): unknown {
  return rng.pick<unknown>([undefined, undefined, 'garbage', 'ep:000000000001', `zz:${'9'.repeat(15)}`, 'x'.repeat(200), 5, { id: 1 }, null, '', 'a:1.2.3']);
}

/**
 * Half the time, a message some fuzz socket has seen. The draws do not depend on what was seen
 * (which depends on timing), so a worker's sequence of frames depends on the seed alone.
 */
function pickSeen(state: FuzzState): { conversationId: string; messageId: string } | undefined {
  const use = state.rng.chance(0.5);
  const at = state.rng.next();
  return use ? state.seenMessages[Math.floor(at * state.seenMessages.length)] : undefined;
}

/** A well-formed call a hostile client could make: valid shapes, hostile intent. */
export function hostileCall(state: FuzzState): Record<string, unknown> {
  const { rng } = state;
  const choice = rng.weighted<string>([
    [4, 'subscribe'],
    [1, 'stop-live'],
    [6, 'send'],
    [3, 'ack'],
    [2, 'typing'],
    [1, 'presence'],
    [1, 'mine'],
    [1, 'status'],
  ]);
  switch (choice) {
    case 'subscribe': {
      const frame = call(state, 'subscription', 'conversation.events', { conversationId: conversationId(state) });
      const id = lastEventId(rng);
      if (id !== undefined) (frame.params as Record<string, unknown>).lastEventId = id;
      if (typeof frame.id === 'number' || typeof frame.id === 'string') state.liveSubscriptions.push(frame.id);
      return frame;
    }
    case 'stop-live': {
      const id = state.liveSubscriptions.length > 0 ? state.liveSubscriptions.splice(rng.int(0, state.liveSubscriptions.length - 1), 1)[0] : nextId(state);
      return { id, method: 'subscription.stop' };
    }
    case 'send': {
      const input: Record<string, unknown> = { conversationId: conversationId(state), body: body(rng) };
      const ack = rng.pick<unknown>([undefined, undefined, undefined, true, { timeoutMs: rng.int(1, 400) }, { timeoutMs: 0 }, { timeoutMs: -5 }, { timeoutMs: 1.5 }, { timeoutMs: 1e12 }, 'yes']);
      if (ack !== undefined) input.ack = ack;
      const echo = rng.pick<unknown>([undefined, undefined, true, false, 'x']);
      if (echo !== undefined) input.echo = echo;
      const clientMessageId = rng.pick<unknown>([undefined, undefined, 'dup-1', rng.string(8), '', 'x'.repeat(200), 42]);
      if (clientMessageId !== undefined) input.clientMessageId = clientMessageId;
      return call(state, 'mutation', 'message.send', input);
    }
    case 'ack': {
      const seen = pickSeen(state);
      const made = { conversationId: conversationId(state), messageId: rng.pick([rng.string(10), '', 'x'.repeat(65), '00000000-0000-0000-0000-000000000000']) };
      const input = seen ?? made;
      return call(state, 'mutation', 'message.ack', { ...input });
    }
    case 'typing':
      return call(state, 'mutation', 'typing.set', { conversationId: conversationId(state), isTyping: rng.pick<unknown>([true, false, true, 'yes', null]) });
    case 'presence':
      return call(state, 'query', 'conversation.presence', { conversationId: conversationId(state) });
    case 'mine':
      return call(state, 'query', 'conversation.mine');
    default: {
      const made = rng.string(12);
      return call(state, 'query', 'message.deliveryStatus', { messageId: pickSeen(state)?.messageId ?? made });
    }
  }
}

/** A frame of the right general shape with the wrong types, methods or paths. */
export function malformedCall(state: FuzzState): unknown {
  const { rng } = state;
  switch (rng.int(0, 6)) {
    case 0:
      return { id: requestId(state), method: rng.pick(METHODS), params: { path: rng.pick(PATHS), input: serialize(randomJson(rng)) } };
    case 1:
      return { id: requestId(state), method: rng.pick(METHODS), params: randomJson(rng) };
    case 2:
      return { id: requestId(state), method: 'mutation', params: { path: rng.pick(['message.send', 'message.ack', 'typing.set']), input: randomJson(rng) } };
    case 3:
      // A stop before any start, of an unknown id, of a non-id.
      return { id: rng.chance(0.7) ? nextId(state) + 10_000 : rng.pick(WEIRD_IDS), method: 'subscription.stop' };
    case 4:
      // A second subscription under an id that is live: "Duplicate id".
      return { id: state.liveSubscriptions.length > 0 ? rng.pick(state.liveSubscriptions) : 1, method: 'subscription', params: { path: 'conversation.events', input: serialize({ conversationId: rng.pick(state.rooms) }) } };
    case 5:
      return { id: requestId(state), jsonrpc: rng.pick<unknown>(['2.0', '1.0', 2, null]), method: 'query', params: { path: 'conversation.mine', input: serialize(undefined) } };
    default:
      return randomJson(rng, 4);
  }
}

const INVALID_JSON = ['{', '[', ']', '{"id":1,}', "{'id':1}", 'undefined', 'NaN', '{"id":1,"method":', '"unterminated', '\u0000', '{"a":1}{"b":2}', '01', '[1,2', 'nul', 'tru', '{"id":1e99999}', ' '];

/** The connectionParams message a socket with `?connectionParams=1` sends first: valid or hostile. */
export function connectionParamsFrame(state: FuzzState, tokens: { valid: string; forged: string; expired: string }, hostile: boolean): Outgoing {
  const { rng, maxFrameBytes } = state;
  const text = (data: string, category: string): Outgoing => ({ kind: 'text', data, category });
  const params = (data: unknown, category: string) => text(JSON.stringify({ method: 'connectionParams', data }), category);
  if (!hostile) return params({ token: tokens.valid }, 'params:valid');
  return rng.pick<() => Outgoing>([
    () => params(null, 'params:null'),
    () => params(rng.pick<unknown>(['token', 5, [], [tokens.valid], true]), 'params:not-an-object'),
    () => params({ token: rng.pick<unknown>([5, null, { a: 1 }, [tokens.valid], true]) }, 'params:non-string-token'),
    () => params({ token: 'x'.repeat(maxFrameBytes - 60) }, 'params:huge-token'),
    () => params({ token: 'x'.repeat(maxFrameBytes + 10) }, 'params:token-over-limit'),
    () => params({ token: tokens.valid, extra: 5 }, 'params:extra-non-string'),
    () => params({ token: tokens.expired }, 'params:expired'),
    () => params({ token: tokens.forged }, 'params:forged'),
    () => params({}, 'params:empty'),
    () => text(JSON.stringify({ method: 'connectionparams', data: { token: tokens.valid } }), 'params:wrong-method'),
    () => text(JSON.stringify({ data: { token: tokens.valid } }), 'params:no-method'),
    () => text(`{"method":"connectionParams","data":{"__proto__":{"token":"${tokens.valid}"}}}`, 'params:proto'),
    () => text(rng.pick(INVALID_JSON), 'params:invalid-json'),
    () => ({ kind: 'binary', data: Buffer.from(JSON.stringify({ method: 'connectionParams', data: { token: tokens.valid } })), category: 'params:binary' }),
    () => text(JSON.stringify([{ method: 'connectionParams', data: { token: tokens.valid } }]), 'params:array'),
    () => text(JSON.stringify({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: serialize({ conversationId: state.rooms[0] }) } }), 'params:call-first'),
  ])();
}

/** The next frame(s) a fuzz socket sends. */
export function fuzzFrames(state: FuzzState, tokens: { valid: string }): Outgoing[] {
  const { rng, maxFrameBytes } = state;
  const json = (value: unknown, category: string): Outgoing => ({ kind: 'text', data: JSON.stringify(value), category });
  const category = rng.weighted<string>([
    [30, 'hostile-call'],
    [10, 'malformed-call'],
    [8, 'invalid-json'],
    [5, 'batch'],
    [1, 'typing-flood'],
    [3, 'nested'],
    [3, 'binary'],
    [2, 'huge'],
    [2, 'params-again'],
    [2, 'ping-pong'],
    [2, 'fragments'],
    [0.4, 'invalid-utf8'],
    [0.4, 'raw-garbage'],
  ]);
  switch (category) {
    case 'hostile-call':
      return [json(hostileCall(state), category)];
    case 'malformed-call':
      return [json(malformedCall(state), category)];
    case 'invalid-json': {
      const valid = JSON.stringify(hostileCall(state));
      return [{ kind: 'text', data: rng.chance(0.5) ? rng.pick(INVALID_JSON) : rng.chance(0.5) ? valid.slice(0, rng.int(1, valid.length - 1)) : rng.string(rng.int(1, 80)), category }];
    }
    case 'batch': {
      const items = Array.from({ length: rng.weighted<number>([[6, rng.int(0, 10)], [2, rng.int(45, 60)]]) }, () =>
        rng.weighted<() => unknown>([
          [5, () => hostileCall(state)],
          [3, () => malformedCall(state)],
          [1, () => randomJson(rng, 1)],
        ])(),
      );
      const text = JSON.stringify(items);
      return [{ kind: 'text', data: text.length > maxFrameBytes ? '[]' : text, category }];
    }
    case 'typing-flood':
      return Array.from({ length: rng.int(10, 20) }, () => json(call(state, 'mutation', 'typing.set', { conversationId: rng.chance(0.9) ? rng.pick(state.rooms) : state.forbiddenRoom, isTyping: rng.chance(0.5) }), category));
    case 'nested': {
      const depth = rng.int(50, Math.floor(maxFrameBytes / 2) - 100);
      const nested = rng.pick([
        () => '['.repeat(depth) + ']'.repeat(depth),
        () => '{"a":'.repeat(Math.floor(depth / 3)) + '1' + '}'.repeat(Math.floor(depth / 3)),
        () => `{"id":${nextId(state)},"method":"mutation","params":{"path":"message.send","input":{"json":${'['.repeat(depth - 20)}${']'.repeat(depth - 20)}}}`,
        () => `{"id":${nextId(state)},"method":"subscription","params":{"path":"conversation.events","input":{"json":{"conversationId":${'{"a":'.repeat(Math.floor(depth / 6))}1${'}'.repeat(Math.floor(depth / 6))}}}}`,
      ])();
      return [{ kind: 'text', data: nested, category }];
    }
    case 'binary':
      return [{ kind: 'binary', data: rng.chance(0.5) ? rng.bytes(rng.int(0, 64)) : Buffer.from(JSON.stringify(hostileCall(state))), category }];
    case 'huge': {
      // A message.send whose frame is within ±64 bytes of the limit: under it BAD_REQUEST, over it 1009.
      const target = maxFrameBytes + rng.int(-64, 64);
      const frame = { id: nextId(state), method: 'mutation', params: { path: 'message.send', input: { json: { conversationId: rng.pick(state.rooms), body: '' } } } };
      const overhead = Buffer.byteLength(JSON.stringify(frame));
      frame.params.input.json.body = 'b'.repeat(Math.max(1, target - overhead));
      const huge = rng.pick([JSON.stringify(frame), JSON.stringify({ id: 'i'.repeat(Math.max(1, target - 40)), method: 'query', params: { path: 'conversation.mine' } })]);
      return [{ kind: 'text', data: huge, category }];
    }
    case 'params-again':
      return [json({ method: 'connectionParams', data: rng.pick<unknown>([{ token: tokens.valid }, { token: 5 }, null, 'x']) }, category)];
    case 'ping-pong':
      return [{ kind: 'text', data: rng.pick(['PING', 'PONG', 'ping', 'PING ']), category }];
    case 'fragments': {
      const text = JSON.stringify(hostileCall(state));
      const cut = rng.int(1, Math.max(1, text.length - 1));
      return [{ kind: 'fragments', parts: [text.slice(0, cut), text.slice(cut)], category }];
    }
    case 'invalid-utf8':
      return [{ kind: 'invalid-utf8', data: Buffer.concat([Buffer.from('{"id":1,"method":"'), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('"}')]), category }];
    default:
      return [{ kind: 'raw', data: rawGarbage(rng), category }];
  }
}

/**
 * A malformed WebSocket frame: RSV bits without an extension, a reserved opcode, no mask, an
 * oversized control frame, a continuation of nothing. Curated rather than random bytes: a random
 * close frame would make the server echo a random close code back (RFC 6455 §5.5.1).
 */
function rawGarbage(rng: Prng): Buffer {
  const payload = Buffer.from('{"id":1}');
  const masked = (first: number) => Buffer.concat([Buffer.from([first, 0x80 | payload.length, 0, 0, 0, 0]), payload]); // zero mask: payload as is
  return rng.pick([
    () => masked(0xc1), // FIN + RSV1 + text, no permessage-deflate negotiated
    () => masked(0xa1), // RSV2
    () => masked(0x83), // reserved opcode 3
    () => Buffer.concat([Buffer.from([0x81, payload.length]), payload]), // unmasked client frame
    () => Buffer.concat([Buffer.from([0x89, 0x80 | 126, 0, 200, 0, 0, 0, 0]), Buffer.alloc(200)]), // ping longer than 125
    () => masked(0x80), // FIN + continuation opcode, with nothing to continue
  ])();
}

// ---------------------------------------------------------------- judging server frames

const ERROR_CODES = new Set<string>(Object.keys(TRPC_ERROR_CODES_BY_KEY));
const RPC_CODES = new Set<number>(Object.values(TRPC_ERROR_CODES_BY_KEY));
const STACK_LINE = /\n\s+at |node_modules|\/src\/|\.ts:\d+/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The first key named `stack` anywhere in a value, as a path. */
function findStackKey(value: unknown, path = '$'): string | null {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) {
      const found = findStackKey(v, `${path}[${i}]`);
      if (found) return found;
    }
  } else if (isObject(value)) {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'stack') return `${path}.${k}`;
      const found = findStackKey(v, `${path}.${k}`);
      if (found) return found;
    }
  }
  return null;
}

export interface FrameVerdict {
  /** What is wrong with the frame, or null when it is a well-formed tRPC frame. */
  problem: string | null;
  kind: string;
}

/**
 * Judges one text frame from the server. Allowed: PING/PONG; the reconnect notice; result frames
 * (started, stopped, data with a superjson payload); error frames whose shape is the router's
 * (superjson-wrapped `{ message, code, data: { code, httpStatus } }`, a known tRPC code, no
 * stack, no stack-like text), and never INTERNAL_SERVER_ERROR: everything the fuzzer sends is a
 * client mistake at worst (unreadable superjson input is PARSE_ERROR).
 */
export function judgeFrame(text: string): FrameVerdict {
  if (text === 'PING' || text === 'PONG') return { problem: null, kind: text };
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return { problem: 'not JSON', kind: 'invalid' };
  }
  if (!isObject(frame)) return { problem: 'not an object', kind: 'invalid' };
  const stack = findStackKey(frame);
  if (stack) return { problem: `has a stack at ${stack}`, kind: 'invalid' };
  const keys = Object.keys(frame).sort().join(',');
  if (keys === 'id,method') {
    return { problem: frame.id === null && frame.method === 'reconnect' ? null : 'unknown notification', kind: 'reconnect' };
  }
  const { id, jsonrpc, result, error } = frame;
  if (!(id === null || typeof id === 'string' || typeof id === 'number')) return { problem: 'bad id', kind: 'invalid' };
  if (jsonrpc !== undefined && jsonrpc !== '2.0') return { problem: 'bad jsonrpc', kind: 'invalid' };
  if (!['error,id', 'id,result', 'error,id,jsonrpc', 'id,jsonrpc,result'].includes(keys)) return { problem: `unexpected keys ${keys}`, kind: 'invalid' };
  if (result !== undefined) {
    if (!isObject(result)) return { problem: 'result not an object', kind: 'invalid' };
    if (result.type === 'started' || result.type === 'stopped') {
      return { problem: Object.keys(result).length === 1 ? null : 'extra keys in result', kind: `result:${result.type}` };
    }
    if (result.type !== 'data') return { problem: `result type ${String(result.type)}`, kind: 'invalid' };
    if (!isObject(result.data) || !('json' in result.data)) return { problem: 'data not superjson', kind: 'invalid' };
    if (result.id !== undefined && typeof result.id !== 'string') return { problem: 'data id not a string', kind: 'invalid' };
    return { problem: null, kind: result.id === undefined ? 'result:data' : 'result:event' };
  }
  if (!isObject(error) || !isObject(error.json)) return { problem: 'error not superjson', kind: 'invalid' };
  const shape = error.json;
  const data = shape.data;
  if (typeof shape.message !== 'string' || typeof shape.code !== 'number' || !RPC_CODES.has(shape.code)) return { problem: 'bad error shape', kind: 'invalid' };
  if (!isObject(data) || typeof data.code !== 'string' || !ERROR_CODES.has(data.code) || typeof data.httpStatus !== 'number') return { problem: 'bad error data', kind: 'invalid' };
  if (TRPC_ERROR_CODES_BY_KEY[data.code as keyof typeof TRPC_ERROR_CODES_BY_KEY] !== shape.code) return { problem: 'error code mismatch', kind: 'invalid' };
  if (STACK_LINE.test(shape.message)) return { problem: 'stack-like text in the message', kind: 'invalid' };
  if (data.code === 'INTERNAL_SERVER_ERROR') {
    if (shape.message !== 'Internal server error') return { problem: 'unmasked internal error', kind: 'invalid' };
    return { problem: 'INTERNAL_SERVER_ERROR for a client mistake', kind: 'error:INTERNAL_SERVER_ERROR' };
  }
  return { problem: null, kind: `error:${data.code}` };
}

/** Message ids in a data frame (so fuzzers can ack real messages, hostilely). */
export function seenMessage(text: string): { conversationId: string; messageId: string } | null {
  if (!text.includes('"message"')) return null;
  try {
    const frame = JSON.parse(text) as { result?: { data?: { json?: { data?: { type?: string; conversationId?: string; message?: { id?: string } } } } } };
    const event = frame.result?.data?.json?.data;
    if (event?.type === 'message' && event.conversationId && event.message?.id) return { conversationId: event.conversationId, messageId: event.message.id };
  } catch {
    // judged elsewhere
  }
  return null;
}
