import { spawn } from 'node:child_process';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createRealtimeServer } from '../src/server.ts';
import { joined } from './support/helpers.ts';
import { nodeArgsFor } from './support/built.ts';
import { startTestApp, TEST_SECRET } from './support/start-test-app.ts';

/** Opens a raw upgrade and resolves with how it ended: the HTTP status of a refusal, or 'open'. */
function tryUpgrade(url: string): Promise<number | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.close();
      resolve('open');
    });
    ws.once('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once('error', (error) => reject(error));
  });
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 8000) {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal });
    });
  });
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** The environment of a child process: PATH and friends, none of the test's own variables. */
function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const { PATH, HOME, TMPDIR } = process.env;
  return { ...(PATH && { PATH }), ...(HOME && { HOME }), ...(TMPDIR && { TMPDIR }), ...extra };
}

describe('one port: health, readiness, routing', () => {
  it('serves /healthz and /readyz (200), 404 for unknown paths', async () => {
    await using t = await startTestApp();
    const health = await fetch(`${t.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.baseUrl}/readyz?probe=1`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready' });
    for (const path of ['/nope', '/healthz/extra', '/trpcx', '/']) {
      const res = await fetch(`${t.baseUrl}${path}`);
      expect(res.status, path).toBe(404);
      await res.arrayBuffer();
    }
  });

  it('refuses WebSocket upgrades on any path but /trpc (404) without harming the server', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const a = await joined(alice, 'room');
    const base = t.wsUrl.replace(/\/trpc$/, '');
    for (const path of ['/other', '/', '/trpc/extra', '/graphql-ws']) {
      expect(await tryUpgrade(`${base}${path}`), path).toBe(404);
    }
    // Still serving: HTTP, the existing socket, and new upgrades on /trpc.
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
    expect(await tryUpgrade(t.wsUrl)).toBe('open');
    const got = a.next('system');
    await t.app.broadcastSystemEvent('room', 'still-alive');
    expect((await got).event).toBe('still-alive');
  });

  it('answers /readyz 503 and refuses upgrades (503) while draining', async () => {
    await using t = await startTestApp({ shutdownDrainMs: 600 });
    const alice = await t.client('alice', { retryDelayMs: () => 5000 });
    await joined(alice, 'room');
    expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(200);

    // A connected client keeps the drain going for up to shutdownDrainMs; probe during it.
    const closing = t.app.close();
    const ready = await fetch(`${t.baseUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'draining' });
    expect((await fetch(`${t.baseUrl}/healthz`)).status).toBe(200);
    expect(await tryUpgrade(t.wsUrl)).toBe(503);
    await closing;
    expect(t.app.httpServer.listening).toBe(false);
  });

  it('picks a free port with PORT=0 through createRealtimeServer, and logs which', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const app = createRealtimeServer({ env: { PORT: '0', HOST: '127.0.0.1', AUTH_SECRET: TEST_SECRET }, logger, shutdownDrainMs: 0 });
    try {
      expect(app.config.port).toBe(0);
      const { port, url } = await app.listen();
      expect(port).toBeGreaterThan(0);
      expect(url).toBe(`http://127.0.0.1:${port}`);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const listening = lines.map((l) => JSON.parse(l) as { msg?: string; port?: number }).find((l) => l.msg === 'listening');
      expect(listening?.port).toBe(port);
    } finally {
      await app.close();
    }
  });
});

