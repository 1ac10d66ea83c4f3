import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { formatPairs, formatTable } from '../clients/cli/table.ts';
import { nodeArgsFor } from './support/built.ts';
import { joined } from './support/helpers.ts';
import { adminToken } from './support/graphql.ts';
import { openSseStream } from './support/sse-client.ts';
import { startTestApp } from './support/start-test-app.ts';

/** `npm run admin -- …` (clients/cli/admin.ts) as a real process against a live server. */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

function admin(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const { ADMIN_TOKEN: _ignored, ...base } = process.env;
    execFile(process.execPath, [...nodeArgsFor('clients/cli/admin.ts'), ...args], { cwd: ROOT, timeout: 15_000, env: { ...base, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The rows of a printed table (after the header and its rule), split on runs of 2+ spaces. */
function rows(table: string): string[][] {
  const lines = table.split('\n');
  const rule = lines.findIndex((l) => /^─/.test(l));
  const body: string[] = [];
  for (const line of lines.slice(rule + 1)) {
    if (line.trim() === '') break;
    body.push(line);
  }
  return body.map((l) => l.trim().split(/\s{2,}/));
}

describe('admin CLI', () => {
  it('lists rooms, shows a room and stats as aligned tables; a rejected token exits non-zero with one line', { timeout: 30_000 }, async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice', { name: 'Alice' });
    const bob = await t.client('bob');
    await joined(alice, 'cli-lobby');
    await joined(bob, 'cli-lobby');
    await joined(bob, 'cli-side');
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('cli-lobby')?.connectionCount).toBe(2));
    await alice.send('cli-lobby', 'hello');
    const token = await adminToken(t);
    const url = ['--url', t.baseUrl];
    // A port nobody listens on: bind one, then free it.
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });

    const [list, room, stats, rejected, userToken, noToken, unknown, unreachable] = await Promise.all([
      admin(['rooms', ...url, '--token', token]),
      admin(['room', 'cli-lobby', ...url], { ADMIN_TOKEN: token }),
      admin(['stats', ...url, '--token', token]),
      admin(['rooms', ...url, '--token', 'not-a-valid-token']),
      admin(['rooms', ...url, '--token', await t.token('alice')]),
      admin(['rooms', ...url]),
      admin(['room', 'no-such-room', ...url, '--token', token]),
      admin(['nodes', '--url', `http://127.0.0.1:${closedPort}`, '--token', token]),
    ]);

    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^CONVERSATION\s+MEMBERS\s+CONNECTIONS\s+MESSAGES\s+PENDING ACKS\s+LAST ACTIVITY\s+TYPING$/);
    // Busiest first; numbers right-aligned under their headers.
    expect(rows(list.stdout).map((r) => r.slice(0, 5))).toEqual([
      ['cli-lobby', '2', '2', '1', '0'],
      ['cli-side', '1', '1', '0', '0'],
    ]);
    const [header, , first] = list.stdout.split('\n');
    expect(first!.indexOf('2') + 1).toBe(header!.indexOf('MEMBERS') + 'MEMBERS'.length);

    expect(room.code, room.stderr).toBe(0);
    expect(room.stdout).toMatch(/^conversation\s+cli-lobby$/m);
    expect(room.stdout).toMatch(/^members\s+2$/m);
    const members = rows(room.stdout.slice(room.stdout.indexOf('MEMBER ')));
    expect(members.map((m) => m.slice(0, 4))).toEqual([
      ['alice', 'Alice', '1', 'no'],
      ['bob', '-', '1', 'no'],
    ]);

    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toMatch(/^active rooms\s+2$/m);
    expect(stats.stdout).toMatch(/^connections\s+2$/m);
    expect(stats.stdout).toMatch(/^connections by transport\s+2 websocket, 0 sse$/m);
    expect(stats.stdout).toMatch(/^messages broadcast\s+1$/m);
    expect(stats.stdout).toMatch(/^delivery\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+1$/m);

    // The server's reason after the CLI's own words (issue #11: not a bare "rejected").
    expect(rejected).toEqual({ code: 1, stdout: '', stderr: 'error: admin token rejected: invalid token\n' });
    expect(userToken.code).toBe(1);
    expect(userToken.stdout).toBe('');
    expect(userToken.stderr).toMatch(/^error: forbidden: .+\n$/);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toBe('error: no admin token: pass --token or set ADMIN_TOKEN (see --help)\n');
    expect(unknown).toMatchObject({ code: 1, stdout: '', stderr: 'error: no active room no-such-room\n' });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toBe(`error: cannot reach http://127.0.0.1:${closedPort}/graphql: ECONNREFUSED\n`);
  });

  it('stats and nodes show connections per transport: one WebSocket and one SSE stream, then none', { timeout: 30_000 }, async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    await joined(alice, 'cli-transports');
    const stream = openSseStream(t.baseUrl, await t.token('bob'), 'cli-transports');
    await stream.started;
    await vi.waitFor(() => expect(t.app.service.figures.connectionsByTransport()).toEqual({ websocket: 1, sse: 1 }));
    const args = ['--url', t.baseUrl, '--token', await adminToken(t)];

    const [stats, nodes] = await Promise.all([admin(['stats', ...args]), admin(['nodes', ...args])]);
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toMatch(/^connections\s+2$/m);
    expect(stats.stdout).toMatch(/^connections by transport\s+1 websocket, 1 sse$/m);
    expect(nodes.code, nodes.stderr).toBe(0);
    expect(nodes.stdout.split('\n')[0]).toMatch(/^NODE\s+ADDRESS\s+CONNECTIONS\s+WEBSOCKET\s+SSE\s+ROOMS\s+USERS\s+UPTIME\s+SELF$/);
    expect(rows(nodes.stdout).map((r) => r.slice(1, 7))).toEqual([[new URL(t.baseUrl).host, '2', '1', '1', '1', '2']]);

    stream.close();
    await alice.close();
    await vi.waitFor(() => expect(t.app.service.figures.counts().connections).toBe(0));
    const after = await admin(['stats', ...args]);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toMatch(/^connections by transport\s+0 websocket, 0 sse$/m);
  });

  it('prints usage with --help and refuses unknown commands and options', { timeout: 30_000 }, async () => {
    const [help, bogus, badOption, badOrder] = await Promise.all([
      admin(['--help']),
      admin(['bogus', '--token', 'x']),
      admin(['rooms', '--frist', '3', '--token', 'x']),
      admin(['rooms', '--order', 'size', '--token', 'x']),
    ]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('usage: npm run admin -- <command> [options]');
    for (const command of ['stats', 'rooms', 'room <conversationId>', 'user <userId>', 'pending-acks', 'nodes', '--url', '--token', 'ADMIN_TOKEN']) expect(help.stdout).toContain(command);
    for (const [res, message] of [
      [bogus, 'unknown command: bogus'],
      [badOption, "Unknown option '--frist'"],
      [badOrder, '--order: one of members, activity, messages, id'],
    ] as const) {
      expect(res.code, res.stderr).toBe(2);
      expect(res.stderr.split('\n')).toHaveLength(2); // one line and its newline
      expect(res.stderr).toContain(message);
    }
  });

  it('formats tables: header, rule, numbers right-aligned, missing values as "-"', () => {
    const table = formatTable(
      [
        { id: 'a', n: 5, ok: true, note: null },
        { id: 'longer-id', n: 123, ok: false, note: 'x' },
      ],
      [
        { header: 'ID', value: (r) => r.id },
        { header: 'N', value: (r) => r.n },
        { header: 'OK', value: (r) => r.ok },
        { header: 'NOTE', value: (r) => r.note },
      ],
    );
    expect(table.split('\n')).toEqual([
      'ID           N  OK   NOTE',
      '─────────  ───  ───  ────',
      'a            5  yes  -',
      'longer-id  123  no   x',
    ]);
    expect(formatPairs([['rooms', 3], ['memory', '1.0 MiB']])).toBe('rooms   3\nmemory  1.0 MiB');
  });
});
