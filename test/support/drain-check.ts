import { execFileSync } from 'node:child_process';
import { expect } from 'vitest';
import { rawClient } from './helpers.ts';
import type { runProcess } from './script-process.ts';

type Proc = ReturnType<typeof runProcess>;

interface LogLine {
  msg?: string;
  [key: string]: unknown;
}

const logLines = (stdout: string): LogLine[] =>
  stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);

/** The port from the server's 'listening' log line, once it is there. */
export async function listeningPort(proc: Proc): Promise<number> {
  let port: number | undefined;
  await proc.until(() => (port = logLines(proc.output.stdout).find((l) => l.msg === 'listening')?.port as number | undefined) !== undefined);
  return port!;
}

/**
 * What a service manager's SIGTERM to `signalled` (the outermost process: npm, or node itself)
 * must do to a running server with a subscriber: the server logs the signal and drains — the
 * subscriber's socket is closed with 4000 ("reconnect elsewhere and resume"), not dropped — and
 * then every process of the group has exited, with 0.
 */
export async function expectSigtermDrains(proc: Proc, token: string): Promise<void> {
  const port = await listeningPort(proc);
  const raw = rawClient(`ws://127.0.0.1:${port}/trpc?connectionParams=1`);
  await raw.opened;
  raw.send({ method: 'connectionParams', data: { token } });
  raw.send({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: 'signals' } } } });
  await raw.waitFor((f) => (f as { result?: { type?: string } }).result?.type === 'started', 10_000);

  const group = proc.child.pid!;
  process.kill(group, 'SIGTERM');
  const closed = await Promise.race([
    raw.closed,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the subscriber was not closed within 15 s of SIGTERM: the signal did not reach the server\n${proc.output.stdout}`)), 15_000)),
  ]);
  expect(closed.code).toBe(4000);
  expect(closed.reason).toMatch(/^server shutting down/);
  const { code } = await proc.exited();
  expect(code).toBe(0);
  const lines = logLines(proc.output.stdout);
  expect(lines.find((l) => l.msg === 'stopping')).toMatchObject({ signal: 'SIGTERM' });
  expect(lines.find((l) => l.msg === 'draining')).toMatchObject({ connections: 1 });
  expect(lines.at(-1)?.msg).toBe('closed');
  // Nothing left behind: no process of the group (npm's children included) is still alive —
  // given the moment a parent needs to reap its last child.
  const groupAlive = () => {
    try {
      process.kill(-group, 0);
      return true;
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 5000;
  while (groupAlive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(groupAlive() ? execFileSync('ps', ['-o', 'pid,stat,args', '-g', String(group)]).toString() : 'none').toBe('none');
}
