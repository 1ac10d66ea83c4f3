import { randomUUID } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { MemoryBroker } from './memory-broker.ts';
import type { RoomEvent } from '../domain/types.ts';

/**
 * Issue 16, item 3: 100 active rooms with full default history (HISTORY_SIZE 256) of messages
 * with 200-byte bodies fit in 10 MB of memory. Filled through the broker's publish — the path
 * every event of a single node takes — with messages shaped as the service makes them (a UUID,
 * the sender, one Date for `at` and `sentAt`, the sending connection left out of the audience),
 * and measured after a full GC: the V8 heap plus the memory of ArrayBuffers (Buffers live
 * outside the heap, and a history kept in them must count them too).
 */

const ROOMS = 100;
const EVENTS = 256;
const BODY_BYTES = 200;
const BUDGET_BYTES = 10_000_000;

/** `global.gc` without --expose-gc for the whole suite (as test/fuzz-protocol.test.ts does). */
function exposeGc(): () => void {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (existing) return existing;
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

async function settledMemory(gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i += 1) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  const { heapUsed, arrayBuffers } = process.memoryUsage();
  return heapUsed + arrayBuffers;
}

function message(roomId: string, sender: string, n: number): RoomEvent {
  const sentAt = new Date();
  // A distinct body per message, as bodies parsed from distinct requests are.
  const body = `${roomId}/${n} `.padEnd(BODY_BYTES, 'lorem ipsum dolor sit amet ');
  return { type: 'message', conversationId: roomId, at: sentAt, message: { id: randomUUID(), senderId: sender, body, sentAt, ackRequired: false } };
}

describe('history memory (issue 16)', () => {
  it(`${ROOMS} active rooms × ${EVENTS} messages of ${BODY_BYTES}-byte bodies stay within 10 MB`, async () => {
    const gc = exposeGc();
    // The same code run once before the baseline: what it compiles is not the history's memory.
    const warmUp = new MemoryBroker({ historySize: EVENTS, historyTtlMs: 300_000 });
    for (let n = 0; n < EVENTS + 10; n += 1) await warmUp.publish('warm-up', message('warm-up', 'user', n), { audience: { exceptConnection: 'conn' }, store: true });
    warmUp.history.readSince('warm-up', warmUp.history.head('warm-up'));
    await warmUp.close();
    const broker = new MemoryBroker({ historySize: EVENTS, historyTtlMs: 300_000 });
    const rooms = Array.from({ length: ROOMS }, (_, r) => `room-${r}`);
    const unsubscribe = rooms.map((roomId) => broker.subscribe(roomId, () => undefined));
    for (const roomId of rooms) broker.roomActive(roomId);
    const before = await settledMemory(gc);
    for (let n = 0; n < EVENTS; n += 1) {
      for (const [r, roomId] of rooms.entries()) {
        await broker.publish(roomId, message(roomId, `user-${r}`, n), { audience: { exceptConnection: `conn-${r}` }, store: true });
      }
    }
    const after = await settledMemory(gc);
    const used = after - before;
    expect(broker.history.counts().events).toBe(ROOMS * EVENTS);
    console.log(`history of ${ROOMS} rooms × ${EVENTS} messages (${BODY_BYTES}-byte bodies): ${(used / 1e6).toFixed(2)} MB, ${Math.round(used / (ROOMS * EVENTS))} B per event`);
    expect(used).toBeLessThanOrEqual(BUDGET_BYTES);
    for (const off of unsubscribe) off();
    await broker.close();
  });
});