describe('configuration', () => {
  const bad: Array<[string, string]> = [
    ['ACK_TIMEOUT_MS', 'abc'],
    ['ACK_RETRY_MS', '-1'],
    ['PORT', '70000'],
    ['PORT', '3.5'],
    ['TYPING_TIMEOUT_MS', '0'],
    ['PRESENCE_GRACE_MS', 'soon'],
    ['HISTORY_SIZE', '-5'],
    ['HISTORY_TTL_MS', '1e3'],
    ['MAX_MESSAGE_BYTES', '0'],
    ['MAX_BUFFERED_BYTES', '12'],
    ['REDIS_URL', 'not a url'],
    ['LOG_LEVEL', 'loud'],
    ['AUTH_SECRET', 'short'],
  ];
  it.each(bad)('rejects %s=%s with a ConfigError naming the variable', (name, value) => {
    let thrown: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    const message = (thrown as Error).message;
    expect(message).toContain(name);
    expect(message).not.toContain('\n');
  });

  it('requires AUTH_SECRET in production, and honours options over the environment', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError);
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/AUTH_SECRET/);
    const prod = loadConfig({ NODE_ENV: 'production', AUTH_SECRET: TEST_SECRET });
    expect(prod).toMatchObject({ production: true, authSecret: TEST_SECRET, generatedSecret: false });
    const dev = loadConfig({});
    expect(dev.generatedSecret).toBe(true);
    expect(dev.authSecret.length).toBeGreaterThanOrEqual(32);
    expect(dev).toMatchObject({ port: 3000, host: '0.0.0.0', ackTimeoutMs: 5000, ackRetryMs: 1000, typingTimeoutMs: 5000, presenceGraceMs: 3000, historySize: 256, historyTtlMs: 300_000, maxMessageBytes: 16_384, maxBufferedBytes: 4_194_304, logLevel: 'info' });
    expect(loadConfig({ ACK_TIMEOUT_MS: '100' }, { ackTimeoutMs: 200 }).ackTimeoutMs).toBe(200);
    expect(loadConfig({ ACK_TIMEOUT_MS: '100' }).ackTimeoutMs).toBe(100);
    expect(() => createRealtimeServer({ env: { MAX_MESSAGE_BYTES: 'big' } })).toThrow(/MAX_MESSAGE_BYTES/);
  });

  it('validates the cluster settings: key prefix characters, and a node TTL of at least three heartbeats', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' })).toMatchObject({ redisUrl: 'redis://127.0.0.1:6379', redisKeyPrefix: 'rt:', clusterHeartbeatMs: 1000, clusterNodeTtlMs: 5000 });
    expect(() => loadConfig({ REDIS_KEY_PREFIX: 'bad prefix*' })).toThrow(ConfigError);
    expect(() => loadConfig({ CLUSTER_HEARTBEAT_MS: '1000', CLUSTER_NODE_TTL_MS: '2000' })).toThrow(/CLUSTER_NODE_TTL_MS=2000 must be at least 3/);
    expect(() => loadConfig({ REDIS_URL: 'not a url' })).toThrow(/REDIS_URL/);
  });

  it('takes NODE_ID from the environment it is given, else host name + random suffix (not from process.env at import)', () => {
    expect(loadConfig({ NODE_ID: 'n1' }).nodeId).toBe('n1');
    expect(loadConfig({}).nodeId).toMatch(/^.+-[0-9a-f]{8}$/);
    expect(loadConfig({}, { nodeId: 'override' }).nodeId).toBe('override');
  });

  it('`npm start` with a bad value exits 1 with one line naming the variable', async () => {
    const proc = run(process.execPath, nodeArgsFor('src/main.ts'), childEnv({ ACK_TIMEOUT_MS: 'abc', PORT: '0', HOST: '127.0.0.1' }));
    const { code } = await proc.exited;
    expect(code).toBe(1);
    const lines = proc.stderr().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('ACK_TIMEOUT_MS');
    expect(proc.stdout()).toBe('');
  });

  it('`npm start` with PORT=0 listens on a free port, logs it, and exits 0 on SIGTERM', async () => {
    const proc = run(process.execPath, nodeArgsFor('src/main.ts'), childEnv({ PORT: '0', HOST: '127.0.0.1', AUTH_SECRET: TEST_SECRET, SHUTDOWN_DRAIN_MS: '0' }));
    try {
      const listening = await vi.waitFor(
        () => {
          const line = proc
            .stdout()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { msg?: string; port?: number })
            .find((l) => l.msg === 'listening');
          if (!line?.port) throw new Error('not listening yet');
          return line;
        },
        { timeout: 8000, interval: 50 },
      );
      expect(listening.port).toBeGreaterThan(0);
      expect((await fetch(`http://127.0.0.1:${listening.port}/healthz`)).status).toBe(200);
      proc.child.kill('SIGTERM');
      expect((await proc.exited).code).toBe(0);
    } finally {
      proc.child.kill('SIGKILL');
    }
  });
});
