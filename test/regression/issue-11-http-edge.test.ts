import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { createTRPCClient, httpBatchLink, TRPCClientError } from '@trpc/client';
import { chromium } from 'playwright-core';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { mintToken } from '../../src/auth/tokens.ts';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createRealtimeServer } from '../../src/server.ts';
import type { AppRouter } from '../../src/transport/router.ts';
import { nodeArgsFor } from '../support/built.ts';
import { joined, trpcHttp } from '../support/helpers.ts';
import { adminToken, gql } from '../support/graphql.ts';
import { startTestApp, TEST_SECRET, type TestApp } from '../support/start-test-app.ts';
import { syncMarker, waitUntil } from '../support/wait.ts';
import { CHROMIUM, haveChromium } from '../support/chromium.ts';

/**
 * Issue #11 at the HTTP edge: batches bounded before any call runs, the HTTP server's timeouts
 * and connection cap, /metrics closed in production unless asked for, GraphiQL's headers,
 * service tokens bound by their `conversations`, and malformed requests logged at warn, briefly.
 */

/** A logger writing every line (trace and up) into `lines`, parsed. */
function captureLog() {
  const lines: Array<Record<string, unknown> & { level: number; msg: string }> = [];
  const raw: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      raw.push(chunk.toString());
      lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
      done();
    },
  });
  return { logger: createLogger('trace', sink), lines, raw };
}

/** `/trpc/<path>,<path>,…?batch=1` with `count` calls. */
function batchUrl(t: TestApp, path: string, count: number, input?: unknown): string {
  const query = input === undefined ? '' : `&input=${encodeURIComponent(JSON.stringify(Object.fromEntries(Array.from({ length: count }, (_, i) => [i, superjson.serialize(input)]))))}`;
  return `${t.baseUrl}/trpc/${Array.from({ length: count }, () => path).join(',')}?batch=1${query}`;
}

/** A raw TCP connection to the app, collecting what it receives; `closed` resolves when the server closes it. */
async function rawConnection(t: TestApp): Promise<{ socket: Socket; received: () => string; closed: Promise<void> }> {
  const socket = connect(Number(new URL(t.baseUrl).port), '127.0.0.1');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  socket.on('error', () => undefined); // a write after the server closed it
  const closed = once(socket, 'close').then(() => undefined);
  await once(socket, 'connect');
  return { socket, received: () => received, closed };
}

/** Sends GET /healthz on a raw connection (keep-alive) and resolves with the status line of the answer. */
async function healthzOver(connection: Awaited<ReturnType<typeof rawConnection>>): Promise<string> {
  const from = connection.received().length;
  connection.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await waitUntil(() => connection.received().slice(from).includes('{"status":"ok"}'), { what: 'the /healthz answer' });
  return connection.received().slice(from).split('\r\n')[0]!;
}

function openConnections(t: TestApp): Promise<number> {
  return new Promise((resolve, reject) => t.app.httpServer.getConnections((error, count) => (error ? reject(error) : resolve(count))));
}

