import type { Socket } from 'node:net';
import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { errorOf, joined, rawClient, trpcHttp } from './support/helpers.ts';
import { adminQuery } from './support/graphql.ts';
import { openSseStream } from './support/sse-client.ts';
import { startTestApp, type TestApp } from './support/start-test-app.ts';

/** GET /metrics: Prometheus text from a per-app registry, bounded labels only. */

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(t: TestApp, headers: Record<string, string> = {}): Promise<{ status: number; contentType: string | null; text: string; samples: Sample[] }> {
  const res = await fetch(`${t.baseUrl}/metrics`, { headers });
  const text = await res.text();
  return { status: res.status, contentType: res.headers.get('content-type'), text, samples: res.status === 200 ? parse(text) : [] };
}

function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return samples;
}

/** The value of the one sample with this name whose labels include `labels`; 0 when absent (a counter not yet touched). */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  return found[0]?.value ?? 0;
}

const REALTIME_METRICS: Record<string, string> = {
  realtime_connections: 'gauge',
  realtime_connections_by_transport: 'gauge',
  realtime_rooms_active: 'gauge',
  realtime_users: 'gauge',
  realtime_acks_pending: 'gauge',
  realtime_events_published_total: 'counter',
  realtime_deliveries_total: 'counter',
  realtime_acks_total: 'counter',
  realtime_slow_consumer_closes_total: 'counter',
  realtime_rejected_requests_total: 'counter',
  realtime_delivery_latency_seconds: 'histogram',
  realtime_ack_latency_seconds: 'histogram',
};
const PROCESS_METRICS: Record<string, string> = {
  process_cpu_user_seconds_total: 'counter',
  process_resident_memory_bytes: 'gauge',
  nodejs_heap_size_used_bytes: 'gauge',
  nodejs_eventloop_lag_seconds: 'gauge',
};

