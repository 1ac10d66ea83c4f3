/**
 * `npx tsx clients/web/screenshot.ts [out.png]`: the README's picture of the web chat
 * (docs/web-chat.png, 1000×700) — a real server (its own secret, so the page offers the dev
 * tokens), Debian's Chromium through playwright-core, alice and bob side by side: a few messages,
 * a delivery report, bob typing, and two messages unread for alice in `team`. Fails loudly if a step does not show up; page errors fail it too.
 */
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { createRealtimeServer } from '../../src/server.ts';

const CHROMIUM = '/usr/bin/chromium';
const out = process.argv[2] ?? 'docs/web-chat.png';
const WIDTH = 500;
const HEIGHT = 700;

const app = createRealtimeServer({ env: { LOG_LEVEL: 'silent' }, typingTimeoutMs: 60_000 });
const { port } = await app.listen(0, '127.0.0.1');
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
const errors: string[] = [];
try {
  const open = async (who: string) => {
    const context = await browser.newContext({ viewport: { width: WIDTH, height: HEIGHT }, colorScheme: 'light', locale: 'en-GB', deviceScaleFactor: 1 });
    const page = await context.newPage();
    page.setDefaultTimeout(10_000);
    page.on('pageerror', (error) => errors.push(`${who}: ${error.message}`));
    await page.goto(`http://127.0.0.1:${port}/chat`);
    await page.getByLabel('Dev token', { exact: true }).selectOption(who);
    await page.getByRole('button', { name: 'Connect', exact: true }).click();
    await page.getByRole('status', { name: 'Connection', exact: true }).filter({ hasText: 'Connected · WebSocket' }).waitFor();
    return page;
  };
  const alice = await open('alice');
  const bob = await open('bob');
  const item = (page: Page, text: string) => page.getByRole('log', { name: 'Messages', exact: true }).getByRole('listitem').filter({ hasText: text });
  const send = async (page: Page, body: string) => {
    await page.getByLabel('Message', { exact: true }).fill(body);
    await page.getByLabel('Message', { exact: true }).press('Enter');
  };
  for (const page of [alice, bob]) await page.getByRole('list', { name: 'People here', exact: true }).getByRole('listitem').filter({ hasText: 'Bob' }).waitFor();
  await send(alice, 'Hi Bob! This is the web chat: scrollback, presence, typing and delivery reports.');
  await item(bob, 'Hi Bob!').waitFor();
  await send(bob, 'Hello Alice! I can see you in “People here”.');
  await item(alice, 'Hello Alice').waitFor();
  await alice.getByLabel('Ask for a delivery report', { exact: true }).check();
  await send(alice, 'Can you confirm you got this one?');
  await item(alice, 'Can you confirm').filter({ hasText: 'Delivery: delivered' }).waitFor();
  await send(bob, 'Got it — the ✓ is on your side.');
  await item(alice, 'Got it').waitFor();
  // Both in `team` too; bob writes there while alice reads `general`: her unread count.
  const conversation = (page: Page, name: string | RegExp) => page.getByRole('navigation', { name: 'Conversations', exact: true }).getByRole('button', { name });
  for (const page of [alice, bob]) {
    await page.getByLabel('Conversation', { exact: true }).fill('team');
    await page.getByRole('button', { name: 'Join', exact: true }).click();
    await conversation(page, 'team').waitFor();
  }
  await conversation(alice, /^general/).click();
  await send(bob, 'Standup moved to 10:30.');
  await send(bob, 'Notes are in the usual place.');
  await conversation(bob, /^general/).click();
  await conversation(alice, 'team, 2 unread').waitFor();
  await bob.getByLabel('Message', { exact: true }).pressSequentially('Shall we');
  await alice.getByRole('list', { name: 'People here', exact: true }).getByRole('listitem').filter({ hasText: 'typing…' }).waitFor();
  await alice.getByLabel('Message', { exact: true }).focus();

  const shots = await Promise.all([alice, bob].map(async (page) => (await page.screenshot()).toString('base64')));
  const frame = await (await browser.newContext({ viewport: { width: WIDTH * 2, height: HEIGHT }, deviceScaleFactor: 1 })).newPage();
  await frame.setContent(
    `<body style="margin:0;display:flex;background:#888">${shots.map((s) => `<img src="data:image/png;base64,${s}" width="${WIDTH}" height="${HEIGHT}" style="display:block;">`).join('')}</body>`,
  );
  await frame.evaluate(() => Promise.all([...document.images].map((img) => img.decode())));
  mkdirSync(dirname(out), { recursive: true });
  await frame.screenshot({ path: out });
  if (errors.length > 0) throw new Error(`errors on the page:\n${errors.join('\n')}`);
  process.stdout.write(`wrote ${out}\n`);
} finally {
  await browser.close();
  await app.close();
}
