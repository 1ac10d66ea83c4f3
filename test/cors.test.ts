import { chromium, type Browser } from 'playwright-core';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { CHROMIUM, haveChromium } from './support/chromium.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';

/**
 * CORS on /trpc (TRPC_CORS_ORIGINS): a web application on another origin than the realtime
 * server can use HTTP calls and the SSE fallback when its origin is listed, and no other origin
 * can read an answer. Checked on the wire, and in Chromium, whose CORS is the one that matters:
 * a page on http://localhost:PORT calls http://127.0.0.1:PORT — two origins, one server.
 */

const APP = 'https://app.example.com';

const eventsUrl = (baseUrl: string, conversationId: string) =>
  `${baseUrl}/trpc/conversation.events?input=${encodeURIComponent(JSON.stringify(superjson.serialize({ conversationId })))}`;

describe('TRPC_CORS_ORIGINS', () => {
  it('is validated: exact origins only, the variable named', () => {
    expect(loadConfig({ TRPC_CORS_ORIGINS: 'https://a.example, http://localhost:5173' }).trpcCorsOrigins).toEqual(['https://a.example', 'http://localhost:5173']);
    expect(loadConfig({}).trpcCorsOrigins).toEqual([]);
    for (const bad of ['*', 'https://a.example/', 'https://a.example/app', 'a.example', 'ftp://a.example']) {
      expect(() => loadConfig({ TRPC_CORS_ORIGINS: bad }), bad).toThrow(/TRPC_CORS_ORIGINS/);
    }
  });

  it('a listed origin: preflights answered with the stock links\' headers, calls and SSE streams carry Allow-Origin; others get nothing', async () => {
    await using t = await startTestApp({ trpcCorsOrigins: [APP] });
    const token = await t.token('alice');

    const preflight = (origin: string) =>
      fetch(`${t.baseUrl}/trpc/conversation.mine`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    const ok = await preflight(APP);
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe(APP);
    expect(ok.headers.get('access-control-allow-methods')).toBe('GET, POST');
    expect(ok.headers.get('access-control-allow-headers')).toBe('authorization, content-type, last-event-id, trpc-accept');
    expect(ok.headers.get('access-control-allow-credentials')).toBeNull();
    expect(ok.headers.get('vary')).toBe('Origin');

    const other = await preflight('https://evil.example');
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect(await other.text()).toBe('this origin is not in TRPC_CORS_ORIGINS\n');

    // A query: the listed origin may read it; another origin's request still runs (CORS is the
    // browser's rule) but carries no Allow-Origin, so a browser hides the answer from the page.
    const query = (origin: string) => fetch(`${t.baseUrl}/trpc/conversation.mine`, { headers: { origin, authorization: `Bearer ${token}` } });
    const listed = await query(APP);
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(APP);
    const unlisted = await query('https://evil.example');
    expect(unlisted.headers.get('access-control-allow-origin')).toBeNull();
    expect(unlisted.headers.get('vary')).toMatch(/(^|, )Origin$/);
    await unlisted.arrayBuffer();

    // An SSE stream opened from the listed origin.
    const controller = new AbortController();
    const stream = await fetch(eventsUrl(t.baseUrl, 'cors-room'), { headers: { origin: APP, accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(stream.headers.get('access-control-allow-origin')).toBe(APP);
    controller.abort();
  });

  it('none listed (the default): no CORS header at all, and a preflight is refused', async () => {
    await using t = await startTestApp();
    const token = await t.token('alice');
    const answer = await fetch(`${t.baseUrl}/trpc/conversation.mine`, { headers: { origin: APP, authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('access-control-allow-origin')).toBeNull();
    expect(answer.headers.get('vary') ?? '').not.toMatch(/origin/i);
    await answer.arrayBuffer();
    const preflight = await fetch(`${t.baseUrl}/trpc/conversation.mine`, { method: 'OPTIONS', headers: { origin: APP, 'access-control-request-method': 'GET' } });
    expect(preflight.status).toBe(403);
  });
});

describe.skipIf(!haveChromium)('TRPC_CORS_ORIGINS in Chromium', () => {
  let browser: Browser;
  let listed: TestApp;
  let unlisted: TestApp;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'] });
    // The page's origin is http://localhost:PORT of the server it is served from; the calls go
    // to http://127.0.0.1:PORT of a server that lists that origin, or does not.
    unlisted = await startTestApp();
    const pageOrigin = `http://localhost:${new URL(unlisted.baseUrl).port}`;
    listed = await startTestApp({ trpcCorsOrigins: [pageOrigin] });
  });
  afterAll(async () => {
    await browser?.close();
    await listed?.close();
    await unlisted?.close();
  });

  it('a page on a listed origin makes a batched POST and reads an SSE stream with the stock links\' headers; an unlisted origin is blocked by the browser', { timeout: 30_000 }, async () => {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      // A page of the first server without a CSP of its own (the chat and dashboard pages
      // allow connections to their own origin only).
      await page.goto(`http://localhost:${new URL(unlisted.baseUrl).port}/healthz`);
      const [alice, bob] = await Promise.all([listed.token('alice', { name: 'Alice' }), listed.token('bob')]);

      const result = await page.evaluate(
        async ({ base, token, events }) => {
          const headers = { authorization: `Bearer ${token}` };
          // What httpBatchLink sends for a mutation: POST, JSON, the token; preflighted.
          const send = await fetch(`${base}/trpc/message.send?batch=1`, {
            method: 'POST',
            headers: { ...headers, 'content-type': 'application/json' },
            body: JSON.stringify({ 0: { json: { conversationId: 'cors', body: 'from another origin' } } }),
          });
          const sent = (await send.json()) as Array<{ result?: { data: { json: { eventId: string } } } }>;
          // What the eventsource package sends when it reconnects: Accept and Last-Event-ID.
          const stream = await fetch(events, { headers: { ...headers, accept: 'text/event-stream', 'last-event-id': sent[0]!.result!.data.json.eventId } });
          const reader = stream.body!.getReader();
          let text = '';
          while (!text.includes('event: connected')) text += new TextDecoder().decode((await reader.read()).value);
          await reader.cancel();
          return { sendStatus: send.status, eventId: sent[0]!.result!.data.json.eventId, streamStatus: stream.status, text };
        },
        { base: listed.baseUrl, token: alice, events: eventsUrl(listed.baseUrl, 'cors') },
      );
      expect(result.sendStatus).toBe(200);
      expect(result.eventId).toMatch(/^[0-9a-z]+:\d+$/);
      expect(result.streamStatus).toBe(200);
      expect(result.text).toContain('event: connected');

      // The same POST to the server that does not list the page's origin: the preflight is
      // refused, so the browser never sends it, and the page gets a network error.
      const blocked = await page.evaluate(async ({ base, token }) => {
        try {
          await fetch(`${base}/trpc/message.send?batch=1`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ 0: { json: { conversationId: 'cors', body: 'x' } } }) });
          return 'answered';
        } catch (error) {
          return (error as Error).name;
        }
      }, { base: unlisted.baseUrl.replace('localhost', '127.0.0.1'), token: bob });
      expect(blocked).toBe('TypeError');
      const history = await fetch(`${unlisted.baseUrl}/trpc/conversation.history?input=${encodeURIComponent(JSON.stringify(superjson.serialize({ conversationId: 'cors' })))}`, { headers: { authorization: `Bearer ${await unlisted.token('carol')}` } });
      expect(((await history.json()) as { result: { data: { json: { events: unknown[] } } } }).result.data.json.events).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
