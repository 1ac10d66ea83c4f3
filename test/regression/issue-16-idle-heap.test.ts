import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../support/chaos.ts';
import { runScript } from '../support/script-process.ts';
import { startTestApp, TEST_SECRET, type TestApp } from '../support/start-test-app.ts';
import { waitUntil } from '../support/wait.ts';

/**
 * Issue #16: the heap an idle WebSocket connection with one `conversation.events` subscription
 * costs the server, bounded. The clients run in a process of their own (test/support/
 * idle-clients.ts), so the figure is the server's side only: the socket and `ws`'s objects,
 * the WsConnection and its EventsStream, the service's subscriber record, the registry's entries.
 *
 * The bound, 7.5 KiB: `bench/heap-per-connection.ts` measured 4.82 KiB (N=2,000, rooms of 10,
 * median of 3) once the subscription stopped being two suspended async functions with their
 * closures and promises (9.17 KiB before, 5.72 after that cut alone) and connection ids stopped
 * being 480-byte ropes. Inside the test runner, with 500, the same code measures 5.9–6.6 KiB from
 * run to run (the runner's own heap moves under it; 6.5 was too tight and failed a run); the
 * code before those cuts measures 10.0. 7.5 KiB fails if a suspended frame per subscription
 * (≈ 3.4 KiB), or closures and a timer per connection, come back.
 */
const CONNECTIONS = 500;
const PER_ROOM = 10;
const BOUND_BYTES = 7.5 * 1024;

async function heapAfterGc(): Promise<number> {
  collectGarbage();
  await new Promise((r) => setImmediate(r));
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

async function idleClients(t: TestApp, count: number, tag: string) {
  const clients = runScript('test/support/idle-clients.ts', [t.wsUrl, String(count), String(PER_ROOM), tag], { IDLE_CLIENTS_SECRET: TEST_SECRET }, { timeoutMs: 120_000 });
  await clients.until(() => clients.output.stdout.includes(`ready ${count}`));
  return clients;
}

describe('issue #16: heap per idle subscribed connection', () => {
  it(`stays under ${BOUND_BYTES / 1024} KiB per connection with ${CONNECTIONS} idle subscribers`, async () => {
    await using t = await startTestApp();
    // Warm-up: code, compiled schemas and lazily built tables belong in the baseline.
    const warm = await idleClients(t, 50, 'warm');
    warm.kill();
    await waitUntil(() => t.app.getBroadcastStats().connections === 0, { what: 'the warm-up sockets to close' });

    const before = await heapAfterGc();
    using clients = await idleClients(t, CONNECTIONS, 'idle');
    expect(t.app.getBroadcastStats().connections).toBe(CONNECTIONS);
    const perConnection = ((await heapAfterGc()) - before) / CONNECTIONS;
    console.log(`heap per idle subscribed connection: ${(perConnection / 1024).toFixed(2)} KiB`);
    expect(perConnection).toBeLessThan(BOUND_BYTES);
    clients.kill();
  }, 180_000);
});
