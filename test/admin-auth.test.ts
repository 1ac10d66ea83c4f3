import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { MemoryBroker } from '../src/broker/memory-broker.ts';
import type { RoomEnvelope, RoomEvent, RoomId } from '../src/domain/types.ts';
import type { PublishOptions } from '../src/broker/broker.ts';
import { joined, record } from './support/helpers.ts';
import { adminToken, gql } from './support/graphql.ts';
import { startTestApp, TEST_SECRET, type TestApp } from './support/start-test-app.ts';

/** Who may use the admin plane (CONTRACT §2, §5), what a refused caller learns, and the plane's limits. */

const INTROSPECTION = '{ __schema { queryType { name } types { name fields { name } } } }';
/** Nothing of the schema may appear in the answer to a refused request. */
const SCHEMA_WORDS = ['Query', 'Room', 'Mutation', 'BroadcastStats', 'PendingAck', 'Cannot query field', 'Did you mean', '__schema', '__type', 'roomz'];

function expectNoSchema(text: string, label: string): void {
  for (const word of SCHEMA_WORDS) expect(text, `${label}: ${word}`).not.toContain(word);
}

/** Every field of Query and Mutation (and the subscription), as a one-field request each. */
const QUERIES: Record<string, string> = {
  stats: '{ stats { connections } }',
  rooms: '{ rooms(first: 1) { totalCount } }',
  room: '{ room(conversationId: "auth-room") { memberCount } }',
  user: '{ user(userId: "bob") { connections } }',
  pendingAcks: '{ pendingAcks { messageId } }',
  deliveryReport: '{ deliveryReport(messageId: "m") { status } }',
  nodes: '{ nodes { self } }',
};
const ADMIN_MUTATIONS: Record<string, string> = {
  closeRoom: 'mutation { closeRoom(conversationId: "auth-room") }',
  disconnectUser: 'mutation { disconnectUser(userId: "bob") }',
};
const PUBLISHING_MUTATIONS: Record<string, string> = {
  broadcastSystemEvent: 'mutation { broadcastSystemEvent(conversationId: "auth-room", event: "hello", data: { n: 1 }) }',
  updateConversation: 'mutation { updateConversation(conversationId: "auth-room", changes: { title: "t" }) }',
};

/** A room with bob in it, so that refused admin actions would have something to act on. */
async function roomWithBob(t: TestApp) {
  const bob = await t.client('bob');
  const conversation = await joined(bob, 'auth-room');
  await vi.waitFor(() => expect(t.app.service.registry.isMember('bob', 'auth-room')).toBe(true));
  return { bob, conversation, seen: record(conversation) };
}

