import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { DASHBOARD_CSP } from '../src/admin/dashboard-routes.ts';
import { startTestApp } from './support/start-test-app.ts';
import { CHROMIUM, haveChromium } from './support/chromium.ts';

/**
 * The operator dashboard in a real headless Chromium (Debian's, driven by playwright-core)
 * against the real server, with traffic from real chat clients.
 */

const MISSING = `${CHROMIUM} is missing: install Debian's chromium (apt-get install -y --no-install-recommends chromium; .ci/run does it in CI)`;
const SCREENSHOT = 'test-results/dashboard.png';

describe('dashboard routes', () => {
  it('serves the page and its assets with a strict CSP, GET/HEAD only', async () => {
    await using t = await startTestApp();
    const page = await fetch(`${t.baseUrl}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    const html = await page.text();
    expect(html).not.toMatch(/<script>|<style|\sstyle=|\son[a-z]+=|https?:\/\//i); // nothing inline, nothing external
    for (const [path, type] of [
      ['/dashboard/dashboard.js', 'text/javascript; charset=utf-8'],
      ['/dashboard/chart.js', 'text/javascript; charset=utf-8'],
      ['/dashboard/dashboard.css', 'text/css; charset=utf-8'],
    ]) {
      const res = await fetch(`${t.baseUrl}${path}`, { method: 'HEAD' });
      expect([path, res.status, res.headers.get('content-type')]).toEqual([path, 200, type]);
      expect(res.headers.get('content-security-policy')).toBe(DASHBOARD_CSP);
    }
    const etag = page.headers.get('etag') ?? '';
    expect((await fetch(`${t.baseUrl}/dashboard`, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const post = await fetch(`${t.baseUrl}/dashboard`, { method: 'POST' });
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD']);
    expect((await fetch(`${t.baseUrl}/dashboard/nope.js`)).status).toBe(404);
  });
});

describe('dashboard in headless Chromium', () => {
  if (!haveChromium) {
    if (process.env.CI) {
      it('needs Chromium', () => {
        throw new Error(MISSING);
      });
    } else {
      console.warn(`dashboard browser test skipped: ${MISSING}`);
      it.skip(`skipped: ${MISSING}`, () => undefined);
    }
    return;
  }

  it('signs in once, shows live numbers, rooms, pending acks and a drill-down', { timeout: 30_000 }, async () => {
    await using t = await startTestApp({ ackTimeoutMs: 60_000, typingTimeoutMs: 60_000 });
    const browser: Browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1440, height: 1000 }, colorScheme: 'dark', locale: 'en-US' });
      page.setDefaultTimeout(8000);
      // Anything the page logs as an error (a CSP violation included) fails the test; refused
      // requests (the 401/403 below) are expected and logged by Chromium as "Failed to load resource".
      const pageErrors: string[] = [];
      page.on('pageerror', (error) => pageErrors.push(error.message));
      page.on('console', (msg) => {
        if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) pageErrors.push(msg.text());
      });

      await page.goto(`${t.baseUrl}/dashboard`);
      await page.locator('#login-form').waitFor();

      // A wrong token and a non-admin token: a plain error, no data, nothing kept.
      await signIn(page, 'not-a-token');
      await page.locator('#login-error', { hasText: 'Token refused' }).waitFor();
      await signIn(page, await t.token('someone', { role: 'user' }));
      await page.locator('#login-error', { hasText: 'Not an admin token' }).waitFor();
      expect(await page.locator('#dash').isVisible()).toBe(false);
      expect(await page.locator('#rooms tbody tr').count()).toBe(0);
      expect(await page.evaluate('sessionStorage.length')).toBe(0);

      // The admin token: cards appear; the token is in sessionStorage only.
      const adminToken = await t.token('root', { role: 'admin' });
      await signIn(page, adminToken);
      await page.locator('#dash').waitFor();
      await page.locator('#status[data-state="live"]').waitFor();
      expect(await cardValue(page, 'connections')).toBe(0);
      expect(await cardSubNumber(page, 'messages')).toBe(0);
      expect(await page.evaluate('[Object.values({ ...sessionStorage }), localStorage.length]')).toEqual([[adminToken], 0]);

      // Traffic: three users in one room (carol never acks), one user in another.
      const alice = await t.client('alice', { name: 'Alice' });
      const bob = await t.client('bob', { name: 'Bob' });
      const carol = await t.client('carol', { name: 'Carol', autoAck: false });
      const dave = await t.client('dave');
      for (const [client, room] of [[alice, 'ops-room'], [bob, 'ops-room'], [carol, 'ops-room'], [dave, 'quiet-room']] as const) await client.join(room).started;
      for (let i = 1; i <= 5; i += 1) await alice.send('ops-room', `hello ${i}`);
      const acked = await alice.send('ops-room', 'please ack', { ack: true });
      expect(acked.expected?.sort()).toEqual(['bob', 'carol']);
      carol.setTyping('ops-room', true);

      // The next polls show it: totals and rates up, the room on top, the pending ack listed.
      // (The first render with all 6 messages counted also has a positive rate: the total just grew.)
      // Polled from here: the page's CSP (rightly) refuses the eval behind a string waitForFunction.
      await expect
        .poll(async () => {
          const [value = '', sub = ''] = await page.locator('#card-messages .value, #card-messages .sub').allTextContents();
          return { total: Number(sub.replace(/\D/g, '')), rate: Number.parseFloat(value.replace(/,/g, '')) };
        }, { timeout: 8000, interval: 50 })
        .toSatisfy(({ total, rate }) => total >= 6 && rate > 0);
      expect(await cardValue(page, 'connections')).toBe(4);
      expect(await page.textContent('#card-connections .sub')).toBe('4 WebSocket · 0 SSE');
      expect(await cardValue(page, 'users')).toBe(4);
      expect(await cardValue(page, 'rooms')).toBe(2);
      expect(await cardSubNumber(page, 'deliveries')).toBeGreaterThanOrEqual(12);
      await page.locator('#card-pending .value', { hasText: /^1$/ }).waitFor();
      const firstRoom = page.locator('#rooms tbody tr').first();
      expect(await firstRoom.locator('td').allTextContents()).toEqual(expect.arrayContaining(['ops-room', '3', '6']));
      await page.locator('#rooms tbody tr', { hasText: 'quiet-room' }).waitFor();
      const ackRow = page.locator('#acks tbody tr', { hasText: acked.messageId }).filter({ hasText: '1 / 2' }); // once bob's ack is in
      await ackRow.waitFor();
      expect((await ackRow.locator('td').allTextContents()).slice(0, 5)).toEqual([acked.messageId, 'ops-room', 'alice', '1 / 2', 'carol']);
      await page.locator('#chart svg path.line.p99').first().waitFor({ state: 'attached' });

      // Drill-down: members with their connection counts, and who is typing.
      await firstRoom.click();
      await page.locator('#room-body table.members').waitFor();
      expect(await page.locator('#room-body table.members tbody tr').count()).toBe(3);
      const aliceRow = page.locator('#room-body table.members tbody tr', { hasText: 'alice' });
      expect((await aliceRow.locator('td').allTextContents()).slice(0, 3)).toEqual(['alice', 'Alice', '1']);
      await page.locator('#room-body .chip', { hasText: 'carol' }).waitFor();
      await page.locator('#room-body tr', { hasText: 'carol' }).locator('td', { hasText: 'typing' }).waitFor();

      mkdirSync('test-results', { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });

      // Pause stops polling; a lost connection is shown plainly and recovers by itself.
      await page.click('#pause');
      await page.locator('#status[data-state="paused"]').waitFor();
      await page.click('#pause');
      await page.route('**/graphql', (route) => route.abort('connectionrefused'));
      await page.locator('#banner', { hasText: 'Disconnected' }).waitFor();
      await page.locator('#status[data-state="error"]').waitFor();
      await page.unroute('**/graphql');
      await page.locator('#status[data-state="live"]').waitFor();
      expect(await page.locator('#banner').isVisible()).toBe(false);

      // Sign out forgets the token and the data.
      await page.click('#signout');
      await page.locator('#login-form').waitFor();
      expect(await page.locator('#dash').isVisible()).toBe(false);
      expect(await page.evaluate('sessionStorage.length')).toBe(0);
      expect(pageErrors).toEqual([]);
    } finally {
      await browser.close();
    }
  });
});

async function signIn(page: Page, token: string): Promise<void> {
  await page.fill('#token', token);
  await page.click('#login-submit');
}

async function cardValue(page: Page, card: string): Promise<number> {
  return Number((await page.textContent(`#card-${card} .value`))?.replace(/\D/g, ''));
}

async function cardSubNumber(page: Page, card: string): Promise<number> {
  const text = (await page.textContent(`#card-${card} .sub`)) ?? '';
  return Number(/^[\d,.\s]+/.exec(text)?.[0].replace(/\D/g, '') ?? Number.NaN);
}
