import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { deleteKeys, describeWithRedis, REDIS_URL, redisReachable, startNode, startRedisServer, uniquePrefix } from './support/cluster.ts';
import { waitUntil } from './support/wait.ts';

/** The harness of the multi-process cluster tests, checked on its own (single-node processes). */

// Concurrent: three independent processes (own ports, own node ids), mostly waiting on start-up.
describe.concurrent('cluster harness: server processes', () => {
  it('starts a node on an ephemeral port and sees it die on SIGKILL', async ({ expect }) => {
    await using node = await startNode({ nodeId: 'harness-n1' });
    expect(node.port).toBeGreaterThan(0);
    expect(node.wsUrl).toBe(`ws://127.0.0.1:${node.port}/trpc`);
    const health = await fetch(`${node.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    node.kill('SIGKILL');
    expect(await node.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(node.output()).toContain('"msg":"listening"');
  });

  it('stops a node gracefully on stop()', async ({ expect }) => {
    const node = await startNode();
    // Wait for the end of start-up (with AUTH_SECRET set, the line on how to mint tokens): a
    // SIGTERM before src/main.ts installed its handler ends the process by the default action.
    await waitUntil(() => node.output().includes('npm run token'), { what: 'the end of start-up' });
    await node.stop();
    expect(await node.exited).toEqual({ code: 0, signal: null });
    expect(node.output()).toContain('"msg":"closed"');
  });

  it('fails a start that cannot succeed with the node output, leaving nothing running', async ({ expect }) => {
    const start = startNode({ env: { AUTH_SECRET: 'too-short' } });
    await expect(start).rejects.toThrow(/exited during start \(code 1[\s\S]*AUTH_SECRET/);
  });
});

describe('cluster harness: a throwaway Redis', () => {
  it('goes away on stop() and comes back on the same port on start()', async () => {
    await using redis = await startRedisServer();
    const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      await client.connect();
      expect(await client.ping()).toBe('PONG');
    } finally {
      client.disconnect();
    }

    await redis.stop();
    expect(await redisReachable(redis.url)).toBe(false);
    await redis.start();
    expect(await redisReachable(redis.url)).toBe(true);
  });
});

describeWithRedis('cluster harness: the shared Redis', () => {
  it('deleteKeys removes the keys of one prefix and no other', async () => {
    const mine = uniquePrefix('harness');
    const other = uniquePrefix('harness');
    expect(mine).toMatch(/^test:harness:\d+-[0-9a-f]{8}:$/);
    expect(other).not.toBe(mine);
    const client = new Redis(REDIS_URL);
    try {
      const pipeline = client.pipeline();
      for (let i = 0; i < 1200; i += 1) pipeline.set(`${mine}k${i}`, '1', 'PX', 60_000);
      await pipeline.exec();
      await client.set(`${other}k0`, '1', 'PX', 60_000);
      await client.set(mine.slice(0, -1), '1', 'PX', 60_000); // the prefix without its last ':'

      expect(await deleteKeys(REDIS_URL, mine)).toBe(1200);
      expect(await client.exists(`${mine}k0`, `${mine}k1199`)).toBe(0);
      expect(await client.exists(`${other}k0`, mine.slice(0, -1))).toBe(2);
    } finally {
      await deleteKeys(REDIS_URL, other);
      await client.del(mine.slice(0, -1));
      client.disconnect();
    }
  });
});