describe('issue #11 (3): an HTTP batch holds at most MAX_HTTP_BATCH calls', () => {
  it('serves 50 calls, refuses 51 with 400 naming the limit before any call runs — with or without a token; the stock client sees it on every call', async () => {
    await using t = await startTestApp();
    const token = await t.token('alice');
    const auth = { authorization: `Bearer ${token}` };

    const fifty = await fetch(batchUrl(t, 'conversation.mine', 50), { headers: auth });
    expect(fifty.status).toBe(200);
    expect(((await fifty.json()) as unknown[]).length).toBe(50);

    for (const headers of [auth, {}]) {
      const refused = await fetch(batchUrl(t, 'conversation.mine', 51), { headers });
      expect(refused.status).toBe(400);
      const body = (await refused.json()) as { error: { json: { message: string; data: { code: string } } } };
      expect(body.error.json.data.code).toBe('BAD_REQUEST');
      expect(body.error.json.message).toBe('batch of 51 calls refused: at most 50 calls per HTTP request (MAX_HTTP_BATCH)');
    }

    // Before any call runs: 51 sends into a watched room publish nothing.
    const bob = await t.client('bob');
    const room = await joined(bob, 'batch-room');
    const seen: string[] = [];
    room.on('message', (e) => seen.push(e.message.body));
    const sends = await fetch(`${t.baseUrl}/trpc/${Array.from({ length: 51 }, () => 'message.send').join(',')}?batch=1`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(Object.fromEntries(Array.from({ length: 51 }, (_, i) => [i, superjson.serialize({ conversationId: 'batch-room', body: `sent ${i}` })]))),
    });
    expect(sends.status).toBe(400);
    await syncMarker(t, 'batch-room', room);
    expect(seen).toEqual([]);
    expect(t.app.getBroadcastStats().messagesBroadcast).toBe(0);

    // The stock client with a link that batches more than the server takes: each call gets the error.
    const trpc = createTRPCClient<AppRouter>({ links: [httpBatchLink({ url: `${t.baseUrl}/trpc`, transformer: superjson, maxItems: 100, headers: auth })] });
    const results = await Promise.allSettled(Array.from({ length: 51 }, () => trpc.conversation.mine.query()));
    for (const result of results) {
      expect(result.status).toBe('rejected');
      const error = (result as PromiseRejectedResult).reason as TRPCClientError<AppRouter>;
      expect(error).toBeInstanceOf(TRPCClientError);
      expect([error.data?.code, error.message]).toEqual(['BAD_REQUEST', 'batch of 51 calls refused: at most 50 calls per HTTP request (MAX_HTTP_BATCH)']);
    }
  });

  it('answers an 8,000-call batch at once with one small error, token or not', async () => {
    await using t = await startTestApp();
    for (const headers of [{}, { authorization: `Bearer ${await t.token('alice')}` }] as Array<Record<string, string>>) {
      const res = await fetch(batchUrl(t, 'a', 8000), { headers });
      const text = await res.text();
      expect(res.status).toBe(400);
      expect(text).toContain('batch of 8000 calls refused: at most 50 calls per HTTP request (MAX_HTTP_BATCH)');
      expect(Buffer.byteLength(text)).toBeLessThan(400); // one error, not 8,000 (about 1 MB before)
    }
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
  });
});

