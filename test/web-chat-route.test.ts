import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../src/logger.ts';
import { isLocalRequest, WEB_CHAT_CSP, webChatRoutes } from '../src/server/web-chat-route.ts';
import { startTestApp, TEST_SECRET } from './support/start-test-app.ts';

/** The web chat's routes over real HTTP (the page itself in Chromium: web-chat.browser.test.ts). */

describe('web chat routes', () => {
  it('serves the page, its stylesheet and the bundled script with a strict CSP, GET/HEAD only', { timeout: 30_000 }, async () => {
    await using t = await startTestApp();
    const page = await fetch(`${t.baseUrl}/chat`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(WEB_CHAT_CSP);
    expect(WEB_CHAT_CSP).toMatch(/script-src 'self';/);
    expect(WEB_CHAT_CSP).toMatch(/connect-src 'self';/);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=|https?:\/\//i); // nothing inline, nothing external
    expect(html).toContain('src="/chat/chat.js"');

    const css = await fetch(`${t.baseUrl}/chat/chat.css`);
    expect([css.status, css.headers.get('content-type'), css.headers.get('content-security-policy')]).toEqual([200, 'text/css; charset=utf-8', WEB_CHAT_CSP]);

    // The bundle is built on the first request: minified, for browsers (no Node built-ins, no `ws`).
    const js = await fetch(`${t.baseUrl}/chat/chat.js`);
    expect([js.status, js.headers.get('content-type'), js.headers.get('content-security-policy')]).toEqual([200, 'text/javascript; charset=utf-8', WEB_CHAT_CSP]);
    const script = await js.text();
    expect(script.length).toBeGreaterThan(10_000);
    expect(script).toContain('Delivery: ');
    expect(script).not.toContain('ws does not work in the browser'); // the `ws` package's browser stub: the browser entry was not used
    expect(script).not.toMatch(/require\(["'](?:node:)?(?:fs|net|http|crypto)["']\)/);
    expect(script.split('\n').length).toBeLessThan(50); // minified

    // Cached: the same bytes and ETag again, and 304 on revalidation.
    const etag = js.headers.get('etag') ?? '';
    expect(etag).not.toBe('');
    const again = await fetch(`${t.baseUrl}/chat/chat.js`, { headers: { 'if-none-match': etag } });
    expect(again.status).toBe(304);

    for (const path of ['/chat', '/chat/chat.js', '/chat/chat.css']) {
      const head = await fetch(`${t.baseUrl}${path}`, { method: 'HEAD' });
      expect([path, head.status, await head.text()]).toEqual([path, 200, '']);
      const post = await fetch(`${t.baseUrl}${path}`, { method: 'POST' });
      expect([path, post.status, post.headers.get('allow')]).toEqual([path, 405, 'GET, HEAD']);
    }
    const slash = await fetch(`${t.baseUrl}/chat/`, { redirect: 'manual' });
    expect([slash.status, slash.headers.get('location')]).toEqual([308, '/chat']);
    expect((await fetch(`${t.baseUrl}/chat/nope.js`)).status).toBe(404);
  });

  it('hands out the dev tokens only outside production on a server that made up its own secret', async () => {
    {
      // Generated secret (no AUTH_SECRET), development: the start banner's tokens, valid here.
      await using t = await startTestApp({ authSecret: undefined });
      expect(t.app.config.generatedSecret).toBe(true);
      const res = await fetch(`${t.baseUrl}/chat/dev-tokens`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('no-store');
      const { tokens } = (await res.json()) as { tokens: Array<{ userId: string; name: string; token: string }> };
      expect(tokens.map((x) => [x.userId, x.name])).toEqual([['alice', 'Alice'], ['bob', 'Bob'], ['admin', 'Admin']]);
      for (const { userId, token } of tokens) {
        const claims = decodeJwt(token);
        expect(claims.sub).toBe(userId);
        expect(claims.exp! - claims.iat!).toBe(24 * 60 * 60);
      }
      // The same ones on every request (and in the banner: both read src/auth/dev-tokens.ts).
      const second = (await (await fetch(`${t.baseUrl}/chat/dev-tokens`)).json()) as { tokens: unknown };
      expect(second.tokens).toEqual(tokens);
      // They verify here: each one reads a conversation over HTTP.
      const input = encodeURIComponent(JSON.stringify({ json: { conversationId: 'general' } }));
      for (const { token } of tokens) {
        const read = await fetch(`${t.baseUrl}/trpc/conversation.history?input=${input}`, { headers: { authorization: `Bearer ${token}` } });
        expect(read.status).toBe(200);
      }
      expect((await fetch(`${t.baseUrl}/chat/dev-tokens`, { method: 'POST' })).status).toBe(405);
      // Only to this machine: a page whose DNS name was rebound to 127.0.0.1 sends its own Host.
      const rebound = await rawGet(t.baseUrl, '/chat/dev-tokens', 'evil.example:3000');
      expect([rebound.status, rebound.body]).toEqual([403, expect.stringContaining('only to this machine')]);
      expect((await rawGet(t.baseUrl, '/chat/dev-tokens', 'localhost:3000')).status).toBe(200);
    }
    {
      // AUTH_SECRET set: tokens signed with a real secret are never handed out.
      await using t = await startTestApp({ authSecret: TEST_SECRET });
      expect((await fetch(`${t.baseUrl}/chat/dev-tokens`)).status).toBe(404);
      expect((await fetch(`${t.baseUrl}/chat`, { method: 'HEAD' })).status).toBe(200);
    }
  });

  it('counts as local only a loopback peer that names this machine', () => {
    const req = (remoteAddress: string, host: string) => ({ socket: { remoteAddress }, headers: { host } }) as unknown as Parameters<typeof isLocalRequest>[0];
    for (const [peer, host] of [['127.0.0.1', 'localhost:3000'], ['::1', '[::1]:3000'], ['::ffff:127.0.0.1', '127.0.0.1:3000'], ['127.0.0.1', 'chat.localhost'], ['127.0.0.1', 'LOCALHOST']]) {
      expect([peer, host, isLocalRequest(req(peer!, host!))]).toEqual([peer, host, true]);
    }
    for (const [peer, host] of [['192.168.1.20', 'localhost:3000'], ['10.0.0.5', '10.0.0.1:3000'], ['127.0.0.1', 'evil.example'], ['127.0.0.1', 'localhost.evil.example'], ['127.0.0.1', '']]) {
      expect([peer, host, isLocalRequest(req(peer!, host!))]).toEqual([peer, host, false]);
    }
  });

  it('is off in production unless WEB_CHAT=true (and then without dev tokens)', async () => {
    {
      await using t = await startTestApp({ env: { NODE_ENV: 'production', LOG_LEVEL: 'silent' } });
      expect(t.app.config.webChat).toBe(false);
      for (const path of ['/chat', '/chat/chat.js', '/chat/chat.css', '/chat/dev-tokens']) {
        expect([path, (await fetch(`${t.baseUrl}${path}`)).status]).toEqual([path, 404]);
      }
    }
    {
      await using t = await startTestApp({ env: { NODE_ENV: 'production', LOG_LEVEL: 'silent', WEB_CHAT: 'true' } });
      expect((await fetch(`${t.baseUrl}/chat`)).status).toBe(200);
      expect((await fetch(`${t.baseUrl}/chat/chat.css`, { method: 'HEAD' })).status).toBe(200);
      expect((await fetch(`${t.baseUrl}/chat/dev-tokens`)).status).toBe(404);
    }
    {
      // Outside production it can be turned off too; a bad value stops the start naming it.
      await using t = await startTestApp({ env: { LOG_LEVEL: 'silent', WEB_CHAT: 'false' } });
      expect((await fetch(`${t.baseUrl}/chat`)).status).toBe(404);
      await expect(startTestApp({ env: { WEB_CHAT: 'yes' } })).rejects.toThrow('Invalid configuration: WEB_CHAT="yes" must be true or false');
    }
  });

  it('answers 500 with a log line when the bundle does not build, and builds on a later request', async () => {
    const lines: Array<{ msg: string; path?: string }> = [];
    const log = { error: (obj: { path?: string }, msg: string) => lines.push({ msg, ...obj }), info: () => undefined } as unknown as Logger;
    let entryPoint = new URL('../clients/web/missing.ts', import.meta.url);
    const routes = new Map(webChatRoutes({ production: false, generatedSecret: false, authSecret: TEST_SECRET }, log, { entryPoint: () => entryPoint }));
    const server = createServer((req, res) => {
      const route = routes.get(new URL(req.url ?? '/', 'http://x').pathname);
      if (route) route(req, res);
      else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const failed = await fetch(`${base}/chat/chat.js`);
      expect([failed.status, await failed.text()]).toEqual([500, 'the web chat could not be built; see the server log\n']);
      expect(lines).toEqual([expect.objectContaining({ msg: 'web chat: could not prepare the page', path: '/chat/chat.js' })]);
      expect((await fetch(`${base}/chat`)).status).toBe(200); // the rest of the page is still served
      entryPoint = new URL('../clients/web/main.ts', import.meta.url);
      expect((await fetch(`${base}/chat/chat.js`)).status).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }, 30_000);
});

/** A GET with a Host header of our choosing (fetch does not let a caller set Host). */
function rawGet(baseUrl: string, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${baseUrl}${path}`, { headers: { host } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