describe('/metrics', () => {
  it('serves the realtime_* metrics and process metrics; values move with traffic; no room or user id in any label', async () => {
    await using t = await startTestApp({ ackTimeoutMs: 300, ackRetryMs: 0, maxMessageBytes: 1_000_000, maxBufferedBytes: 64 * 1024 });
    const before = await scrape(t);
    expect(before.status).toBe(200);
    expect(before.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    for (const [name, type] of Object.entries({ ...REALTIME_METRICS, ...PROCESS_METRICS })) expect(before.text, name).toContain(`# TYPE ${name} ${type}\n`);
    expect(value(before.samples, 'realtime_connections')).toBe(0);
    expect(value(before.samples, 'realtime_delivery_latency_seconds_count')).toBe(0);
    expect(value(before.samples, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);

    // Traffic in a room and by users whose ids must never become label values.
    const seven = await t.client('user-secret-7', { name: 'Secret Seven' });
    const eight = await t.client('user-secret-8', { autoAck: false });
    const nine = await t.client('user-secret-9');
    const s7 = await joined(seven, 'secret-room-42');
    await joined(eight, 'secret-room-42');
    const s9 = await joined(nine, 'secret-room-42');
    await vi.waitFor(() => expect(t.app.service.registry.snapshot('secret-room-42')?.connectionCount).toBe(3));
    const third = s9.next('message', (e) => e.message.body === 'three');
    for (const body of ['one', 'two', 'three']) await seven.send('secret-room-42', body);
    await third;
    nine.setTyping('secret-room-42', true);
    await s7.next('typing');
    const partial = s7.next('message_delivered', undefined, 3000);
    await seven.send('secret-room-42', 'ack me', { ack: true });
    const during = await scrape(t);
    expect(value(during.samples, 'realtime_acks_pending')).toBe(1);
    expect((await partial).report.status).toBe('partial');
    // Refused requests, by code.
    expect((await errorOf(seven.send('secret-room-42', ''))).code).toBe('BAD_REQUEST');
    const outsider = await t.client('user-secret-10', { conversations: ['elsewhere'] });
    expect((await errorOf(outsider.presence('secret-room-42'))).code).toBe('FORBIDDEN');
    expect((await trpcHttp(t.baseUrl, 'message.send', { conversationId: 'secret-room-42', body: 'x' }, { token: null })).status).toBe(401);
    // The admin plane looks at the room and the user (nothing of that may reach /metrics either).
    await adminQuery(t, '{ room(conversationId: "secret-room-42") { memberCount } user(userId: "user-secret-7") { connections } }');

    // A slow consumer: a subscriber (alone in its room) that stops reading while big messages pile up.
    const slow = rawClient(`${t.wsUrl}?connectionParams=1`);
    await slow.opened;
    slow.send({ method: 'connectionParams', data: { token: await t.token('user-secret-11') } });
    slow.send({ id: 1, method: 'subscription', params: { input: superjson.serialize({ conversationId: 'secret-room-43' }), path: 'conversation.events' } });
    await slow.waitFor((f) => (f as { result?: { type?: string } }).result?.type === 'started');
    await vi.waitFor(() => expect(t.app.service.registry.isMember('user-secret-11', 'secret-room-43')).toBe(true));
    const socket = (slow.ws as unknown as { _socket: Socket })._socket;
    socket.pause();
    const big = 'x'.repeat(500_000);
    for (let i = 0; i < 200 && t.app.service.stats.slowConsumerCloses === 0; i += 1) {
      await t.app.broadcastMessage('secret-room-43', { body: big });
      await new Promise((resolve) => setImmediate(resolve)); // let the server's socket write what it can
    }
    expect(t.app.service.stats.slowConsumerCloses).toBe(1);
    socket.resume();
    expect((await slow.closed).code).toBe(4008);

    const after = await scrape(t);
    const s = after.samples;
    expect(value(s, 'realtime_connections')).toBe(4);
    expect(value(s, 'realtime_connections_by_transport', { transport: 'websocket' })).toBe(4);
    expect(value(s, 'realtime_connections_by_transport', { transport: 'sse' })).toBe(0);
    expect(value(s, 'realtime_rooms_active')).toBe(1); // secret-room-43 emptied with its only subscriber
    expect(value(s, 'realtime_users')).toBe(4);
    expect(value(s, 'realtime_acks_pending')).toBe(0);
    const published = value(s, 'realtime_events_published_total', { type: 'message' });
    expect(published).toBeGreaterThanOrEqual(5); // 4 sends and the big one(s)
    expect(published).toBe(t.app.service.stats.messagesBroadcast);
    expect(value(s, 'realtime_events_published_total', { type: 'user_joined' })).toBeGreaterThanOrEqual(3);
    expect(value(s, 'realtime_events_published_total', { type: 'typing' })).toBe(1);
    expect(value(s, 'realtime_events_published_total', { type: 'message_delivered' })).toBe(1);
    expect(value(s, 'realtime_deliveries_total', { type: 'message' })).toBeGreaterThanOrEqual(8); // 4 messages × 2 recipients
    expect(value(s, 'realtime_deliveries_total', { type: 'typing' })).toBeGreaterThanOrEqual(2);
    expect(value(s, 'realtime_acks_total', { outcome: 'partial' })).toBe(1);
    expect(value(s, 'realtime_acks_total', { outcome: 'delivered' })).toBe(0);
    expect(value(s, 'realtime_slow_consumer_closes_total')).toBe(1);
    expect(value(s, 'realtime_rejected_requests_total', { code: 'BAD_REQUEST' })).toBe(1);
    expect(value(s, 'realtime_rejected_requests_total', { code: 'FORBIDDEN' })).toBe(1);
    expect(value(s, 'realtime_rejected_requests_total', { code: 'UNAUTHORIZED' })).toBe(1);
    const deliveries = value(s, 'realtime_delivery_latency_seconds_count');
    expect(deliveries).toBeGreaterThanOrEqual(8);
    expect(value(s, 'realtime_delivery_latency_seconds_bucket', { le: '+Inf' })).toBe(deliveries);
    expect(value(s, 'realtime_ack_latency_seconds_count', { outcome: 'partial' })).toBe(1);
    expect(value(s, 'realtime_ack_latency_seconds_sum', { outcome: 'partial' })).toBeGreaterThanOrEqual(0.29);
    expect(value(s, 'realtime_ack_latency_seconds_bucket', { outcome: 'partial', le: '0.25' })).toBe(0);
    expect(value(s, 'realtime_ack_latency_seconds_bucket', { outcome: 'partial', le: '0.5' })).toBe(1);
    expect(value(s, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);

    // Labels are bounded enumerations: never a room, a user or a name.
    for (const secret of ['secret-room', 'user-secret', 'Secret Seven', 'elsewhere']) expect(after.text, secret).not.toContain(secret);
    const allowedLabels = new Set(['type', 'outcome', 'code', 'transport', 'le']);
    for (const sample of s.filter((x) => x.name.startsWith('realtime_'))) {
      for (const key of Object.keys(sample.labels)) expect(allowedLabels.has(key), `${sample.name} ${key}`).toBe(true);
    }
  });

  it('counts connections per transport (websocket, sse), agreeing with GraphQL stats; back to 0 when they close', async () => {
    await using t = await startTestApp();
    const figures = async () => {
      const [{ samples }, { stats }] = await Promise.all([
        scrape(t),
        adminQuery<{ stats: { connections: number; connectionsByTransport: { websocket: number; sse: number } } }>(t, '{ stats { connections connectionsByTransport { websocket sse } } }'),
      ]);
      return {
        metrics: {
          connections: value(samples, 'realtime_connections'),
          websocket: value(samples, 'realtime_connections_by_transport', { transport: 'websocket' }),
          sse: value(samples, 'realtime_connections_by_transport', { transport: 'sse' }),
          // Only the two transports: one series each, no per-connection label.
          series: samples.filter((x) => x.name === 'realtime_connections_by_transport').map((x) => x.labels),
        },
        graphql: { connections: stats.connections, ...stats.connectionsByTransport },
      };
    };
    const expected = (websocket: number, sse: number) => ({
      metrics: { connections: websocket + sse, websocket, sse, series: [{ transport: 'websocket' }, { transport: 'sse' }] },
      graphql: { connections: websocket + sse, websocket, sse },
    });
    expect(await figures()).toEqual(expected(0, 0));

    const alice = await t.client('user-secret-ws');
    await joined(alice, 'secret-room-tr');
    const stream = openSseStream(t.baseUrl, await t.token('user-secret-sse'), 'secret-room-tr');
    await stream.started;
    await vi.waitFor(async () => expect(await figures()).toEqual(expected(1, 1)));
    const { text } = await scrape(t);
    for (const secret of ['secret-room', 'user-secret']) expect(text, secret).not.toContain(secret);

    stream.close();
    await alice.close();
    await vi.waitFor(async () => expect(await figures()).toEqual(expected(0, 0)));
  });

  it('with metricsToken set, /metrics needs that bearer token (401 otherwise)', async () => {
    const metricsToken = 'metrics-token-0123456789abcdef';
    await using t = await startTestApp({ metricsToken });
    const refused: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer wrong-token-0123456789abcdef' },
      { authorization: metricsToken },
      { authorization: `Bearer ${await t.token('ops', { role: 'admin' })}` },
    ];
    for (const headers of refused) {
      const res = await scrape(t, headers);
      expect(res.status, JSON.stringify(headers)).toBe(401);
      expect(res.text).not.toContain('realtime_');
    }
    const unauthorized = await fetch(`${t.baseUrl}/metrics`);
    expect(unauthorized.headers.get('www-authenticate')).toBe('Bearer');
    const ok = await scrape(t, { authorization: `Bearer ${metricsToken}` });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('# TYPE realtime_connections gauge');
  });

  it('two apps in one process keep separate registries', async () => {
    await using a = await startTestApp();
    await using b = await startTestApp();
    const alice = await a.client('alice');
    await joined(alice, 'only-in-a');
    await alice.send('only-in-a', 'hello');
    await vi.waitFor(() => expect(a.app.service.registry.hasRoom('only-in-a')).toBe(true));
    const [sa, sb] = await Promise.all([scrape(a), scrape(b)]);
    expect([sa.status, sb.status]).toEqual([200, 200]);
    expect(value(sa.samples, 'realtime_connections')).toBe(1);
    expect(value(sa.samples, 'realtime_rooms_active')).toBe(1);
    expect(value(sa.samples, 'realtime_events_published_total', { type: 'message' })).toBe(1);
    expect(value(sb.samples, 'realtime_connections')).toBe(0);
    expect(value(sb.samples, 'realtime_rooms_active')).toBe(0);
    expect(value(sb.samples, 'realtime_events_published_total', { type: 'message' })).toBe(0);
    expect(a.app.metrics).not.toBe(b.app.metrics);
    // Each registry holds each metric once (no duplicate TYPE lines from a shared default registry).
    for (const scraped of [sa, sb]) expect(scraped.text.match(/^# TYPE realtime_connections /gm)).toHaveLength(1);
  });
});
