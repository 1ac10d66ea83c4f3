import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { createLogger } from '../../src/logger.ts';
import { MemoryBroker } from '../../src/broker/memory-broker.ts';
import { DomainError } from '../../src/domain/errors.ts';
import type { RoomEvent } from '../../src/domain/types.ts';
import { parseEventId } from '../../src/history/event-id.ts';
import { adminToken, gql } from '../support/graphql.ts';
import { frameErrorCode, joined, rawClient } from '../support/helpers.ts';
import { startTestApp } from '../support/start-test-app.ts';
import { recordRaw, waitUntil } from '../support/wait.ts';

/**
 * Issue #11, findings 2–4: a poison event (data no client can be sent), batches without a bound
 * on the WebSocket, unauthenticated sockets that stay open.
 */

const seqOf = (id: string) => parseEventId(id)!.seq;

const POISONS: Array<{ what: string; data: unknown; path: string }> = [
  { what: 'a key named constructor', data: { constructor: { x: 1 } }, path: 'data.constructor' },
  { what: 'a key named prototype', data: { a: [{ prototype: 1 }] }, path: 'data.a[0].prototype' },
  { what: 'a key named __proto__ (as JSON.parse makes it)', data: JSON.parse('{"a":{"__proto__":{"polluted":true}}}') as unknown, path: 'data.a.__proto__' },
];

describe('issue #11: nothing is stored that cannot be delivered', () => {
  it('GraphQL broadcastSystemEvent / updateConversation with a forbidden key or deep nesting: BAD_USER_INPUT naming it, nothing stored or sent; live and resume paths stay whole', async () => {
    const logged: Array<{ level: number; msg: string }> = [];
    const logger = createLogger('trace', new Writable({ write: (chunk: Buffer, _encoding, done) => (logged.push(JSON.parse(chunk.toString()) as (typeof logged)[number]), done()) }));
    await using t = await startTestApp({ logger });
    const token = await adminToken(t);
    const bob = await t.client('bob');
    const raw = recordRaw(bob, 'poison');
    await raw.started();
    await waitUntil(() => raw.positions.length === 1);
    const before = await t.app.broadcastSystemEvent('poison', 'before', { ok: 1 });
    await raw.until((e) => e.event.type === 'system' && e.event.event === 'before');

    for (const { data, path } of POISONS) {
      const system = await gql(t, 'mutation($d: JSON) { broadcastSystemEvent(conversationId: "poison", event: "x", data: $d) }', { token, variables: { d: data } });
      expect(system.status).toBe(400);
      expect(system.errors[0]).toMatchObject({ message: `${path}: keys named __proto__, constructor or prototype are not allowed`, extensions: { code: 'BAD_USER_INPUT' } });
      const update = await gql(t, 'mutation($c: JSON!) { updateConversation(conversationId: "poison", changes: $c) }', { token, variables: { c: { title: 't', nested: data } } });
      expect(update.errors[0]).toMatchObject({ message: `changes.nested${path.slice('data'.length)}: keys named __proto__, constructor or prototype are not allowed`, extensions: { code: 'BAD_USER_INPUT' } });
    }
    // Nesting deeper than the limit (the review used 10,000 levels), through the embedding API.
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i += 1) deep = { d: deep };
    const refused = await t.app.updateConversation('poison', { deep }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(DomainError);
    expect((refused as DomainError).message).toMatch(/^changes\.deep(\.d)+: nested deeper than 32 levels$/);

    // Nothing took a sequence number: the next event follows the last good one directly.
    const after = await t.app.broadcastSystemEvent('poison', 'after', { constructorName: 'fine', list: [1, 2] });
    expect(seqOf(after.eventId)).toBe(seqOf(before.eventId) + 1);
    await raw.until((e) => e.event.type === 'system' && e.event.event === 'after');
    expect(raw.events.map((e) => e.event.type === 'system' && e.event.event)).toEqual(['before', 'after']);

    // A resume from before them replays what was stored, and the typed client stays joined.
    const carol = await t.client('carol');
    const events: RoomEvent[] = [];
    const resumed = carol.join('poison', { lastEventId: before.eventId, onEvent: (e) => events.push(e) });
    await resumed.started;
    await waitUntil(() => events.some((e) => e.type === 'system'), { what: 'the replay' });
    expect(events.filter((e) => e.type === 'system').map((e) => (e.type === 'system' ? e.data : null))).toEqual([{ constructorName: 'fine', list: [1, 2] }]);
    await t.app.broadcastSystemEvent('poison', 'live', null);
    await waitUntil(() => events.some((e) => e.type === 'system' && e.event === 'live'), { what: 'a live event after the replay' });
    // A refusal is the caller's, not our failure: nothing at error level, no stack in the log.
    expect(logged.filter((l) => l.level >= 50)).toEqual([]);
    expect(logged.filter((l) => l.msg === 'admin request refused').length).toBeGreaterThan(0);
  });

  it('safety net: an event whose frame cannot be built (published by a node without these checks) sends resync, live and on resume, and the stream goes on', async () => {
    // The broker seam is where events from other nodes come in; publish through it directly.
    const broker = new MemoryBroker({ historySize: 64, historyTtlMs: 60_000 });
    await using t = await startTestApp({ broker });
    const bob = await t.client('bob');
    const raw = recordRaw(bob, 'net');
    await raw.started();
    await waitUntil(() => raw.positions.length === 1);
    const first = await t.app.broadcastSystemEvent('net', 'first', null);
    await broker.publish('net', { type: 'system', conversationId: 'net', at: new Date(), event: 'poison', data: { constructor: 1 } }, { store: true });
    await t.app.broadcastSystemEvent('net', 'next', null);
    await raw.until((e) => e.event.type === 'system' && e.event.event === 'next');
    const kinds = raw.events.map((e) => (e.event.type === 'system' ? e.event.event : e.event.type === 'resync' ? `resync:${e.event.reason}` : e.event.type));
    expect(kinds).toEqual(['first', 'resync:event_undeliverable', 'next']);
    expect(t.app.service.stats.undeliverable).toBe(1);

    // The replay path: a resume from before the poison is told the same and goes on.
    const carol = await t.client('carol');
    const resumed = recordRaw(carol, 'net', first.eventId);
    await resumed.until((e) => e.event.type === 'system' && e.event.event === 'next');
    expect(resumed.errors).toEqual([]);
    expect(resumed.events.map((e) => (e.event.type === 'resync' ? e.event.reason : e.event.type))).toEqual(['event_undeliverable', 'system']);
  });
});

