import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { decodeJwt, SignJWT } from 'jose';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { createChatClient, type ChatClient } from '../../clients/chat/index.ts';
import { GENERATED_SECRET_HINT, mintToken, parseLifetime } from '../../src/auth/tokens.ts';
import { createRealtimeServer } from '../../src/server.ts';
import { gql } from '../support/graphql.ts';
import { trpcHttp } from '../support/helpers.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { startTestApp, TEST_SECRET, type TestApp } from '../support/start-test-app.ts';
import { runScript } from '../support/script-process.ts';
import { waitUntil } from '../support/wait.ts';

/**
 * Issue #11, items 5 and 7 (tokens and faults an operator can see), tried as a new user would:
 * `npm start`, the token CLI, the chat and admin CLIs as real processes; the server in-process on
 * port 0 with real WebSocket and HTTP clients where only its answers matter.
 */

const JWT = /eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/;
const DAY = 86_400;
const SECRET = 'k'.repeat(32) + '-issue-11-SECRETMARKER';

/** `npm run token -- …args` to completion. */
function tokenCli(args: string[], env: Record<string, string> = { AUTH_SECRET: SECRET }) {
  const proc = runScript('src/cli/token.ts', args, env);
  return proc.exited().finally(proc.kill);
}

/** The port of the pino `listening` line in `stdout`, once there is one. */
function listeningPort(stdout: string): number | undefined {
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; port?: number };
    if (entry.msg === 'listening') return entry.port;
  }
  return undefined;
}

/** A pino logger writing JSON lines to an array, and the parsed lines. */
function captureLog() {
  const raw: string[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void raw.push(line) });
  const entries = () => raw.map((line) => JSON.parse(line) as Record<string, unknown> & { msg: string });
  return { logger, raw, entries, lines: (msg: string) => entries().filter((e) => e.msg === msg) };
}

/** A chat client for `token`; resolves with the message of the server's terminal refusal. */
function refusedOverWs(t: TestApp, token: string): Promise<string> {
  return new Promise((resolve) => {
    const client: ChatClient = createChatClient({ url: t.wsUrl, token, retryDelayMs: () => 20, onTerminalError: (error) => resolve(error.message) });
    client.join('lobby').started.catch(() => undefined);
  });
}

/** What an HTTP call with `token` gets: 200, or the status and the error's message. */
async function overHttp(t: TestApp, token: string): Promise<{ status: number; message: string | undefined }> {
  const res = await trpcHttp(t.baseUrl, 'conversation.presence', { conversationId: 'lobby' }, { kind: 'query', token });
  return { status: res.status, message: res.error?.message };
}

const signed = (claims: { exp?: number; iat?: number }, secret = TEST_SECRET) => {
  let jwt = new SignJWT({ conversations: ['*'] }).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setSubject('mallory');
  jwt = claims.iat === undefined ? jwt.setIssuedAt() : jwt.setIssuedAt(claims.iat);
  if (claims.exp !== undefined) jwt = jwt.setExpirationTime(claims.exp);
  return jwt.sign(new TextEncoder().encode(secret));
};
const nowSec = () => Math.floor(Date.now() / 1000);

const hasRedisServer = spawnSync('redis-server', ['--version']).status === 0;