describe('authentication: only admin (everything) and service (publishing) tokens get in', () => {
  it('refuses missing, malformed, badly signed and expired tokens with 401, and user tokens with 403, and learns them nothing', async () => {
    await using t = await startTestApp();
    const { seen } = await roomWithBob(t);
    const refused: Array<{ label: string; authorization: string | undefined; status: number; code: string }> = [
      { label: 'no token', authorization: undefined, status: 401, code: 'UNAUTHENTICATED' },
      { label: 'empty bearer', authorization: 'Bearer ', status: 401, code: 'UNAUTHENTICATED' },
      { label: 'not a JWT', authorization: 'Bearer not-a-jwt', status: 401, code: 'UNAUTHENTICATED' },
      { label: 'basic auth', authorization: `Basic ${Buffer.from('ops:secret').toString('base64')}`, status: 401, code: 'UNAUTHENTICATED' },
      { label: 'bare token', authorization: await adminToken(t), status: 401, code: 'UNAUTHENTICATED' },
      {
        label: 'bad signature',
        authorization: `Bearer ${await mintToken('another-secret-that-is-also-32-characters-long', { userId: 'ops', role: 'admin' })}`,
        status: 401,
        code: 'UNAUTHENTICATED',
      },
      { label: 'expired', authorization: `Bearer ${await mintToken(TEST_SECRET, { userId: 'ops', role: 'admin', expiresIn: -60 })}`, status: 401, code: 'UNAUTHENTICATED' },
      { label: 'role user', authorization: `Bearer ${await t.token('ops')}`, status: 403, code: 'FORBIDDEN' },
      { label: 'role user, named admin', authorization: `Bearer ${await t.token('admin', { name: 'admin' })}`, status: 403, code: 'FORBIDDEN' },
    ];
    const requests = { ...QUERIES, ...ADMIN_MUTATIONS, ...PUBLISHING_MUTATIONS, invalidField: '{ roomz }', introspection: INTROSPECTION, type: '{ __type(name: "Room") { fields { name } } }', syntax: '{ stats {' };
    for (const r of refused) {
      for (const [name, query] of Object.entries(requests)) {
        const res = await gql(t, query, r.authorization === undefined ? {} : { authorization: r.authorization });
        const label = `${r.label} / ${name}`;
        expect(res.status, label).toBe(r.status);
        expect(res.errors.map((e) => e.extensions?.code), label).toEqual([r.code]);
        expect(res.data, label).toBeUndefined();
        if (r.status === 401) expect(res.headers.get('www-authenticate'), label).toBe('Bearer');
        expectNoSchema(res.text, label);
      }
    }
    // None of the refused mutations happened.
    expect(seen).toEqual([]);
    expect(t.app.service.registry.userConnections('bob').size).toBe(1);
    expect(t.app.service.registry.hasRoom('auth-room')).toBe(true);
  });

  it('service tokens may publish (system events, conversation updates) and nothing else — 403 before validation', async () => {
    await using t = await startTestApp();
    const { conversation, seen } = await roomWithBob(t);
    const service = await t.token('billing', { role: 'service' });

    const hello = conversation.next('system', (e) => e.event === 'hello');
    const updated = conversation.next('conversation_updated');
    for (const [name, query] of Object.entries(PUBLISHING_MUTATIONS)) {
      const res = await gql(t, query, { token: service });
      expect(res.status, name).toBe(200);
      expect(res.errors, name).toEqual([]);
      expect(res.data, name).toEqual({ [name]: true });
    }
    expect((await hello).data).toEqual({ n: 1 });
    expect((await updated).changes).toEqual({ title: 't' });

    const forbidden = {
      ...QUERIES,
      ...ADMIN_MUTATIONS,
      subscription: 'subscription { stats { connections } }',
      typename: '{ __typename }',
      introspection: INTROSPECTION,
      type: '{ __type(name: "Room") { fields { name } } }',
      invalidField: '{ roomz }',
      invalidMutationField: 'mutation { roomz }',
      // An allowed field does not carry a forbidden one in with it, whatever the packaging.
      mixed: 'mutation { broadcastSystemEvent(conversationId: "auth-room", event: "smuggled") closeRoom(conversationId: "auth-room") }',
      alias: 'mutation { broadcastSystemEvent: closeRoom(conversationId: "auth-room") }',
      inlineFragment: 'mutation { ... on Mutation { closeRoom(conversationId: "auth-room") } }',
      fragment: 'mutation { ...F } fragment F on Mutation { disconnectUser(userId: "bob") }',
      twoOperations: 'mutation A { broadcastSystemEvent(conversationId: "auth-room", event: "smuggled") } query B { stats { connections } }',
    };
    for (const [name, query] of Object.entries(forbidden)) {
      const res = await gql(t, query, { token: service });
      expect(res.status, name).toBe(403);
      expect(res.errors.map((e) => e.extensions?.code), name).toEqual(['FORBIDDEN']);
      expect(res.data ?? null, name).toBeNull();
      expectNoSchema(res.text, `service / ${name}`);
    }
    // Nothing happened: bob is still there, and no smuggled event reached the room.
    const marker = conversation.next('system', (e) => e.event === 'marker');
    await t.app.broadcastSystemEvent('auth-room', 'marker');
    await marker;
    expect(seen.map((s) => (s.event.type === 'system' ? s.event.event : s.event.type))).toEqual(['hello', 'conversation_updated', 'marker']);
    expect(t.app.service.registry.userConnections('bob').size).toBe(1);
  });

  it('admin tokens may use every field; GET works for queries but never for mutations', async () => {
    await using t = await startTestApp();
    await roomWithBob(t);
    const token = await adminToken(t);
    for (const [name, query] of Object.entries({ ...QUERIES, ...PUBLISHING_MUTATIONS, introspection: INTROSPECTION, ...ADMIN_MUTATIONS })) {
      const res = await gql(t, query, { token });
      expect(res.status, name).toBe(200);
      expect(res.errors, name).toEqual([]);
      expect(res.data, name).toBeTruthy();
    }
    await vi.waitFor(() => expect(t.app.service.registry.userConnections('bob').size).toBe(0)); // disconnectUser ran last

    const get = await fetch(`${t.baseUrl}/graphql?query=${encodeURIComponent('{ nodes { self } }')}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(get.status).toBe(200);
    expect(await get.json()).toEqual({ data: { nodes: [{ self: true }] } });
    const mutationByGet = await fetch(`${t.baseUrl}/graphql?query=${encodeURIComponent('mutation { closeRoom(conversationId: "x") }')}`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } });
    expect(mutationByGet.status).toBe(405);
  });
});

describe('limits', () => {
  it('depth over 8, more than 15 aliases, bodies over ADMIN_MAX_BODY_BYTES (413); field suggestions hidden', async () => {
    await using t = await startTestApp({ adminMaxBodyBytes: 2048 });
    const token = await adminToken(t);
    // Depth: stats(1) + n inline fragments + memory + rssBytes = n + 3.
    const deep = (n: number) => `{ stats { ${'... on BroadcastStats { '.repeat(n)}memory { rssBytes }${' }'.repeat(n)} } }`;
    const eight = await gql<{ stats: { memory: { rssBytes: number } } }>(t, deep(5), { token });
    expect(eight.errors).toEqual([]);
    expect(eight.data?.stats.memory.rssBytes).toBeGreaterThan(0);
    const nine = await gql(t, deep(6), { token });
    expect(nine.data ?? null).toBeNull();
    expect(nine.errors.map((e) => e.message)).toEqual([expect.stringContaining('depth limit of 8 exceeded')]);

    const aliases = (n: number) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: nodes { self }`).join(' ')} }`;
    const fifteen = await gql<Record<string, unknown>>(t, aliases(15), { token });
    expect(fifteen.errors).toEqual([]);
    expect(Object.keys(fifteen.data ?? {})).toHaveLength(15);
    const sixteen = await gql(t, aliases(16), { token });
    expect(sixteen.data ?? null).toBeNull();
    expect(sixteen.errors.map((e) => e.message)).toEqual([expect.stringContaining('Aliases limit of 15 exceeded')]);

    const padded = (bytes: number) => JSON.stringify({ query: '{ nodes { self } }', variables: { pad: 'x'.repeat(bytes) } });
    const post = (body: string) => fetch(`${t.baseUrl}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body });
    const small = await post(padded(1800));
    expect(Buffer.byteLength(padded(1800))).toBeLessThan(2048);
    expect(small.status).toBe(200);
    const big = await post(padded(3000));
    expect(big.status).toBe(413);
    expect((await big.json()) as unknown).toMatchObject({ errors: [{ extensions: { code: 'REQUEST_ENTITY_TOO_LARGE' } }] });

    for (const query of ['{ statz { connections } }', '{ stats { connectionz } }', '{ room(conversationld: "x") { memberCount } }']) {
      const res = await gql(t, query, { token });
      expect(res.status, query).toBe(400);
      expect(res.errors.length, query).toBeGreaterThan(0);
      expect(res.text, query).toContain('[Suggestion hidden]');
      expect(res.text, query).not.toContain('Did you mean');
      expect(res.text, query).not.toMatch(/"(stats|connections|conversationId)"/);
    }
  });

  it('masks unexpected errors to the caller (no message, no stack, even with NODE_ENV=development) and logs the original', async () => {
    vi.stubEnv('NODE_ENV', 'development');
    try {
      // A broker that fails for one room, as an unreachable Redis would.
      class FailingBroker extends MemoryBroker {
        override publish(roomId: RoomId, event: RoomEvent, options: PublishOptions): Promise<RoomEnvelope> {
          if (roomId === 'explode') return Promise.reject(new Error('redis: connect ECONNREFUSED 10.1.2.3:6379 (secret-detail)'));
          return super.publish(roomId, event, options);
        }
      }
      const logged: string[] = [];
      const logger = pino({ level: 'error' }, { write: (line: string) => void logged.push(line) });
      await using t = await startTestApp({ broker: new FailingBroker({ historySize: 16, historyTtlMs: 60_000 }), logger });
      const res = await gql(t, 'mutation { broadcastSystemEvent(conversationId: "explode", event: "x") }', { token: await adminToken(t) });
      expect(res.errors).toEqual([{ message: 'Unexpected error.', locations: expect.any(Array) as unknown, path: ['broadcastSystemEvent'], extensions: { code: 'INTERNAL_SERVER_ERROR' } }]);
      for (const leak of ['ECONNREFUSED', '10.1.2.3', 'secret-detail', 'stack', 'originalError', '.ts:', 'at ']) expect(res.text, leak).not.toContain(leak);
      // The operator still finds the cause, with its stack, in the log.
      const entries = logged.map((line) => JSON.parse(line) as { msg?: string; err?: { message?: string; stack?: string } });
      expect(entries.some((e) => e.err?.message?.includes('secret-detail') && e.err.stack?.includes('admin-auth.test.ts'))).toBe(true);

      // Expected errors keep their message and code, still without a stack.
      const bad = await gql(t, '{ rooms(after: "garbage") { totalCount } }', { token: await adminToken(t) });
      expect(bad.errors[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT' });
      expect(bad.text).not.toContain('stack');
    } finally {
      vi.unstubAllEnvs();
    }
  });
});

