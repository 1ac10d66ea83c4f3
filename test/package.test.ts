import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { expectSigtermDrains, listeningPort } from './support/drain-check.ts';
import { runProcess } from './support/script-process.ts';
import { TEST_SECRET } from './support/start-test-app.ts';

/**
 * What we publish is what we test (issue 15): the project is built and packed (`npm pack`), the
 * tarball installed into a fresh project — production dependencies only, as an application gets
 * them — and that project imports `realtime-broadcast` and `realtime-broadcast/client` with plain
 * Node (no tsx), type-checks against the shipped .d.ts, and runs the shipped server.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);
const npm = (args: string[], cwd: string) => run('npm', [...args, '--no-audit', '--no-fund'], { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_loglevel: 'warn' } });

/** Packages an application's fresh install may warn about (see the first test). */
const KNOWN_NODE22_ONLY = ['@whatwg-node/promise-helpers', '@whatwg-node/disposablestack'];

let dir: string;
let app: string;
let packed: { filename: string; files: Array<{ path: string }> };
let installLog: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'package-test-'));
  await npm(['run', 'build'], ROOT);
  // The build just ran; prepack would run it again.
  const { stdout } = await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], ROOT);
  [packed] = JSON.parse(stdout) as [typeof packed];
  app = join(dir, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // From npm's cache where it can (CI's `npm ci` just filled it), else from the registry.
  const installed = await npm(['install', '--prefer-offline', join(dir, packed.filename)], app);
  installLog = installed.stdout + installed.stderr;
}, 240_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the packed package, installed into a fresh project', { timeout: 60_000 }, () => {
  it('ships built JavaScript, types, the web chat and the docs — no TypeScript sources, tests or benches — and installs without engine warnings', async () => {
    const paths = packed.files.map((f) => f.path);
    for (const expected of ['dist/main.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/clients/chat/index.js', 'dist/clients/chat/browser.js', 'dist/clients/chat/index.d.ts', 'dist/clients/web/chat.js', 'dist/clients/web/index.html', 'dist/src/admin/dashboard/index.html', 'README.md', 'docs/deploy.md', 'package.json']) {
      expect(paths, expected).toContain(expected);
    }
    expect(paths.filter((p) => p.endsWith('.ts') && !p.endsWith('.d.ts'))).toEqual([]);
    expect(paths.filter((p) => /(^|\/)(test|bench)\/|\.test\./.test(p))).toEqual([]);
    // Our lockfile holds only releases that support Node 20 (test/engines.test.ts), but an
    // application resolves afresh: graphql-yoga's ranges admit graphql-tools' newest releases,
    // whose helper packages declare Node ≥ 22.15. They run on Node 20 (the next test makes a
    // GraphQL call through them); README "Installing it as a package" says how to silence them.
    const warned = [...installLog.matchAll(/EBADENGINE[^\n]*\n[^\n]*package: '(@?[^@']+)@/g)].map((m) => m[1]);
    expect(new Set(warned)).toEqual(new Set(warned.filter((name) => KNOWN_NODE22_ONLY.includes(name!))));
    // Production dependencies only: no TypeScript runner or bundler came along.
    const installed = await readdir(join(app, 'node_modules'));
    expect(installed).toContain('realtime-broadcast');
    for (const devOnly of ['tsx', 'esbuild', 'vitest', 'socket.io']) expect(installed, devOnly).not.toContain(devOnly);
  });

  it('imports both entry points with plain node: the server it starts and two clients exchange an acknowledged message; GraphQL answers', async () => {
    await writeFile(
      join(app, 'exchange.mjs'),
      `
import { createRealtimeServer, mintToken } from 'realtime-broadcast';
import { createChatClient } from 'realtime-broadcast/client';

const secret = ${JSON.stringify(TEST_SECRET)};
const server = createRealtimeServer({ authSecret: secret, port: 0, host: '127.0.0.1', presenceGraceMs: 0, env: { LOG_LEVEL: 'silent' } });
const { url } = await server.listen();
const client = async (userId) => createChatClient({ url: url.replace(/^http/, 'ws') + '/trpc', token: await mintToken(secret, { userId, conversations: ['*'] }) });
const [alice, bob] = [await client('alice'), await client('bob')];
const received = new Promise((resolve) => bob.join('lobby').on('message', (e) => resolve(e.message.body)));
await bob.join('lobby').started;
await alice.join('lobby').started;
const { report } = await alice.send('lobby', 'hello from the tarball', { ack: true });
// The admin plane through graphql-yoga and graphql-tools as this install resolved them.
const graphql = await fetch(url + '/graphql', {
  method: 'POST',
  headers: { 'content-type': 'application/json', authorization: 'Bearer ' + (await mintToken(secret, { userId: 'ops', role: 'admin' })) },
  body: JSON.stringify({ query: '{ stats { activeRooms } }' }),
}).then((res) => res.json());
console.log(JSON.stringify({ received: await received, report: await report, graphql }));
await Promise.all([alice.close(), bob.close()]);
await server.close();
`,
    );
    const { stdout } = await run(process.execPath, ['exchange.mjs'], { cwd: app, timeout: 30_000 });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { received: string; report: { status: string; acked: string[] }; graphql: unknown };
    expect(result.received).toBe('hello from the tarball');
    expect(result.report).toMatchObject({ status: 'delivered', acked: ['bob'] });
    expect(result.graphql).toEqual({ data: { stats: { activeRooms: 1 } } });
  });

  it('type-checks an application against the shipped .d.ts (and the types are real: misuse is an error)', async () => {
    await writeFile(
      join(app, 'app.ts'),
      `
import { createRealtimeServer, type RoomEvent } from 'realtime-broadcast';
import { createChatClient, type ConnectionState, type DeliveryReport } from 'realtime-broadcast/client';

export const server = createRealtimeServer({ port: 0 });
const chat = createChatClient({ url: 'ws://localhost:3000/trpc', token: 't' });
export const state: ConnectionState = chat.state;
export async function send(): Promise<DeliveryReport> {
  const { report } = await chat.send('lobby', 'hi', { ack: true });
  return report;
}
export const on = (e: RoomEvent) => (e.type === 'message' ? e.message.body : e.type);
// The types are real, not \`any\`: each misuse below must be an error, or tsc fails on an unused directive.
// @ts-expect-error a conversation id is a string
chat.join(42);
// @ts-expect-error the port is a number
createRealtimeServer({ port: 'eighty' });
`,
    );
    await writeFile(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        // skipLibCheck, as applications set it: the check is of the application against our types.
        compilerOptions: { strict: true, noEmit: true, skipLibCheck: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', lib: ['ES2023', 'DOM'], types: ['node'], typeRoots: [join(ROOT, 'node_modules/@types')] },
        files: ['app.ts'],
      }),
    );
    const tsc = join(ROOT, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app }).catch((error: { stdout: string }) => ({ stdout: error.stdout, failed: true }));
    expect(result.stdout).toBe('');
    expect('failed' in result).toBe(false);
  });

  it('NODE_ENV=production node dist/main.js of the installed copy: the prebuilt web chat without a bundler, a lean heap, a drain on SIGTERM', async () => {
    const main = join(app, 'node_modules/realtime-broadcast/dist/main.js');
    expect(existsSync(main)).toBe(true);
    const env = { NODE_ENV: 'production', PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', AUTH_SECRET: TEST_SECRET, WEB_CHAT: 'true', METRICS_PUBLIC: 'true' };
    using proc = runProcess(process.execPath, [main], env, { cwd: app, timeoutMs: 30_000 });
    const port = await listeningPort(proc);
    const page = await fetch(`http://127.0.0.1:${port}/chat/chat.js`);
    expect(page.status).toBe(200);
    expect((await page.text()).length).toBeGreaterThan(10_000);
    expect(proc.output.stdout).not.toMatch(/bundle built/);
    // GraphiQL is off in production, so its renderer (~30 MiB of heap: GraphiQL's bundle as
    // strings) is never loaded. Measured 33 MiB used after start; with the renderer, over 60.
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const heapUsed = Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(metrics)?.[1]);
    expect(heapUsed).toBeLessThan(48 * 2 ** 20);
    await expectSigtermDrains(proc, await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'], expiresIn: '1h' }));
  });
});
