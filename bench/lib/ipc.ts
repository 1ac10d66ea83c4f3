/**
 * Request/response over the Node IPC channel between the orchestrator and its children (the
 * target server and the load generators). Requests carry an `rid`; the child answers with the
 * same `rid`. Children may also push unsolicited `{ event }` messages (readiness, progress).
 */
import type { ChildProcess } from 'node:child_process';

export interface IpcRequest {
  rid: number;
  cmd: string;
  args?: unknown;
}

export interface IpcResponse {
  rid: number;
  ok: boolean;
  result?: unknown;
  error?: string;
}

export interface IpcEvent {
  event: string;
  data?: unknown;
}

type Handler = (cmd: string, args: unknown) => unknown;

/** Child side: answers requests with `handler`; exits when the parent goes away. */
export function serveRequests(handler: Handler): void {
  if (!process.send) throw new Error('this script runs as a child of bench/index.ts (it needs an IPC channel)');
  process.on('message', (message: IpcRequest) => {
    if (typeof message !== 'object' || message === null || typeof message.rid !== 'number') return;
    Promise.resolve()
      .then(() => handler(message.cmd, message.args))
      .then(
        (result) => send({ rid: message.rid, ok: true, result }),
        (error: unknown) => send({ rid: message.rid, ok: false, error: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
      );
  });
  process.on('disconnect', () => process.exit(0));
}

/** Child side: pushes an event to the parent. */
export function emitEvent(event: string, data?: unknown): void {
  send({ event, data } satisfies IpcEvent);
}

function send(message: IpcResponse | IpcEvent): void {
  if (process.connected) process.send?.(message);
}

/** Parent side: a child with an IPC channel, spoken to by request/response. */
export class IpcChild {
  private nextRid = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private readonly listeners = new Set<(e: IpcEvent) => void>();
  private exited: string | null = null;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (message: IpcResponse | IpcEvent) => {
      if ('rid' in message) {
        const w = this.waiting.get(message.rid);
        if (!w) return;
        this.waiting.delete(message.rid);
        clearTimeout(w.timer);
        if (message.ok) w.resolve(message.result);
        else w.reject(new Error(`${name}: ${message.error ?? 'failed'}`));
      } else {
        for (const l of this.listeners) l(message);
      }
    });
    child.on('exit', (code, signal) => {
      this.exited = `${name} exited (${signal ?? code})`;
      for (const w of this.waiting.values()) {
        clearTimeout(w.timer);
        w.reject(new Error(this.exited));
      }
      this.waiting.clear();
    });
  }

  request<T>(cmd: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    const rid = this.nextRid++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(rid);
        reject(new Error(`${this.name}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(rid, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.child.send({ rid, cmd, args } satisfies IpcRequest);
    });
  }

  onEvent(listener: (e: IpcEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves with the data of the next `event` of that name. */
  waitEvent<T>(event: string, timeoutMs = 60_000): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const onExit = () => {
        clearTimeout(timer);
        off();
        reject(new Error(this.exited ?? `${this.name} exited`));
      };
      const timer = setTimeout(() => {
        off();
        this.child.off('exit', onExit);
        reject(new Error(`${this.name}: no ${event} within ${timeoutMs} ms`));
      }, timeoutMs);
      const off = this.onEvent((e) => {
        if (e.event !== event) return;
        clearTimeout(timer);
        off();
        this.child.off('exit', onExit);
        resolve(e.data as T);
      });
      this.child.once('exit', onExit);
    });
  }

  kill(): void {
    if (this.exited !== null || this.child.exitCode !== null) return;
    // A profiled server must exit by itself to write its profile (bench/servers: SIGTERM → exit).
    this.child.kill(process.env.BENCH_SERVER_PROF_DIR && this.name.startsWith('server(') ? 'SIGTERM' : 'SIGKILL');
  }

  get alive(): boolean {
    return this.exited === null;
  }
}