describe('issue #11 (6): HTTP server timeouts and connection cap', () => {
  it('closes a connection that trickles its headers once HTTP_HEADERS_TIMEOUT_MS has passed (408)', async () => {
    await using t = await startTestApp({ httpHeadersTimeoutMs: 1000, httpRequestTimeoutMs: 2000 });
    expect([t.app.httpServer.headersTimeout, t.app.httpServer.requestTimeout, t.app.httpServer.keepAliveTimeout]).toEqual([1000, 2000, 5000]);
    const slow = await rawConnection(t);
    const started = Date.now();
    slow.socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const trickle = setInterval(() => slow.socket.write('X-Slow: 1\r\n'), 100);
    try {
      await slow.closed;
    } finally {
      clearInterval(trickle);
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(5000); // Node's default was 60 s
    expect(slow.received()).toMatch(/^HTTP\/1\.1 408 /);
  });

  it('drops connections beyond MAX_CONNECTIONS at once, and takes new ones again when one closes', async () => {
    await using t = await startTestApp({ maxConnections: 3 });
    const drops: unknown[] = [];
    t.app.httpServer.on('drop', (data) => drops.push(data));
    const serverSockets = new Map<number, Socket>();
    t.app.httpServer.on('connection', (socket: Socket) => serverSockets.set(socket.remotePort!, socket));
    const kept = [await rawConnection(t), await rawConnection(t), await rawConnection(t)];
    for (const connection of kept) expect(await healthzOver(connection)).toBe('HTTP/1.1 200 OK');

    const extra = [await rawConnection(t), await rawConnection(t)];
    await Promise.all(extra.map((c) => c.closed));
    expect(extra.map((c) => c.received())).toEqual(['', '']);
    expect(drops.length).toBe(2);
    for (const connection of kept) expect(await healthzOver(connection)).toBe('HTTP/1.1 200 OK'); // the first three are untouched

    const serverSide = serverSockets.get(kept[0]!.socket.localPort!)!;
    kept[0]!.socket.destroy();
    await once(serverSide, 'close');
    expect(await openConnections(t)).toBe(2);
    const again = await rawConnection(t);
    expect(await healthzOver(again)).toBe('HTTP/1.1 200 OK');
    again.socket.destroy();
    for (const connection of kept) connection.socket.destroy();
  });

  it('refuses HTTP_HEADERS_TIMEOUT_MS above HTTP_REQUEST_TIMEOUT_MS in one line; a host server keeps its own settings', async () => {
    const bad = () => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '40000', HTTP_REQUEST_TIMEOUT_MS: '30000' });
    expect(bad).toThrow(ConfigError);
    expect(bad).toThrow(/^Invalid configuration: HTTP_HEADERS_TIMEOUT_MS=40000 must not exceed HTTP_REQUEST_TIMEOUT_MS \(30000\)$/);
    expect(() => loadConfig({}, { httpHeadersTimeoutMs: 5000, httpRequestTimeoutMs: 4000 })).toThrow(/HTTP_HEADERS_TIMEOUT_MS=5000/);
    expect(loadConfig({})).toMatchObject({ httpHeadersTimeoutMs: 10_000, httpRequestTimeoutMs: 30_000, httpKeepAliveTimeoutMs: 5000, maxConnections: 20_000 });

    const host = createServer();
    const before = [host.headersTimeout, host.requestTimeout, host.keepAliveTimeout, host.maxConnections];
    const app = createRealtimeServer({ server: host, authSecret: TEST_SECRET, env: { LOG_LEVEL: 'silent' }, httpHeadersTimeoutMs: 1000, httpRequestTimeoutMs: 1000, maxConnections: 1 });
    expect([host.headersTimeout, host.requestTimeout, host.keepAliveTimeout, host.maxConnections]).toEqual(before);
    await app.close();
  });
});

