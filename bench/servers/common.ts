/**
 * What every target server answers over IPC: CPU used over a measured window
 * (`process.cpuUsage()` deltas), memory after a full GC (run with --expose-gc), and its own
 * count of live connections.
 */
import { emitEvent, serveRequests } from '../lib/ipc.ts';
import type { CpuSample, MemorySample } from '../lib/types.ts';

export function serveBenchControl(port: number, connections: () => number): void {
  let mark: { usage: NodeJS.CpuUsage; at: bigint } | null = null;
  serveRequests(async (cmd) => {
    switch (cmd) {
      case 'cpuMark':
        mark = { usage: process.cpuUsage(), at: process.hrtime.bigint() };
        return true;
      case 'cpu': {
        if (!mark) throw new Error('cpu without cpuMark');
        const d = process.cpuUsage(mark.usage);
        return { userUs: d.user, systemUs: d.system, wallUs: Number(process.hrtime.bigint() - mark.at) / 1000 } satisfies CpuSample;
      }
      case 'memory': {
        const gc = (globalThis as { gc?: () => void }).gc;
        if (!gc) throw new Error('run the server with --expose-gc');
        // Twice, with a turn in between, so finalizers and weak callbacks settle.
        gc();
        await new Promise((r) => setImmediate(r));
        gc();
        const m = process.memoryUsage();
        return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers } satisfies MemorySample;
      }
      case 'connections':
        return connections();
      default:
        throw new Error(`unknown command ${cmd}`);
    }
  });
  emitEvent('ready', { port });
}
