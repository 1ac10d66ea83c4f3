import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createAdminClient } from '../clients/admin/index.ts';
import { createChatClient } from '../clients/chat/index.ts';
import { mintToken } from '../src/auth/tokens.ts';
import { rawClient } from './support/helpers.ts';
import { startTestApp, TEST_SECRET } from './support/start-test-app.ts';
import { aboutUser, bodies, joinLogged, waitUntil } from './support/wait.ts';

/** Controls from docs/security.md that no other test file proves. */
describe('security controls', () => {
  it('token refresh: at expiry the client reconnects with a fresh token and keeps its subscriptions, losing nothing', async () => {
    await using t = await startTestApp({ presenceGraceMs: 2000 });
    let minted = 0;
    // A token function is asked again on every (re)connection: each answer lives 2 s.
    const alice = createChatClient({
      url: t.wsUrl,
      token: async () => {
        minted += 1;
        return mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'], expiresIn: 2 });
      },
      retryDelayMs: () => 20,
    });
    try {
      const watcher = await t.client('watcher');
      const w = joinLogged(watcher, 'room');
      await w.conversation.started;
      const a = joinLogged(alice, 'room');
      await a.conversation.started;
      const bob = await t.client('bob');
      const sent: string[] = [];
      // Messages before, across and after the expiry (about 2 s in).
      while (minted < 2 || sent.length < 5) {
        const body = `m${sent.length}`;
        await bob.send('room', body);
        sent.push(body);
        await new Promise((r) => setTimeout(r, 100));
      }
      for (let i = 0; i < 5; i += 1) {
        const body = `m${sent.length}`;
        await bob.send('room', body);
        sent.push(body);
      }
      await waitUntil(() => bodies(a.log).length === sent.length, { what: 'alice to get every message', timeoutMs: 5000 });
      expect(bodies(a.log)).toEqual(sent);
      // It was a make-before-break move: no leave, no disconnect, as far as the room can tell.
      expect(aboutUser(w.log, 'alice')).toEqual(['user_joined']);
      expect(minted).toBeGreaterThanOrEqual(2);
    } finally {
      await alice.close();
    }
  });

  it('secrets are never logged: not the signing secret, not a token, not the metrics token', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const metricsToken = 'metrics-token-that-is-long-enough';
    await using t = await startTestApp({ logger: pino({ level: 'trace' }, sink), metricsToken });
    const token = await t.token('alice');
    const adminToken = await t.token('ops', { role: 'admin' });
    const alice = await t.client('alice');
    await alice.join('room').started;
    await alice.send('room', 'hello');
    // Failures log too: a bad token, a wrong metrics token, a forbidden admin call.
    const bad = createChatClient({ url: t.wsUrl, token: `${token}x`, retryDelayMs: () => 60_000 });
    bad.join('room');
    await waitUntil(() => lines.some((l) => l.includes('UNAUTHORIZED')), { what: 'the refusal to be logged' });
    await bad.close();
    await fetch(`${t.baseUrl}/metrics`, { headers: { authorization: `Bearer ${metricsToken}x` } });
    await fetch(`${t.baseUrl}/graphql`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"query":"{ stats { connections } }"}' });
    await createAdminClient({ url: t.baseUrl, token: adminToken }).stats();
    const text = lines.join('');
    expect(lines.length).toBeGreaterThan(5);
    for (const secret of [TEST_SECRET, token, adminToken, metricsToken, token.split('.')[2]!]) {
      expect(text.includes(secret), `a secret appeared in the logs`).toBe(false);
    }
  });

  it('WS_ALLOWED_ORIGINS: a browser page from another origin cannot open the socket; listed origins and non-browser clients can', async () => {
    await using t = await startTestApp({ wsAllowedOrigins: ['https://chat.example'] });
    const upgrade = (headers: Record<string, string>) =>
      new Promise<number>((resolve) => {
        const ws = new WebSocket(t.wsUrl, { headers });
        ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('error', () => undefined);
      });
    expect(await upgrade({ origin: 'https://evil.example' })).toBe(403);
    expect(await upgrade({ origin: 'https://chat.example' })).toBe(101);
    expect(await upgrade({})).toBe(101);
  });

  it('an expired token: the reconnect notice at expiry, then close 4001 if the client does not come back with a fresh one', async () => {
    await using t = await startTestApp({ tokenRefreshGraceMs: 300 });
    const raw = rawClient(`${t.wsUrl}?connectionParams=1`);
    await raw.opened;
    raw.send({ method: 'connectionParams', data: { token: await mintToken(TEST_SECRET, { userId: 'eve', conversations: ['*'], expiresIn: 2 }) } });
    raw.send({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: 'room' } } } });
    await raw.waitFor((f) => (f as { result?: { type?: string } }).result?.type === 'started');
    const notice = await raw.waitFor((f) => (f as { method?: string }).method === 'reconnect', 3000);
    expect(notice).toEqual({ id: null, method: 'reconnect' });
    const noticeAt = Date.now();
    expect(await raw.closed).toEqual({ code: 4001, reason: 'token expired' });
    expect(Date.now() - noticeAt).toBeGreaterThanOrEqual(250);
  });
});