describe('issue #11 (6): /metrics in production needs METRICS_TOKEN or METRICS_PUBLIC=true', () => {
  const production = { NODE_ENV: 'production', AUTH_SECRET: TEST_SECRET };
  const modeLine = (lines: ReturnType<typeof captureLog>['lines']) => lines.filter((l) => 'metrics' in l).map((l) => [l.level, l.metrics, l.msg]);

  it('without either: 403 saying what to set, and the start log says it is off', async () => {
    const { logger, lines } = captureLog();
    await using t = await startTestApp({ env: production, logger });
    for (const headers of [{}, { authorization: 'Bearer anything-at-all' }] as Array<Record<string, string>>) {
      const res = await fetch(`${t.baseUrl}/metrics`, { headers });
      expect(res.status).toBe(403);
      expect(await res.text()).toBe('/metrics is off: set METRICS_TOKEN (then scrape with Authorization: Bearer <token>) or METRICS_PUBLIC=true\n');
    }
    expect(modeLine(lines)).toEqual([[30, 'off', '/metrics is off: set METRICS_TOKEN or METRICS_PUBLIC=true']]);
  });

  it('METRICS_PUBLIC=true opens it; METRICS_TOKEN requires the bearer (also over METRICS_PUBLIC); each said at start', async () => {
    const open = captureLog();
    {
      await using t = await startTestApp({ env: { ...production, METRICS_PUBLIC: 'true' }, logger: open.logger });
      const res = await fetch(`${t.baseUrl}/metrics`);
      expect(res.status).toBe(200);
      expect(await res.text()).toContain('# TYPE realtime_connections gauge');
    }
    expect(modeLine(open.lines)).toEqual([[30, 'public', '/metrics is public (no token)']]);

    const metricsToken = 'metrics-token-that-is-long-enough';
    const guarded = captureLog();
    {
      await using t = await startTestApp({ env: { ...production, METRICS_PUBLIC: 'true', METRICS_TOKEN: metricsToken }, logger: guarded.logger });
      for (const headers of [{}, { authorization: `Bearer ${metricsToken}x` }, { authorization: metricsToken }] as Array<Record<string, string>>) {
        const res = await fetch(`${t.baseUrl}/metrics`, { headers });
        expect(res.status).toBe(401);
        await res.arrayBuffer();
      }
      const res = await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    expect(modeLine(guarded.lines)).toEqual([[30, 'token', '/metrics needs Authorization: Bearer <METRICS_TOKEN>']]);
    expect(guarded.raw.join('')).not.toContain(metricsToken);
  });
});


/** The sources a CSP directive allows, or null when the policy lacks it. */
function directive(csp: string, name: string): string[] | null {
  const found = csp.split(';').map((d) => d.trim().split(/\s+/)).find(([n]) => n === name);
  return found ? found.slice(1) : null;
}

describe('issue #11 (6): GraphiQL is served with a CSP and X-Frame-Options', () => {
  it('the page gets frame-ancestors none, X-Frame-Options DENY, and a script-src allowing exactly its inline scripts', async () => {
    await using t = await startTestApp({ graphiql: true });
    const res = await fetch(`${t.baseUrl}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(directive(csp, 'default-src')).toEqual(["'none'"]);
    expect(directive(csp, 'frame-ancestors')).toEqual(["'none'"]);
    expect(directive(csp, 'connect-src')).toEqual(["'self'"]);
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    const hashes = scripts.map((m) => `'sha256-${createHash('sha256').update(m[2]!).digest('base64')}'`);
    expect(scripts.map((m) => m[1])).toEqual(scripts.map(() => '')); // all inline, no src
    expect(directive(csp, 'script-src')?.sort()).toEqual([...new Set(hashes)].sort()); // no unsafe-inline, no eval, no host
    expect(html).not.toMatch(/\s(?:src|href)="https?:/); // nothing from a CDN
  });

  it.skipIf(!haveChromium)('renders in headless Chromium under that CSP without a single violation, and reaches /graphql', { timeout: 20_000 }, async () => {
    await using t = await startTestApp({ graphiql: true });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-dev-shm-usage'] });
    try {
      const page = await browser.newPage();
      const problems: string[] = [];
      page.on('pageerror', (error) => problems.push(error.message));
      page.on('console', (msg) => {
        if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) problems.push(msg.text()); // the 401s below are expected
      });
      const answered: number[] = [];
      page.on('response', (r) => {
        if (r.request().method() === 'POST' && new URL(r.url()).pathname === '/graphql') answered.push(r.status());
      });
      // Added through the debugging protocol, so the page's CSP does not apply to this script itself.
      await page.addInitScript(() => {
        const w = window as unknown as { violations: string[] };
        w.violations = [];
        document.addEventListener('securitypolicyviolation', (e) => w.violations.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const response = await page.goto(`${t.baseUrl}/graphql`);
      expect(directive(response?.headers()['content-security-policy'] ?? '', 'frame-ancestors')).toEqual(["'none'"]); // the page ran under the policy
      await page.locator('.graphiql-execute-button').first().waitFor({ timeout: 15_000 });
      await page.locator('.monaco-editor').first().waitFor();
      // GraphiQL asks for the schema with the placeholder token: the request leaves (connect-src) and is refused.
      await waitUntil(() => answered.includes(401), { timeoutMs: 10_000, what: 'GraphiQL to reach /graphql' });
      expect(await page.evaluate(() => (window as unknown as { violations: string[] }).violations)).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

describe('issue #11 (6): service tokens are bound by their conversations claim', () => {
  const PUBLISH = {
    broadcastSystemEvent: (room: string) => `mutation { broadcastSystemEvent(conversationId: "${room}", event: "from-service", data: { n: 1 }) }`,
    updateConversation: (room: string) => `mutation { updateConversation(conversationId: "${room}", changes: { title: "from-service" }) }`,
  };

  it('publishes into its own conversations; elsewhere FORBIDDEN naming the conversation and nothing published; no claim: nowhere', async () => {
    await using t = await startTestApp();
    const bob = await t.client('bob');
    const other = await joined(bob, 'other-room');
    const own = await joined(bob, 'billing-room');
    const seenElsewhere: string[] = [];
    other.on('system', (e) => seenElsewhere.push(e.event));
    other.on('conversation_updated', () => seenElsewhere.push('conversation_updated'));

    const ownArrivals = [own.next('system', (e) => e.event === 'from-service'), own.next('conversation_updated')];
    const billing = await t.token('billing', { role: 'service', conversations: ['billing-room'] });
    const unscoped = await mintToken(TEST_SECRET, { userId: 'legacy', role: 'service' }); // no conversations claim at all
    for (const [name, query] of Object.entries(PUBLISH)) {
      const ok = await gql(t, query('billing-room'), { token: billing });
      expect([name, ok.status, ok.errors]).toEqual([name, 200, []]);
      for (const token of [billing, unscoped]) {
        const refused = await gql(t, query('other-room'), { token });
        expect(refused.errors.map((e) => [e.extensions?.code, e.message]), name).toEqual([['FORBIDDEN', "not allowed in conversation other-room: not in this service token's conversations claim"]]);
        expect(refused.data?.[name] ?? null, name).toBeNull();
      }
    }
    await Promise.all(ownArrivals);
    // Room events arrive in publish order: once the marker is in, a refused publish would be too.
    await syncMarker(t, 'other-room', other);
    expect(seenElsewhere.filter((e) => !e.startsWith('marker-'))).toEqual([]);
  });

  it('admin tokens stay unrestricted; the token CLI mints service tokens for every conversation unless told otherwise', async () => {
    await using t = await startTestApp();
    const admin = await t.token('ops', { role: 'admin', conversations: [] });
    for (const query of Object.values(PUBLISH)) expect((await gql(t, query('anywhere'), { token: admin })).errors).toEqual([]);

    const root = join(import.meta.dirname, '..', '..');
    const { stdout } = await promisify(execFile)(process.execPath, [...nodeArgsFor('src/cli/token.ts'), '--user', 'billing', '--role', 'service'], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', AUTH_SECRET: TEST_SECRET },
    });
    const cliToken = stdout.trim();
    for (const query of Object.values(PUBLISH)) expect((await gql(t, query('anywhere-else'), { token: cliToken })).errors).toEqual([]);
  });
});

describe('issue #11 (7): malformed requests are logged at warn, without a stack, one line per kind a minute', () => {
  it('bad JSON, bad encoding, unknown paths, oversized bodies and batches, bad Host: warn lines only, each kind once, the count held back on the next', async () => {
    const { logger, lines, raw } = captureLog();
    await using t = await startTestApp({ logger, graphiql: false });
    const token = await t.token('alice');
    const admin = await adminToken(t);
    const json = { 'content-type': 'application/json' };
    const send = (init: RequestInit, path = 'message.send') => fetch(`${t.baseUrl}/trpc/${path}`, { method: 'POST', ...init }).then(async (r) => [r.status, (await r.text()).length]);
    const kinds: Array<[string, () => Promise<unknown>]> = [
      ['bad JSON', () => send({ headers: { ...json, authorization: `Bearer ${token}` }, body: '{nope' })],
      ['invalid UTF-8', () => send({ headers: { ...json, authorization: `Bearer ${token}` }, body: Buffer.from([0x7b, 0xff, 0xfe, 0x7d]) })],
      ['body over MAX_FRAME_BYTES', () => send({ headers: { ...json, authorization: `Bearer ${token}` }, body: 'x'.repeat(2 * 1024 * 1024) })],
      ['unknown procedure', () => fetch(`${t.baseUrl}/trpc/no.such.procedure`).then((r) => r.text())],
      ['bad path encoding', () => fetch(`${t.baseUrl}/trpc/%E0%A4%A`).then((r) => r.text())],
      ['wrong content type', () => send({ headers: { 'content-type': 'text/plain' }, body: 'x' })],
      ['oversized batch', () => fetch(batchUrl(t, 'a', 8000)).then((r) => r.text())],
      ['graphql: bad JSON', () => fetch(`${t.baseUrl}/graphql`, { method: 'POST', headers: { ...json, authorization: `Bearer ${admin}` }, body: '{nope' }).then((r) => r.text())],
      ['graphql: body over ADMIN_MAX_BODY_BYTES', () => fetch(`${t.baseUrl}/graphql`, { method: 'POST', headers: { ...json, authorization: `Bearer ${admin}` }, body: 'x'.repeat(200_000) }).then((r) => r.text())],
      [
        'graphql: a Host that makes no URL',
        async () => {
          const c = await rawConnection(t);
          c.socket.write('GET /graphql HTTP/1.1\r\nHost: [::1\r\n\r\n');
          await waitUntil(() => c.received().includes('\r\n\r\n{'), { what: 'the answer to a bad Host' });
          c.socket.destroy();
          expect(c.received()).toMatch(/^HTTP\/1\.1 400 /);
          expect(c.received()).not.toMatch(/TypeError|\n\s+at /); // it was a 500 carrying the stack trace
          return c.received();
        },
      ],
    ];
    for (let round = 0; round < 3; round += 1) for (const [, request] of kinds) await request();

    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(raw.join('')).not.toMatch(/"stack"|\\n\s+at /);
    const warned = lines.filter((l) => l.msg === 'malformed request refused');
    expect(warned.every((l) => l.level === 40 && l.heldBack === 0)).toBe(true);
    const perKind = new Map<string, number>();
    for (const l of warned) perKind.set(`${String(l.transport)}:${String(l.code)}`, (perKind.get(`${String(l.transport)}:${String(l.code)}`) ?? 0) + 1);
    expect(Object.fromEntries(perKind)).toEqual({
      'http:BAD_REQUEST': 1, // bad JSON, invalid UTF-8, bad path encoding, oversized batch
      'http:PAYLOAD_TOO_LARGE': 1,
      'http:NOT_FOUND': 1,
      'http:UNSUPPORTED_MEDIA_TYPE': 1,
      'graphql:HTTP_400': 1,
      'graphql:HTTP_413': 1,
      'graphql:INVALID_URL': 1,
    });
    // The application's own refusals are not protocol errors: invalid input, a forbidden room.
    const before = warned.length;
    expect((await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'r', body: '' }, { token })).error?.code).toBe('BAD_REQUEST');
    const outsider = await t.token('mallory', { conversations: ['elsewhere'] });
    expect((await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'r', body: 'x' }, { token: outsider })).error?.code).toBe('FORBIDDEN');
    expect(lines.filter((l) => l.msg === 'malformed request refused').length).toBe(before);

    // A minute later the next one of a kind is logged again, with how many were held back.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
    try {
      await kinds[0]![1]();
    } finally {
      vi.useRealTimers();
    }
    const again = lines.filter((l) => l.msg === 'malformed request refused').slice(before);
    expect(again.map((l) => [l.transport, l.code, l.heldBack])).toEqual([['http', 'BAD_REQUEST', 3 * 4 - 1]]);
  });
});