// Real processes take most of this file's time: they run side by side (2–4 s each on an idle
// machine; generous limits, since they compete for the same cores).
describe.concurrent('issue 11: what a new user sees from `npm start` and the CLIs (real processes)', { timeout: 45_000 }, () => {
  it('without AUTH_SECRET: tokens for alice, bob and admin that expire in 24 h, and work', async ({ expect }) => {
    using proc = runScript('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_DRAIN_MS: '0' });
    await proc.until(() => proc.output.stderr.includes('Talk from two terminals'));
    const tokens = Object.fromEntries(['alice', 'bob', 'admin'].map((who) => [who, new RegExp(`^  ${who}: +(\\S+)$`, 'm').exec(proc.output.stderr)?.[1]]));
    for (const [who, token] of Object.entries(tokens)) {
      expect(token, who).toMatch(JWT);
      const claims = decodeJwt(token!);
      expect(claims.sub).toBe(who);
      expect(claims.exp! - claims.iat!).toBe(DAY);
      expect(Math.abs(claims.exp! - (nowSec() + DAY))).toBeLessThan(60);
    }
    expect(proc.output.stderr).toContain('AUTH_SECRET is random for this start');
    // The banner says where everything is (issue 15): the dashboard, GraphiQL, the admin CLI.
    // (The log line goes to stdout through pino's asynchronous stream: it may trail the banner.)
    await proc.until(() => listeningPort(proc.output.stdout) !== undefined);
    const port = listeningPort(proc.output.stdout);
    const base = (JSON.parse(proc.output.stdout.split('\n').find((l) => l.includes('"msg":"listening"'))!) as { url: string }).url;
    expect(proc.output.stderr).toContain(`realtime-broadcast is up (development mode): ${base}\n`);
    expect(proc.output.stderr).toMatch(new RegExp(`^  Dashboard: +${base}/dashboard \\(sign in with an admin token\\)$`, 'm'));
    expect(proc.output.stderr).toMatch(new RegExp(`^  GraphQL: +${base}/graphql \\(GraphiQL: open it in a browser\\)$`, 'm'));
    expect(proc.output.stderr).toContain(`  ADMIN_TOKEN=${tokens.admin} npm run admin -- rooms --url ${base}\n`);
    // The admin token opens the admin plane of this very start.
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { authorization: `Bearer ${tokens.admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ stats { activeRooms } }' }),
    });
    expect(res.status).toBe(200);
    proc.child.kill('SIGTERM');
    expect((await proc.exited()).code).toBe(0);
  });

  it.skipIf(!hasRedisServer)(
    'with AUTH_SECRET set and Redis down at start: no token, one line on how to mint one; one line that Redis is unreachable (password masked), one when it is reachable',
    async ({ expect }) => {
      await using redis = await startRedisServer();
      await redis.stop();
      // A password in the URL: ioredis sends AUTH, which a Redis without one answers with a
      // warning it ignores, so the node still connects once Redis is back.
      const url = `redis://:p4ssMARKER@127.0.0.1:${redis.port}`;
      using proc = runScript('src/main.ts', [], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', SHUTDOWN_DRAIN_MS: '0', AUTH_SECRET: SECRET, REDIS_URL: url });
      const unreachable = (): Array<{ msg: string; code?: string; redis?: string }> =>
        proc.output.stdout
          .split('\n')
          .filter((l) => l.includes('redis unreachable'))
          .map((l) => JSON.parse(l) as { msg: string });
      await proc.until(() => unreachable().length > 0 && listeningPort(proc.output.stdout) !== undefined && proc.output.stderr.includes('npm run token'));
      expect(proc.output.stderr).toContain('\nAUTH_SECRET set: no tokens printed; mint one with AUTH_SECRET=<same> npm run token -- --user alice (add --role admin for the admin plane)\n');
      expect(proc.output.stderr).not.toMatch(/eyJ[\w-]+\.[\w-]+\.[\w-]+/);
      const [line] = unreachable();
      expect(line).toMatchObject({ code: 'ECONNREFUSED', redis: `redis://:***@127.0.0.1:${redis.port}` });
      expect(line!.msg).toBe(`redis unreachable at redis://:***@127.0.0.1:${redis.port} (ECONNREFUSED); /readyz answers 503 and cluster calls fail until it is reachable; retrying`);
      const readyz = `http://127.0.0.1:${listeningPort(proc.output.stdout)}/readyz`;
      expect((await fetch(readyz)).status).toBe(503);

      await redis.start();
      await proc.until(() => proc.output.stdout.includes('"msg":"redis reachable at'));
      const ready = await fetch(readyz);
      expect(ready.status).toBe(200);
      // Once each, and a start that never connected is no outage of a Redis that was up.
      expect(unreachable()).toHaveLength(1);
      expect(proc.output.stdout.match(/redis reachable at/g)).toHaveLength(1);
      expect(proc.output.stdout).not.toContain('reachable again');
      expect(proc.output.stdout).not.toContain('serving local members only');
      proc.child.kill('SIGTERM');
      const { code, stdout, stderr } = await proc.exited();
      expect(code).toBe(0);
      for (const text of [stdout, stderr]) {
        expect(text).not.toMatch(JWT);
        expect(text).not.toContain('SECRETMARKER');
        expect(text).not.toContain('p4ssMARKER');
      }
    },
  );

  it('a busy port ends `npm start` with one line on stderr and exit 1', async ({ expect }) => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as { port: number };
    try {
      using proc = runScript('src/main.ts', [], { PORT: String(port), HOST: '127.0.0.1', AUTH_SECRET: SECRET });
      const { code, stdout, stderr } = await proc.exited();
      expect(code).toBe(1);
      expect(stderr).toBe(`port ${port} is already in use (EADDRINUSE): stop the other process or set PORT\n`);
      // Start-up's own info lines at most: no error logged, no stack anywhere.
      for (const line of stdout.split('\n').filter(Boolean)) expect((JSON.parse(line) as { level: number }).level, line).toBeLessThanOrEqual(30);
      expect(stdout).not.toContain('EADDRINUSE');
    } finally {
      busy.close();
    }
  });

  it('sets exp 24 h by default, or what --expires says; never with a warning that production refuses it', async ({ expect }) => {
    const forms: Array<[string[], number | null]> = [
      [[], DAY],
      [['--expires', '7d'], 7 * DAY],
      [['--expires', 'never'], null],
    ];
    const results = await Promise.all(forms.map(([args]) => tokenCli(['--user', 'alice', '--role', 'admin', ...args])));
    results.forEach((result, i) => {
      const [args, lifetime] = forms[i]!;
      expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(0);
      const claims = decodeJwt(result.stdout.trim());
      expect(claims).toMatchObject({ sub: 'alice', role: 'admin', conversations: ['*'] });
      if (lifetime === null) {
        expect(claims.exp).toBeUndefined();
        expect(result.stderr).toBe('warning: --expires never: this token does not expire; a production server refuses it unless ALLOW_LONG_LIVED_TOKENS=true\n');
      } else {
        expect(claims.exp! - claims.iat!).toBe(lifetime);
        expect(result.stderr).toBe('');
      }
    });
  });

  it('every error is one line on stderr and exit 1, no stack: bad --expires, no --user, bad role, AUTH_SECRET missing or one the server refuses', async ({ expect }) => {
    const cases: Array<[string[], Record<string, string>, string]> = [
      [['--user', 'alice', '--expires', 'soon'], { AUTH_SECRET: SECRET }, 'error: --expires must be a duration such as 90s, 30m, 12h, 7d, a whole number of seconds, or never (got "soon")\n'],
      [['--role', 'admin'], { AUTH_SECRET: SECRET }, 'error: --user is required: usage:'],
      [['--user', 'alice', '--role', 'root'], { AUTH_SECRET: SECRET }, 'error: --role must be user, admin or service (got "root")\n'],
      [['--user', 'alice'], {}, 'error: AUTH_SECRET is not set: set it to the secret the server was started with, so the server accepts this token\n'],
      [
        ['--user', 'alice'],
        { AUTH_SECRET: 'short-SECRETMARKER' },
        'error: AUTH_SECRET must be at least 32 characters (value not shown): the server refuses such a secret, so it would never accept this token\n',
      ],
    ];
    const results = await Promise.all(cases.map(([args, env]) => tokenCli(args, env)));
    results.forEach((result, i) => {
      const [args, , expected] = cases[i]!;
      expect(result.code, args.join(' ')).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.startsWith(expected), result.stderr).toBe(true);
      expect(result.stderr.split('\n')).toHaveLength(2); // one line and its newline
      expect(result.stderr).not.toContain('SECRETMARKER');
    });
  });

  it('an old token is refused saying the secret changed and what to do: chat client, chat CLI, admin CLI, GraphQL 401, HTTP', async ({ expect }) => {
    // No AUTH_SECRET: the server makes its own up; tokens signed with TEST_SECRET are from "an earlier start".
    await using t = await startTestApp({ authSecret: undefined });
    expect(t.app.config.generatedSecret).toBe(true);
    const old = await t.token('alice');
    const oldAdmin = await t.token('ops', { role: 'admin' });

    using chatCli = runScript('clients/cli/chat.ts', ['--url', t.wsUrl, '--room', 'lobby', '--token', old], {});
    using adminCli = runScript('clients/cli/admin.ts', ['stats', '--url', t.baseUrl, '--token', oldAdmin], {});

    expect(await refusedOverWs(t, old)).toBe(GENERATED_SECRET_HINT);
    expect(await overHttp(t, old)).toEqual({ status: 401, message: GENERATED_SECRET_HINT });
    const graphql = await gql(t, '{ stats { activeRooms } }', { token: oldAdmin });
    expect(graphql.status).toBe(401);
    expect(graphql.errors).toEqual([{ message: GENERATED_SECRET_HINT, extensions: { code: 'UNAUTHENTICATED' } }]);
    // A token that is not even a JWT gets no hint; no token at all, the usual line.
    expect(await overHttp(t, 'not-a-jwt')).toEqual({ status: 401, message: 'invalid token' });
    expect((await gql(t, '{ stats { activeRooms } }', { token: null })).errors[0]?.message).toBe('an admin token is required (Authorization: Bearer <token>)');

    const chat = await chatCli.exited();
    expect(chat.code, chat.stderr).toBe(1);
    // The connection state lines (issue 14) come first; then the refusal, once, and nothing else.
    expect(chat.stdout.replace(/^\* (connecting to ws:\/\/\S+…|connected · WebSocket)\n/gm, '')).toBe(`* the server refused the token: ${GENERATED_SECRET_HINT}\n`);
    const admin = await adminCli.exited();
    expect(admin).toMatchObject({ code: 1, stdout: '', stderr: `error: admin token rejected: ${GENERATED_SECRET_HINT}\n` });
  });

});

describe('issue 11: token lifetime', () => {
  it('--expires takes 90s, 30m, 12h, 7d, a number of seconds, or never; nothing else', () => {
    expect(['90s', '30m', '12h', '7d', '3600', 'never'].map(parseLifetime)).toEqual([90, 1800, 12 * 3600, 7 * DAY, 3600, null]);
    for (const bad of ['soon', '', '0', '-5m', '1.5h', '12w', '1e3', `${'9'.repeat(20)}d`]) expect(() => parseLifetime(bad), bad).toThrow(/^--expires must be a duration/);
  });

  it('production refuses tokens without exp, or with exp beyond TOKEN_MAX_LIFETIME_SEC (exp 1e20 too), over WebSocket and HTTP, naming the rule', async () => {
    await using t = await startTestApp({ env: { NODE_ENV: 'production', LOG_LEVEL: 'silent' } });
    const rule = 'tokens must expire within TOKEN_MAX_LIFETIME_SEC (86400 s) in production';
    const noExp = await signed({});
    const tooLong = await signed({ exp: nowSec() + DAY + 3600 });
    const huge = await signed({ exp: 1e20 });
    const refusals = [
      [noExp, `token has no exp: ${rule}`],
      [tooLong, `token lives too long: its exp is more than 86400 s ahead; ${rule}`],
      [huge, `token lives too long: its exp is more than 86400 s ahead; ${rule}`],
    ] as const;
    for (const [token, message] of refusals) {
      expect(await overHttp(t, token)).toEqual({ status: 401, message });
      expect(await refusedOverWs(t, token)).toBe(message);
    }
    // The admin plane checks with the same verifier.
    const adminNoExp = await mintToken(TEST_SECRET, { userId: 'ops', role: 'admin', conversations: ['*'] });
    expect((await gql(t, '{ stats { activeRooms } }', { token: adminNoExp })).errors[0]?.message).toBe(`token has no exp: ${rule}`);
    // Within the limit: accepted; and what the token CLI mints by default (24 h) is.
    expect((await overHttp(t, await signed({ exp: nowSec() + DAY - 60 }))).status).toBe(200);
    const alice = await t.client('alice', { expiresIn: '23h' });
    await alice.join('lobby').started;
  });

  it('ALLOW_LONG_LIVED_TOKENS=true (and development) accept tokens without exp; a custom authenticate hook is not subject to the rule', async () => {
    const noExp = await signed({});
    {
      await using t = await startTestApp({ env: { NODE_ENV: 'production', ALLOW_LONG_LIVED_TOKENS: 'true', LOG_LEVEL: 'silent' } });
      expect((await overHttp(t, noExp)).status).toBe(200);
    }
    {
      await using t = await startTestApp();
      expect((await overHttp(t, noExp)).status).toBe(200);
      expect((await overHttp(t, await signed({ exp: 1e20 }))).status).toBe(200);
    }
    {
      await using t = await startTestApp({
        env: { NODE_ENV: 'production', LOG_LEVEL: 'silent' },
        authenticate: async ({ token }) => ({ userId: token ?? 'anon', role: 'user', conversations: '*' }),
      });
      expect((await overHttp(t, 'opaque-session-id')).status).toBe(200);
    }
  });

  it('a token issued more than 60 s in the future is refused, in development too', async () => {
    await using t = await startTestApp();
    const future = await signed({ iat: nowSec() + 120, exp: nowSec() + 3600 });
    const message = "token issued in the future: iat is more than 60 s ahead of this server's clock";
    expect(await overHttp(t, future)).toEqual({ status: 401, message });
    expect(await refusedOverWs(t, future)).toBe(message);
    // Clock skew within the minute is tolerated.
    expect((await overHttp(t, await signed({ iat: nowSec() + 30, exp: nowSec() + 3600 }))).status).toBe(200);
  });

  it('a server with AUTH_SECRET set gives no such hint (a wrong secret is just an invalid token)', async () => {
    await using t = await startTestApp();
    const other = await mintToken('another-secret-that-is-at-least-32-characters', { userId: 'alice', conversations: ['*'] });
    expect(await overHttp(t, other)).toEqual({ status: 401, message: 'invalid token' });
    expect((await gql(t, '{ stats { activeRooms } }', { token: other })).errors[0]?.message).toBe('invalid token');
  });
});

describe('issue 11: what the log says', () => {
  it.skipIf(process.getuid?.() === 0)('a privileged port: listen() rejects with one line naming EACCES and what to do', async () => {
    const app = createRealtimeServer({ authSecret: TEST_SECRET, env: { LOG_LEVEL: 'silent' }, shutdownDrainMs: 0 });
    try {
      await expect(app.listen(80, '127.0.0.1')).rejects.toThrow(/^port 80 needs privileges this process lacks \(EACCES\): use a port above 1023 or set PORT$/);
    } finally {
      await app.close();
    }
  });

  it('refused tokens (WebSocket and HTTP) and refused subscriptions are logged at info, once a minute per kind with the count held back, never the token', async () => {
    const log = captureLog();
    await using t = await startTestApp({ logger: log.logger });
    const bad = await mintToken('another-secret-that-is-at-least-32-characters', { userId: 'mallory', conversations: ['*'] });
    const carolToken = await t.token('carol', { conversations: ['a'] });
    const carol = createChatClient({ url: t.wsUrl, token: carolToken, retryDelayMs: () => 20 });
    const forbidden = (room: string) =>
      new Promise<void>((resolve) => {
        carol.join(room, { onError: () => resolve() });
      });
    try {
      for (let i = 0; i < 3; i += 1) {
        expect(await refusedOverWs(t, bad)).toBe('invalid token');
        expect((await overHttp(t, bad)).status).toBe(401);
        await forbidden(`b${i}`);
      }
      expect(log.lines('token refused').map(({ transport, code, reason, heldBack }) => ({ transport, code, reason, heldBack }))).toEqual([
        { transport: 'ws', code: 'UNAUTHORIZED', reason: 'invalid token', heldBack: 0 },
        { transport: 'http', code: 'UNAUTHORIZED', reason: 'invalid token', heldBack: 0 },
      ]);
      expect(log.lines('subscription refused')).toEqual([expect.objectContaining({ level: 30, code: 'FORBIDDEN', userId: 'carol', path: 'conversation.events', reason: 'not allowed in conversation b0', heldBack: 0 })]);

      // A minute later, the next of each kind is logged with how many were held back meanwhile.
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 61_000 });
      expect((await overHttp(t, bad)).status).toBe(401);
      await forbidden('b3');
      const http = log.lines('token refused').filter((e) => e.transport === 'http');
      expect(http.map((e) => e.heldBack)).toEqual([0, 2]);
      expect(log.lines('subscription refused').map((e) => e.heldBack)).toEqual([0, 2]);
    } finally {
      vi.useRealTimers();
      await carol.close();
    }
    const text = log.raw.join('');
    for (const token of [bad, carolToken]) {
      expect(text).not.toContain(token);
      expect(text).not.toContain(token.split('.')[2]);
    }
  });

  it('connection counts are logged at info once a minute, only when they changed; the timer ends with close()', async () => {
    const log = captureLog();
    const app = createRealtimeServer({ authSecret: TEST_SECRET, logger: log.logger, presenceGraceMs: 0, shutdownDrainMs: 0, env: {} });
    // Only the intervals created from here on are driven by hand: listen() starts the counts timer.
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const clients: ChatClient[] = [];
    try {
      const { port } = await app.listen(0, '127.0.0.1');
      const client = async (userId: string) => {
        const c = createChatClient({ url: `ws://127.0.0.1:${port}/trpc`, token: await mintToken(TEST_SECRET, { userId, conversations: ['*'] }), retryDelayMs: () => 20 });
        clients.push(c);
        return c;
      };
      const counts = () => log.lines('connection counts').map(({ connections, users, rooms }) => ({ connections, users, rooms }));
      vi.advanceTimersByTime(60_000);
      expect(counts()).toEqual([]); // nothing changed since the start

      const alice = await client('alice');
      const bob = await client('bob');
      await Promise.all([alice.join('lobby').started, alice.join('news').started, bob.join('lobby').started]);
      vi.advanceTimersByTime(59_999);
      expect(counts()).toEqual([]);
      vi.advanceTimersByTime(1);
      expect(counts()).toEqual([{ connections: 2, users: 2, rooms: 2 }]);
      vi.advanceTimersByTime(60_000);
      expect(counts()).toHaveLength(1); // unchanged: no line

      await bob.close();
      await waitUntil(() => app.service.registry.counts().connections === 1, { what: "bob's connection to close" });
      vi.advanceTimersByTime(60_000);
      expect(counts()).toEqual([
        { connections: 2, users: 2, rooms: 2 },
        { connections: 1, users: 1, rooms: 2 },
      ]);
      expect(log.lines('connection counts').every((e) => e.level === 30)).toBe(true);

      await Promise.all(clients.map((c) => c.close()));
      await app.close();
      vi.advanceTimersByTime(120_000);
      expect(counts()).toHaveLength(2); // the counts changed, but the timer is gone
    } finally {
      vi.useRealTimers();
      await Promise.all(clients.map((c) => c.close()));
      await app.close();
    }
  });
});