describe('issue #11: unauthenticated sockets time out, are counted and capped', () => {
  it('a ?connectionParams=1 socket that never sends them is refused after AUTH_TIMEOUT_MS and closed 4501; the node keeps at most MAX_UNAUTHENTICATED_SOCKETS (503 beyond); /metrics counts them', async () => {
    await using t = await startTestApp({ authTimeoutMs: 400, rejectLingerMs: 100, maxUnauthenticatedSockets: 5 });
    const gauge = async () => Number(/^realtime_unauthenticated_sockets (\d+)$/m.exec(await (await fetch(`${t.baseUrl}/metrics`)).text())?.[1]);
    // Silent sockets that answer PING, as in the review.
    const silent = Array.from({ length: 5 }, () => rawClient(`${t.wsUrl}?connectionParams=1`));
    await Promise.all(silent.map((s) => s.opened));
    expect(await gauge()).toBe(5);
    const sixth = new WebSocket(`${t.wsUrl}?connectionParams=1`);
    const status = await new Promise<number>((resolve) => {
      sixth.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      sixth.once('open', () => resolve(101));
      sixth.once('error', () => undefined);
    });
    expect(status).toBe(503);

    const closes = await Promise.all(silent.map((s) => s.closed));
    expect(closes.map((c) => c.code)).toEqual([4501, 4501, 4501, 4501, 4501]);
    for (const s of silent) expect(s.frames.some((f) => frameErrorCode(f) === 'UNAUTHORIZED')).toBe(true);
    expect(silent[0]!.frames.find((f) => frameErrorCode(f) === 'UNAUTHORIZED')).toMatchObject({ error: { json: { message: 'no connectionParams within 400 ms' } } });
    await expect.poll(gauge).toBe(0);

    // Room again: a real client connects and works.
    const alice = await t.client('alice');
    await joined(alice, 'after');
    expect(await gauge()).toBe(0);
  });
});

