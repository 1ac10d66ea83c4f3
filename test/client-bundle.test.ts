import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { WebSocket as NodeWebSocket } from 'ws';
import { buildClient, type ClientBuild } from '../clients/build-client.ts';
import type * as BrowserClient from '../clients/chat/browser.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * `realtime-broadcast/client` as a browser bundle (issue 14): `npm run build:client`'s build, with
 * platform 'browser' — esbuild refuses to resolve Node built-ins there, so a build that succeeds
 * pulled none in — and the bundle run for real against a server.
 */
describe('the typed client as a browser bundle', () => {
  let dir: string | undefined;
  let built: ClientBuild | undefined;
  const bundle = async (): Promise<ClientBuild> => {
    dir ??= await mkdtemp(join(tmpdir(), 'client-bundle-'));
    return (built ??= await buildClient(join(dir, 'realtime-client.js')));
  };
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('builds for the browser from the browser entry, without ws or any Node built-in', async () => {
    const { code, metafile } = await bundle();
    const inputs = Object.keys(metafile.inputs);
    expect(inputs).toContain('clients/chat/browser.ts');
    expect(inputs).not.toContain('clients/chat/index.ts');
    expect(inputs.filter((input) => /node_modules\/ws\//.test(input))).toEqual([]);
    expect(code).not.toMatch(/require\(\s*["']ws["']\s*\)/);
    expect(code).not.toMatch(/from\s*["'](ws|node:[a-z_/]+)["']/);
    // Nothing that only Node defines (a browser has no `require`, `process`, `Buffer`).
    expect(code).not.toMatch(/\brequire\(|\bprocess\.|\bBuffer\b|__dirname|setImmediate/);
  });

  it('stays small: gzip under 34 KiB', async () => {
    const { gzipBytes, minifiedBytes, contributors } = await bundle();
    // Measured 27.9 KiB gzip (84.9 KiB minified) with @trpc/client 11.25, superjson 2.2 and
    // eventsource 3.0: @trpc/client is 35 % of it (its wsLink alone 16 KiB minified). The bound
    // leaves ~25 % for patch releases of those and small client features; a jump past it means a
    // dependency (or a Node polyfill) came in whole — look at `npm run build:client`'s list.
    expect(gzipBytes, JSON.stringify(contributors.slice(0, 5))).toBeLessThan(34 * 1024);
    expect(minifiedBytes).toBeGreaterThan(gzipBytes);
    expect(contributors[0]?.name).toBe('@trpc/client');
  });

  it("runs: the bundle connects over SSE, over the platform's WebSocket and over an injected one, and gets a report", async () => {
    const { outfile } = await bundle();
    const client = (await import(pathToFileURL(outfile).href)) as typeof BrowserClient;
    await using t = await startTestApp();
    // As in a browser: the platform's WebSocket (Node 20 has none: `ws` stands in), or one injected.
    const platform = globalThis as { WebSocket?: unknown };
    const before = platform.WebSocket;
    platform.WebSocket = NodeWebSocket;
    onTestFinished(() => void (platform.WebSocket = before));
    for (const options of [{ transport: 'sse' as const }, { transport: 'websocket' as const }, { transport: 'websocket' as const, WebSocket: NodeWebSocket as unknown as typeof WebSocket }]) {
      const chat = client.createChatClient({ url: t.wsUrl, token: await t.token('alice'), ...options });
      try {
        const room = chat.join('bundle');
        await room.started;
        const { report } = await chat.send('bundle', 'from the bundle', { ack: true });
        expect((await report).status).toBe('failed');
        expect(chat.state).toMatchObject({ status: 'connected', transport: options.transport });
      } finally {
        await chat.close();
      }
    }
  });
});
