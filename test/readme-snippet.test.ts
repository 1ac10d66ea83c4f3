import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { joined } from './support/helpers.ts';
import { runScript } from './support/script-process.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * The README's "Using the typed client" example, run as it stands (issue 14: it failed when the
 * sender was alone in the room). The block is taken from README.md and run as its own process by
 * Node + tsx. Only the URL is the test server's, and `realtime-broadcast/client` is the source
 * entry (clients/chat/index.ts): the package's exports name the built files, which
 * test/package.test.ts installs and runs from a packed tarball. A prelude supplies
 * what the snippet leaves to the application (getFreshToken, showConnection, render, showTyping)
 * and prints what they were called with when the process exits — which it must, by itself, after
 * `chat.close()`.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const README_URL = 'ws://localhost:3000/trpc';
const PACKAGE_IMPORT = "from 'realtime-broadcast/client'";
const dir = `${ROOT}.scratch/readme-snippet-${process.pid}`;

async function readmeSnippet(): Promise<string> {
  const readme = await readFile(`${ROOT}README.md`, 'utf8');
  const section = readme.split(/^## Using the typed client$/m)[1];
  const block = section && /```ts\n([\s\S]*?)```/.exec(section)?.[1];
  if (!block) throw new Error('README.md has no ```ts block under "## Using the typed client"');
  return block;
}

const prelude = `
const trace = { states: [], rendered: [], typing: [] };
Object.assign(globalThis, {
  getFreshToken: async () => process.env.SNIPPET_TOKEN,
  showConnection: (status, transport, error) => trace.states.push([status, transport, error ?? null]),
  render: (message) => trace.rendered.push(message.body),
  showTyping: (userId, isTyping) => trace.typing.push([userId, isTyping]),
});
process.on('exit', () => console.log('TRACE ' + JSON.stringify(trace)));
`;

async function runSnippet(wsUrl: string, token: string, name: string) {
  const snippet = await readmeSnippet();
  expect(snippet.split(README_URL).length - 1, 'the snippet names its URL once').toBe(1);
  expect(snippet.split(PACKAGE_IMPORT).length - 1, 'the snippet imports the client once').toBe(1);
  await mkdir(dir, { recursive: true });
  const file = `${dir}/${name}.ts`;
  await writeFile(file, `${prelude}\n${snippet.replace(README_URL, wsUrl).replace(PACKAGE_IMPORT, `from '${ROOT}clients/chat/index.ts'`)}`);
  const run = runScript(file, [], { SNIPPET_TOKEN: token }, { timeoutMs: 20_000 });
  try {
    const { code, stdout, stderr } = await run.exited();
    expect(code, stderr).toBe(0);
    const lines = stdout.trim().split('\n');
    const trace = JSON.parse(lines.find((l) => l.startsWith('TRACE '))!.slice('TRACE '.length)) as { states: unknown[][]; rendered: string[] };
    return { logged: lines.filter((l) => !l.startsWith('TRACE ')), trace };
  } finally {
    run.kill();
  }
}

describe("the README's typed-client snippet, verbatim", () => {
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('runs for a sender alone in the room: the failed report, 0 recipients', async () => {
    await using t = await startTestApp();
    const { logged, trace } = await runSnippet(t.wsUrl, await t.token('alice'), 'alone');
    expect(logged).toHaveLength(1);
    expect(logged[0]).toMatch(/^\S+ failed \[\] \[\]$/);
    expect(trace.states[0]).toEqual(['connected', 'websocket', null]);
    expect(trace.states.at(-1)).toEqual(['closed', 'websocket', null]);
  });

  it('runs with a recipient in the room: delivered, acked by bob', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 5000 });
    const bob = await t.client('bob');
    const b = await joined(bob, 'lobby');
    const bobGot = b.next('message', (e) => e.message.body === 'ship it?', 15_000);
    const { logged } = await runSnippet(t.wsUrl, await t.token('alice'), 'with-bob');
    expect(logged).toEqual([expect.stringMatching(/^\S+ delivered \[ 'bob' \] \[\]$/)]);
    expect((await bobGot).message.senderId).toBe('alice');
  });
});