describe('issue #11: a WebSocket frame carries at most MAX_WS_BATCH calls', () => {
  it('a frame over the limit runs none of its calls and answers each PAYLOAD_TOO_LARGE naming the limit; one at the limit runs all', async () => {
    await using t = await startTestApp({ maxWsBatch: 10 });
    const bob = await t.client('bob');
    const room = await joined(bob, 'batch');
    const seen: string[] = [];
    room.on('message', (e) => seen.push(e.type === 'message' ? e.message.body : ''));
    const socket = rawClient(`${t.wsUrl}?connectionParams=1`);
    await socket.opened;
    socket.send({ method: 'connectionParams', data: { token: await t.token('alice') } });
    const sends = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => ({ id: from + i, method: 'mutation', params: { path: 'message.send', input: { json: { conversationId: 'batch', body: `b${from + i}` } } } }));

    socket.send(sends(100, 11));
    await waitUntil(() => socket.frames.filter((f) => (f as { id?: number }).id !== undefined && (f as { id: number }).id >= 100).length === 11, { what: '11 answers' });
    const answers = socket.frames.filter((f) => ((f as { id?: number }).id ?? 0) >= 100);
    for (const answer of answers) {
      expect(frameErrorCode(answer)).toBe('PAYLOAD_TOO_LARGE');
      expect(answer).toMatchObject({ error: { json: { message: 'a frame may carry at most 10 calls (MAX_WS_BATCH); this one has 11: split it' } } });
    }

    socket.send(sends(200, 10));
    await waitUntil(() => seen.length === 10, { what: 'the 10 sends of the frame at the limit' });
    expect(seen).toEqual(Array.from({ length: 10 }, (_, i) => `b${200 + i}`));
    socket.ws.close();
  });
});

describe('issue #11: starting subscriptions is rate-limited per user', () => {
  it('beyond the burst a start is refused with TOO_MANY_REQUESTS and retryAfterMs; the typed client waits it out and every join ends live', async () => {
    await using t = await startTestApp({ subscribeRatePerSec: 20, subscribeRateBurst: 3 });
    // Raw: the fourth start in a burst is refused, saying how long to wait.
    const socket = rawClient(`${t.wsUrl}?connectionParams=1`);
    await socket.opened;
    socket.send({ method: 'connectionParams', data: { token: await t.token('mallory') } });
    socket.send(Array.from({ length: 4 }, (_, i) => ({ id: i + 1, method: 'subscription', params: { path: 'conversation.events', input: { json: { conversationId: `r-${i}` } } } })));
    const refusal = (await socket.waitFor((f) => frameErrorCode(f) !== undefined)) as { id: number; error: { json: { message: string; data: { retryAfterMs: number } } } };
    expect(refusal.id).toBe(4);
    expect(frameErrorCode(refusal)).toBe('TOO_MANY_REQUESTS');
    expect(refusal.error.json.message).toMatch(/^too many subscriptions started; retry in \d+ ms \(SUBSCRIBE_RATE_PER_SEC\)$/);
    expect(refusal.error.json.data.retryAfterMs).toBeGreaterThan(0);
    socket.ws.close();

    // Typed client: ten joins at once on another user's connection all end live.
    const alice = await t.client('alice');
    const joins = Array.from({ length: 10 }, (_, i) => alice.join(`a-${i}`));
    await Promise.all(joins.map((j) => j.started));
    const heard = joins.map((j, i) => j.next('message', (e) => e.type === 'message' && e.message.body === `hello ${i}`));
    const bob = await t.client('bob');
    for (let i = 0; i < 10; i += 1) await bob.send(`a-${i}`, `hello ${i}`);
    await Promise.all(heard);
  });
});

describe('issue #11: frames the WebSocket layer refuses are logged at warn, once a minute per kind, without a stack', () => {
  it('an oversized first frame (1009) and invalid UTF-8 (1007), twice each, before any token: two warn lines, nothing at error', async () => {
    const lines: Array<{ level: number; msg: string; code?: string }> = [];
    const raw: string[] = [];
    const logger = createLogger(
      'trace',
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          raw.push(chunk.toString());
          lines.push(JSON.parse(chunk.toString()) as (typeof lines)[number]);
          done();
        },
      }),
    );
    await using t = await startTestApp({ logger, maxFrameBytes: 4096 });
    const closeCodes: number[] = [];
    for (let round = 0; round < 2; round += 1) {
      for (const frame of [Buffer.alloc(8192, 0x61), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]) {
        const ws = new WebSocket(`${t.wsUrl}?connectionParams=1`);
        await new Promise((resolve) => ws.once('open', resolve));
        ws.on('error', () => undefined);
        const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)));
        ws.send(frame, { binary: false });
        closeCodes.push(await closed);
      }
    }
    expect(closeCodes).toEqual([1009, 1007, 1009, 1007]);
    const warned = lines.filter((l) => l.msg === 'malformed WebSocket frame: socket closed');
    expect(warned.map((l) => [l.level, l.code])).toEqual([
      [40, 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'],
      [40, 'WS_ERR_INVALID_UTF8'],
    ]);
    expect(lines.filter((l) => l.level >= 50)).toEqual([]);
    expect(raw.join('')).not.toMatch(/"stack"|\\n\s+at /);
  });
});