describe('GraphiQL, introspection, CORS', () => {
  const html = (t: TestApp, query = '', headers: Record<string, string> = {}) => fetch(`${t.baseUrl}/graphql${query}`, { headers: { accept: 'text/html', ...headers } });

  it('graphiql: false serves no GraphiQL page, to anyone', async () => {
    await using t = await startTestApp({ graphiql: false });
    const anonymous = await html(t);
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).not.toMatch(/graphiql|<html/i);
    const admin = await html(t, '', { authorization: `Bearer ${await adminToken(t)}` });
    expect(admin.status).not.toBe(200);
    expect(admin.headers.get('content-type') ?? '').not.toContain('text/html');
    expect(await admin.text()).not.toMatch(/graphiql|<html/i);
  });

  it('graphiql: true serves the page without a token; the page holds no schema and runs nothing', async () => {
    await using t = await startTestApp({ graphiql: true });
    const bob = await t.client('bob');
    await joined(bob, 'graphiql-room');
    const page = await html(t);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    const text = await page.text();
    expect(text).toMatch(/graphiql/i);
    for (const word of ['BroadcastStats', 'RoomConnection', 'pendingAckList', 'graphiql-room']) expect(text).not.toContain(word);
    // A query in the URL is only pre-filled, never executed without a token.
    const withQuery = await html(t, `?query=${encodeURIComponent('{ rooms { edges { node { conversationId } } } }')}`);
    expect(withQuery.status).toBe(200);
    expect(await withQuery.text()).not.toContain('graphiql-room');
    // Only the HTML page is exempt: JSON without a token is refused as ever.
    const json = await fetch(`${t.baseUrl}/graphql?query=${encodeURIComponent('{ nodes { self } }')}`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(401);
  });

  it('introspection: false refuses __schema and __type even to admins; on by default outside production', async () => {
    await using off = await startTestApp({ introspection: false });
    const token = await adminToken(off);
    for (const query of [INTROSPECTION, '{ __type(name: "Room") { name fields { name } } }']) {
      const res = await gql(off, query, { token });
      expect(res.data ?? null, query).toBeNull();
      expect(res.errors[0]?.message, query).toContain('introspection has been disabled');
      for (const word of ['BroadcastStats', 'RoomConnection', 'pendingAckList']) expect(res.text).not.toContain(word);
    }
    expect((await gql(off, '{ __typename }', { token })).data).toEqual({ __typename: 'Query' });

    await using on = await startTestApp();
    const res = await gql<{ __schema: { queryType: { name: string } } }>(on, INTROSPECTION, { token: await adminToken(on) });
    expect(res.data?.__schema.queryType.name).toBe('Query');
  });

  it('CORS: no origin is allowed by default; with adminCorsOrigins only the listed ones, without credentials', async () => {
    const preflight = (t: TestApp, origin: string) =>
      fetch(`${t.baseUrl}/graphql`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' } });
    const post = async (t: TestApp, origin: string) =>
      fetch(`${t.baseUrl}/graphql`, { method: 'POST', headers: { origin, 'content-type': 'application/json', authorization: `Bearer ${await adminToken(t)}` }, body: JSON.stringify({ query: '{ nodes { self } }' }) });

    await using closed = await startTestApp();
    for (const origin of ['https://evil.example', 'https://ops.example', 'null']) {
      expect((await preflight(closed, origin)).headers.get('access-control-allow-origin'), origin).toBeNull();
      const res = await post(closed, origin);
      expect(res.status).toBe(200); // a server-side caller is unaffected; a browser gets no CORS grant
      expect(res.headers.get('access-control-allow-origin'), origin).toBeNull();
    }

    for (const allowed of [['https://ops.example'], ['https://ops.example', 'https://ops2.example']]) {
      await using open = await startTestApp({ adminCorsOrigins: allowed });
      for (const origin of allowed) {
        const ok = await preflight(open, origin);
        expect(ok.status).toBe(204);
        expect(ok.headers.get('access-control-allow-origin')).toBe(origin);
        expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
        expect(ok.headers.get('access-control-allow-headers')).toContain('authorization');
        expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
        expect((await post(open, origin)).headers.get('access-control-allow-origin')).toBe(origin);
      }
      // Neither another site, nor a sandboxed or file: page (Origin: null), nor a look-alike.
      for (const origin of ['https://evil.example', 'null', 'https://ops.example.evil.example', 'http://ops.example']) {
        const label = `${allowed.length} allowed / ${origin}`;
        expect((await preflight(open, origin)).headers.get('access-control-allow-origin'), label).toBeNull();
        expect((await post(open, origin)).headers.get('access-control-allow-origin'), label).toBeNull();
      }
    }
  });
});
