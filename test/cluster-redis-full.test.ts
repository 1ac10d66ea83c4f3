import { Redis } from 'ioredis';
import { TRPCClientError } from '@trpc/client';
import { expect, it } from 'vitest';
import { describeWithRedis, startRedisServer } from './support/cluster.ts';
import { joinLogged, waitUntil, bodies } from './support/wait.ts';
import { startTestApp } from './support/start-test-app.ts';

/**
 * A Redis at `maxmemory` under `noeviction` (what docs/deploy.md asks for) refuses writes with
 * an OOM reply. That is an outage of writes, not a bug in the request: a send gets the retryable
 * SERVICE_UNAVAILABLE with `retryAfterMs` (it was a 500), nothing is delivered or stored, and once
 * Redis has room again sends go through. Its own redis-server, so filling it harms no other test.
 */
describeWithRedis('cluster: a full Redis', () => {
  it('refuses sends with a retryable SERVICE_UNAVAILABLE while Redis is at maxmemory, and recovers once it has room', { timeout: 30_000 }, async () => {
    await using redis = await startRedisServer();
    await using t = await startTestApp({ env: { LOG_LEVEL: 'silent', REDIS_URL: redis.url } });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      const alice = await t.client('alice');
      const bob = await t.client('bob');
      const b = joinLogged(bob, 'full');
      await b.conversation.started;
      await alice.join('full').started;
      await alice.send('full', 'before');
      await waitUntil(() => bodies(b.log).includes('before'), { what: 'bob to get the first message' });

      // Full: a limit below what is used (Redis accepts it, and refuses every write until
      // usage is under it again), as when data outgrows maxmemory.
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
      await expect(admin.set('probe', 'x')).rejects.toThrow(/^OOM /);

      const refused = await alice.send('full', 'during').then(() => null, (error: unknown) => error);
      expect(refused).toBeInstanceOf(TRPCClientError);
      const error = refused as TRPCClientError<never>;
      expect(error.message).toBe('the cluster store (Redis) is full (maxmemory); retry shortly');
      expect(error.data).toMatchObject({ code: 'SERVICE_UNAVAILABLE', httpStatus: 503, retryAfterMs: 1000 });

      await admin.config('SET', 'maxmemory', '0');
      await alice.send('full', 'after');
      await waitUntil(() => bodies(b.log).includes('after'), { what: 'bob to get the message sent once Redis had room' });
      expect(bodies(b.log)).toEqual(['before', 'after']);
    } finally {
      admin.disconnect();
    }
  });

  it('two nodes whose heartbeats a full Redis refused for longer than the node TTL do not take each other for dead once it has room', { timeout: 30_000 }, async () => {
    await using redis = await startRedisServer();
    const env = (nodeId: string) => ({ LOG_LEVEL: 'silent', REDIS_URL: redis.url, NODE_ID: nodeId, CLUSTER_HEARTBEAT_MS: '100', CLUSTER_NODE_TTL_MS: '1000' });
    await using n1 = await startTestApp({ env: env('full-1') });
    await using n2 = await startTestApp({ env: env('full-2') });
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      const alice = await n1.client('alice');
      const bob = await n2.client('bob');
      const a = joinLogged(alice, 'hb');
      await a.conversation.started;
      const b = joinLogged(bob, 'hb');
      await b.conversation.started;
      await waitUntil(() => a.log.some((e) => e.event.type === 'user_joined' && e.event.userId === 'bob'), { what: 'alice to see bob join' });

      // Full for longer than the TTL: both nodes' last heartbeats (Redis time) grow stale.
      const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', String(Math.floor(used / 2)));
      const stale = async () => {
        const [seconds, micros] = await admin.time();
        const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
        return (await admin.zrangebyscore('rt:{nodes}', '-inf', now - 1500)).sort();
      };
      await expect.poll(stale, { timeout: 10_000, interval: 100 }).toEqual(['full-1', 'full-2']);

      await admin.config('SET', 'maxmemory', '0');
      // Both beat again (neither claimed the other: a claim removes the loser from the set)...
      await expect.poll(async () => (await stale()).length, { timeout: 10_000, interval: 50 }).toBe(0);
      expect((await admin.zrange('rt:{nodes}', 0, -1)).sort()).toEqual(['full-1', 'full-2']);
      // ...and a message each way arrives after anything either node announced meanwhile.
      await alice.send('hb', 'from alice');
      await bob.send('hb', 'from bob');
      await waitUntil(() => bodies(b.log).includes('from alice') && bodies(a.log).includes('from bob'), { what: 'a message each way after the full stretch' });
      const presenceChanges = (log: typeof a.log) => log.filter((e) => e.event.type === 'user_left' || e.event.type === 'user_disconnected' || (e.event.type === 'user_joined' && e.event.userId !== 'bob'));
      expect(presenceChanges(a.log)).toEqual([]);
      expect(presenceChanges(b.log)).toEqual([]);
      expect((await alice.presence('hb')).map((m) => m.userId).sort()).toEqual(['alice', 'bob']);
    } finally {
      admin.disconnect();
    }
  });
});
