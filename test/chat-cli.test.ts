import { describe, expect, it } from 'vitest';
import { startTestApp } from './support/start-test-app.ts';
import { runScript } from './support/script-process.ts';
import { startTcpProxy } from './support/tcp-proxy.ts';
import type { RoomEvent } from '../clients/chat/index.ts';

/**
 * The terminal chat (clients/cli/chat.ts) as its own process, its input piped: the connection
 * state it shows, slash commands that are never sent, display names, and delivery reports
 * marked by their outcome (a failed one never with ✓).
 */

const CLI = 'clients/cli/chat.ts';

function lines(stdout: string): string[] {
  return stdout.split('\n');
}

describe('terminal chat', () => {
  it('commands are not messages, names are display names, each report outcome has its own mark', { timeout: 20_000 }, async () => {
    await using t = await startTestApp({ ackTimeoutMs: 400 });
    const bob = await t.client('bob', { name: 'Bob' });
    const bobRoom = bob.join('lobby');
    await bobRoom.started;
    const received: string[] = [];
    bobRoom.on('message', (event) => received.push(event.message.body));

    using cli = runScript(CLI, ['--url', t.wsUrl, '--room', 'lobby', '--token', await t.token('alice', { name: 'Alice' })], {});
    const write = (line: string) => cli.child.stdin.write(`${line}\n`);
    const out = () => cli.output.stdout;
    const has = (text: string) => () => out().includes(text);

    await cli.until(has('* joined lobby as Alice'));
    expect(out()).toContain('* connected · WebSocket\n');
    expect(out()).toContain('* in lobby: Bob\n'); // the snapshot's display name, not "bob"

    // Commands: help, an unknown one, a bare /ack — none of them reaches the room; then a message does.
    write('/help');
    write('/nope with words');
    write('/ack');
    write('/');
    write('hello');
    await bobRoom.next('message', (e) => e.message.body === 'hello');
    expect(received).toEqual(['hello']);
    await cli.until(() => lines(out()).includes('! unknown command / (not sent) — /help lists the commands'));
    expect(out()).toContain('    /ack <text>   send <text> and show its delivery report');
    expect(out()).toContain('! unknown command /nope (not sent) — /help lists the commands\n');
    expect(out()).toContain('! /ack needs a message: /ack <text>\n');

    // Bob by his name everywhere: typing, messages, the report, leaving.
    bob.setTyping('lobby', true);
    await cli.until(has('  Bob is typing…\n'));
    await bob.send('lobby', 'hi alice');
    await cli.until(has('] Bob: hi alice\n'));

    // Delivered (Bob acks by himself).
    write('/ack one');
    await cli.until(has('  ✓ delivered: 1/1 acked in '));
    expect(out()).toMatch(/ {2}✓ delivered: 1\/1 acked in \d+ ms \(Bob\)\n/);

    // Partial: carol (no name in her token) never acks.
    const carol = await t.client('carol', { autoAck: false });
    await carol.join('lobby').started;
    await cli.until(has('* carol joined\n'));
    write('/ack two');
    await cli.until(has('  ◐ partial: 1/2 acked in '));
    expect(out()).toMatch(/ {2}◐ partial: 1\/2 acked in \d+ ms \(Bob\); missing carol\n/);

    // Failed: nobody else here — a report that arrives before send() resolves is still shown, once.
    await carol.close();
    await bob.close();
    await cli.until(has('* Bob left\n'));
    write('/ack alone');
    await cli.until(has('  ✗ failed: nobody else was here to deliver to\n'));
    write('/who');
    await cli.until(has('  Alice (1 connection)\n'));

    // Every report exactly once; none of them but the delivered one with ✓.
    write('/quit');
    const { code, stdout, stderr } = await cli.exited(5000);
    expect(code, stderr).toBe(0);
    const reports = lines(stdout).filter((l) => /^ {2}(✓|◐|✗) /.test(l));
    expect(reports.map((l) => l.split(':')[0])).toEqual(['  ✓ delivered', '  ◐ partial', '  ✗ failed']);
    expect(stdout).not.toMatch(/\bbob\b/); // never the user id once the name is known
  });

  it('a bad --url is one line saying what a good one looks like, exit 2, no stack trace', async () => {
    using cli = runScript(CLI, ['--url', 'localhost:3000', '--room', 'lobby', '--token', 'whatever'], {});
    const { code, stdout, stderr } = await cli.exited();
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr.trim().split('\n')).toEqual([expect.stringMatching(/^chat: .*"localhost:3000" has no ws\/wss\/http\/https scheme; use one like ws:\/\/localhost:3000\/trpc/)]);
  });

  it('shows the connection state: connecting, connected, reconnecting after a cut, connected again', { timeout: 20_000 }, async () => {
    await using t = await startTestApp();
    await using proxy = await startTcpProxy({ port: Number(new URL(t.baseUrl).port) });
    const bob = await t.client('bob', { name: 'Bob' });
    const bobRoom = bob.join('lobby');
    await bobRoom.started;
    using cli = runScript(CLI, ['--url', `ws://127.0.0.1:${proxy.port}/trpc`, '--room', 'lobby', '--token', await t.token('alice', { name: 'Alice' })], {});
    const out = () => cli.output.stdout;
    await cli.until(() => out().includes('* joined lobby as Alice'));
    expect(lines(out()).filter((l) => l.startsWith('* conn'))).toEqual([`* connecting to ws://127.0.0.1:${proxy.port}/trpc…`, '* connected · WebSocket']);

    expect(proxy.offline()).toBeGreaterThan(0);
    await cli.until(() => /\* reconnecting…/.test(out()));
    const afterCut = out().length;
    proxy.online();
    await cli.until(() => out().slice(afterCut).includes('* connected · WebSocket\n'));

    // And the chat works again: a message sent meanwhile by Bob is there, a new line goes out.
    const seen: RoomEvent[] = [];
    bobRoom.on('message', (e) => seen.push(e));
    cli.child.stdin.write('back\n');
    await bobRoom.next('message', (e) => e.message.body === 'back');
    expect(seen.map((e) => (e.type === 'message' ? e.message.body : e.type))).toEqual(['back']);
    cli.child.stdin.end();
    expect((await cli.exited(5000)).code).toBe(0);
  });
});
