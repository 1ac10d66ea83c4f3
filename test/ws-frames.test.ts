import { transformTRPCResponse } from '@trpc/server';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import type { RoomEnvelope } from '../src/domain/types.ts';
import { safeSuperjson } from '../src/transport/safe-superjson.ts';
import { EventFrames, frameTarget, textFrame, textFrameOf } from '../src/transport/ws/frames.ts';
import { Replies } from '../src/transport/ws/protocol.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * The WebSocket transport builds its data frames once per event and writes them itself
 * (src/transport/ws/frames.ts, writer.ts). These tests hold it to tRPC's own response format (its
 * public `transformTRPCResponse`) and to the stock client.
 */
describe('WebSocket frames', () => {
  const frames = new EventFrames();
  const dataFrame = (e: RoomEnvelope, target: ReturnType<typeof frameTarget>) => frames.dataFrame(e, target, true);
  const envelope: RoomEnvelope = {
    id: 'abc:000000000007',
    audience: {},
    event: {
      type: 'message',
      conversationId: 'r1',
      at: new Date('2026-01-02T03:04:05.006Z'),
      message: { id: 'm1', senderId: 'alice', body: 'héllo "quoted" \\ \u2028', sentAt: new Date('2026-01-02T03:04:05.006Z'), ackRequired: true },
    },
  };

  it('builds exactly the frame tRPC\'s server sends for a tracked event', async () => {
    await using t = await startTestApp();
    const config = t.app.router._def._config;
    for (const target of [frameTarget(1, false), frameTarget('sub-7', true)]) {
      const adapterFrame = JSON.stringify(
        transformTRPCResponse(config, {
          id: target.id,
          ...(target.jsonrpc && { jsonrpc: '2.0' as const }),
          result: { type: 'data', id: envelope.id, data: { id: envelope.id, data: envelope.event } },
        }),
      );
      const ours = payloadOf(dataFrame(envelope, target));
      expect(JSON.parse(ours)).toEqual(JSON.parse(adapterFrame));
    }
  });

  it('writes call results exactly as tRPC would through superjson, plain JSON or not', async () => {
    await using t = await startTestApp();
    const config = t.app.router._def._config;
    expect(config.transformer.output.serialize).toBe(safeSuperjson.serialize); // so the plain-JSON path is taken
    const replies = new Replies(config, true);
    const values: unknown[] = [
      { accepted: true, duplicate: false, late: false },
      { messageId: 'm', eventId: 'e:1', sentAt: new Date(0), expected: ['bob'] },
      [1, 'two', null, { three: [3] }],
      { a: undefined, b: -0, c: Number.NaN, d: 1e21 },
      null,
      'text',
      { members: [{ userId: 'u', joinedAt: new Date(5), typing: false }] },
    ];
    for (const target of [frameTarget(7, false), frameTarget('s-1', true)]) {
      for (const data of values) {
        const theirs = JSON.stringify(transformTRPCResponse(config, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'data', data } }));
        expect(payloadOf(replies.result(target, data))).toBe(theirs);
      }
      // What superjson refuses is refused alike (never written as plain JSON).
      expect(() => replies.result(target, JSON.parse('{"__proto__": {"x": 1}}'))).toThrow(/__proto__/);
      expect(JSON.parse(payloadOf(replies.started(target)))).toEqual(JSON.parse(JSON.stringify(transformTRPCResponse(config, { id: target.id, ...(target.jsonrpc && { jsonrpc: '2.0' as const }), result: { type: 'started' } }))));
    }
  });

  it('frames payloads per RFC 6455 for every length encoding', () => {
    for (const length of [0, 125, 126, 65_535, 65_536]) {
      const frame = textFrame(Buffer.alloc(length, 'a'));
      expect(frame[0]).toBe(0x81); // FIN, text
      expect(payloadOf(frame)).toHaveLength(length);
      const text = '€'.repeat(Math.floor(length / 3)) + 'a'.repeat(length % 3);
      expect(payloadOf(textFrameOf(text))).toBe(text);
    }
  });

  it('builds each frame once per event and subscription id; events of one stream only are not cached', () => {
    const a = dataFrame(envelope, frameTarget(1, false));
    expect(dataFrame(envelope, frameTarget(1, false))).toBe(a);
    expect(dataFrame(envelope, frameTarget('1', false))).not.toBe(a);
    const own = frames.dataFrame(envelope, frameTarget(1, false), false);
    expect(own).not.toBe(a);
    expect(own.equals(a)).toBe(true);
  });

  it('keeps two servers in one process apart: each has its own frames', async () => {
    await using one = await startTestApp();
    await using two = await startTestApp();
    const [a1, b1, a2, b2] = await Promise.all([one.client('alice'), one.client('bob'), two.client('alice'), two.client('bob')]);
    const r1 = b1.join('same');
    const r2 = b2.join('same');
    await Promise.all([r1.started, r2.started]);
    const got1 = r1.next('message');
    const got2 = r2.next('message');
    await Promise.all([a1.send('same', 'on one'), a2.send('same', 'on two')]);
    expect((await got1).message.body).toBe('on one');
    expect((await got2).message.body).toBe('on two');
  });

  it('is what stock @trpc/client subscriptions get, with Dates revived and text frames on the wire', async () => {
    await using t = await startTestApp();
    const alice = await t.client('alice');
    const bob = await t.client('bob');
    const room = bob.join('fast');
    await room.started;
    const got = room.next('message');
    await alice.send('fast', 'over the fast path');
    const event = await got;
    expect(event.message.body).toBe('over the fast path');
    expect(event.message.sentAt).toBeInstanceOf(Date);

    // A raw socket sees a text frame whose JSON parses to the tracked-data shape.
    const token = await t.token('carol');
    const raw = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    const received: Array<{ data: string; isBinary: boolean }> = [];
    raw.on('message', (data: Buffer, isBinary) => received.push({ data: data.toString('utf8'), isBinary }));
    await new Promise((resolve) => raw.once('open', resolve));
    raw.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
    raw.send(JSON.stringify({ id: 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: 'fast' } } } }));
    await vi.waitFor(() => expect(received.some((f) => f.data.includes('"started"'))).toBe(true));
    // The first data frame is the stream's position.
    await vi.waitFor(() => expect(received.some((f) => f.data.includes('"subscribed"'))).toBe(true));
    await alice.send('fast', 'to raw');
    await vi.waitFor(() => expect(received.some((f) => f.data.includes('to raw'))).toBe(true));
    const frame = received.find((f) => f.data.includes('to raw'))!;
    expect(frame.isBinary).toBe(false);
    const parsed = JSON.parse(frame.data) as { id: number; result: { type: string; id: string; data: { json: { id: string; data: { message: { body: string } } } } } };
    expect(parsed.id).toBe(1);
    expect(parsed.result.type).toBe('data');
    expect(parsed.result.id).toBe(parsed.result.data.json.id);
    expect(parsed.result.data.json.data.message.body).toBe('to raw');
    raw.close();
  });
});

/** The payload of one unmasked server frame (RFC 6455 §5.2). */
function payloadOf(frame: Buffer): string {
  const short = frame[1]! & 0x7f;
  const offset = short < 126 ? 2 : short === 126 ? 4 : 10;
  const length = short < 126 ? short : short === 126 ? frame.readUInt16BE(2) : Number(frame.readBigUInt64BE(2));
  expect(frame.length).toBe(offset + length);
  return frame.subarray(offset).toString('utf8');
}
