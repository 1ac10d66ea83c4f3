import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConfigError, loadConfig, redactSecrets, redactUrl, SECRET_VARIABLES } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { startRedisServer } from '../support/redis-server.ts';
import { runScript } from '../support/script-process.ts';

/**
 * Issue #11, finding 5 (written ahead of it, during issue #10's secrets review): configuration
 * errors and start-up output never echo a secret: an error about AUTH_SECRET,
 * METRICS_TOKEN or REDIS_URL names the variable and the rule, not the value, and a REDIS_URL
 * with a password is never printed whole. Every bad value carries a marker the output must lack.
 */

const RULES = {
  AUTH_SECRET: 'must be at least 32 characters',
  METRICS_TOKEN: 'must be at least 16 characters',
  REDIS_URL: 'must be a redis:// or rediss:// URL',
} as const;

const bad: Array<[name: keyof typeof RULES, value: string, marker: string]> = [
  ['AUTH_SECRET', 'short-SECRETMARKER', 'SECRETMARKER'],
  ['AUTH_SECRET', 'x'.repeat(19) + 'SECRETMARKER', 'SECRETMARKER'], // 31 characters: one short
  ['METRICS_TOKEN', 'tok-MTMARKER', 'MTMARKER'],
  // Port out of range, wrong scheme, unparseable host, not a URL at all.
  ['REDIS_URL', 'redis://:p4ssMARKER@cache.internal:99999', 'p4ssMARKER'],
  ['REDIS_URL', 'http://ops:p4ssMARKER@cache.internal:6379', 'p4ssMARKER'],
  ['REDIS_URL', 'redis://:p4ssMARKER@[::1', 'p4ssMARKER'],
  ['REDIS_URL', 'p4ssMARKER', 'p4ssMARKER'],
];

function configError(env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('loadConfig accepted the environment');
}

describe('configuration errors about a secret variable', () => {
  it('covers every secret variable', () => {
    expect([...SECRET_VARIABLES].sort()).toEqual(Object.keys(RULES).sort());
  });

  it.each(bad)('%s=%j: names the variable and the rule, never the value', (name, value, marker) => {
    const error = configError({ [name]: value });
    expect(error.message).toBe(`Invalid configuration: ${name} ${RULES[name]} (value not shown)`);
    expect(error.message).not.toContain(marker);
    expect(error.stack ?? '').not.toContain(marker);
    expect(error.cause).toBeUndefined();
  });

  it('a non-secret variable still shows its value, and the secrets beside it stay hidden', () => {
    const error = configError({ ACK_TIMEOUT_MS: 'abc', AUTH_SECRET: 'x'.repeat(32) + 'SECRETMARKER', METRICS_TOKEN: 'tok-long-enough-MTMARKER', REDIS_URL: 'redis://:p4ssMARKER@cache.internal:6379' });
    expect(error.message).toBe('Invalid configuration: ACK_TIMEOUT_MS="abc" must be a whole number');
  });

  describe('even when zod words a message that quotes the received value', () => {
    afterEach(() => {
      z.config({ customError: undefined });
    });

    it('prints only the rules config.ts wrote, never a message zod built', () => {
      z.config({ customError: (issue) => `received ${String(issue.input)}` });
      const value = { toString: () => 'SECRETMARKER' } as unknown as string; // not a string: zod words the error
      for (const name of SECRET_VARIABLES) {
        const error = configError({ [name]: value });
        expect(error.message).toBe(`Invalid configuration: ${name} is invalid (value not shown)`);
        expect(error.message).not.toContain('SECRETMARKER');
      }
      // The rules config.ts wrote win over the global error map, which would have quoted the value.
      expect(configError({ AUTH_SECRET: 'short-SECRETMARKER' }).message).toBe(`Invalid configuration: AUTH_SECRET ${RULES.AUTH_SECRET} (value not shown)`);
      // Proof that the map is live: a non-secret variable's message is the one it built.
      expect(configError({ HOST: value }).message).toContain('received SECRETMARKER');
    });
  });

  it('accepts redis:// and rediss:// URLs with credentials, and keeps them for the client', () => {
    expect(loadConfig({ REDIS_URL: 'redis://:p4ssMARKER@cache.internal:6379' }).redisUrl).toBe('redis://:p4ssMARKER@cache.internal:6379');
    expect(loadConfig({ REDIS_URL: 'rediss://ops:p4ssMARKER@cache.internal:6380/2' }).redisUrl).toBe('rediss://ops:p4ssMARKER@cache.internal:6380/2');
  });

  it('REDIS_CLUSTER: needs REDIS_URL, refuses a database other than 0 without showing the URL', () => {
    expect(loadConfig({ REDIS_CLUSTER: 'true', REDIS_URL: 'redis://:p4ssMARKER@10.0.0.5:7000' })).toMatchObject({ redisCluster: true, redisUrl: 'redis://:p4ssMARKER@10.0.0.5:7000' });
    expect(loadConfig({ REDIS_CLUSTER: 'true', REDIS_URL: 'redis://10.0.0.5:7000/0' }).redisCluster).toBe(true);
    expect(loadConfig({ REDIS_URL: 'redis://10.0.0.5:7000' }).redisCluster).toBe(false);
    expect(() => loadConfig({ REDIS_CLUSTER: 'true' })).toThrow(/REDIS_CLUSTER=true needs REDIS_URL/);
    expect(() => loadConfig({ REDIS_CLUSTER: 'yes', REDIS_URL: 'redis://10.0.0.5:7000' })).toThrow(/REDIS_CLUSTER="yes" must be true or false/);
    const error = (() => {
      try {
        loadConfig({ REDIS_CLUSTER: 'true', REDIS_URL: 'redis://:p4ssMARKER@10.0.0.5:7000/2' });
      } catch (caught) {
        return caught as Error;
      }
      return null;
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect(error!.message).toMatch(/REDIS_URL must not select a database other than 0/);
    expect(error!.message).not.toMatch(/MARKER|10\.0\.0\.5/);
  });
});

describe('redaction helpers', () => {
  it('redactUrl masks the password (or a lone user name) and nothing else', () => {
    expect(redactUrl('redis://:p4ssMARKER@cache.internal:6379')).toBe('redis://:***@cache.internal:6379');
    expect(redactUrl('rediss://ops:p4ssMARKER@cache.internal:6380/2')).toBe('rediss://ops:***@cache.internal:6380/2');
    expect(redactUrl('redis://p4ssMARKER@cache.internal:6379')).toBe('redis://***@cache.internal:6379');
    expect(redactUrl('redis://cache.internal:6379')).toBe('redis://cache.internal:6379');
    expect(redactUrl('redis://:p4ssMARKER@[::1')).toBe('[redacted]');
  });

  it('redactSecrets scrubs every secret value from foreign text, raw or URL-decoded', () => {
    const env = { AUTH_SECRET: 'a'.repeat(32) + 'SECRETMARKER', METRICS_TOKEN: 'tok-long-enough-MTMARKER', REDIS_URL: 'redis://ops:p4ss%40MARKER@cache.internal:6379' };
    const text = [
      `TypeError: Invalid URL { input: '${env.REDIS_URL}' }`,
      'auth failed for p4ss@MARKER and p4ss%40MARKER',
      `key ${env.AUTH_SECRET}, bearer ${env.METRICS_TOKEN}`,
    ].join('\n');
    const scrubbed = redactSecrets(text, env);
    expect(scrubbed).toContain("input: 'redis://ops:***@cache.internal:6379'");
    for (const marker of ['SECRETMARKER', 'MTMARKER', 'p4ss']) expect(scrubbed).not.toContain(marker);
    expect(redactSecrets('nothing secret here', {})).toBe('nothing secret here');
  });
});

describe('the logger', () => {
  function capture() {
    const lines: string[] = [];
    return { log: createLogger('trace', { write: (line: string) => void lines.push(line) }), text: () => lines.join('') };
  }

  it('masks the args of a failed Redis command (the AUTH error carries the password), keeping its name', () => {
    const { log, text } = capture();
    // What ioredis rejects queued commands with when the password in REDIS_URL is refused.
    const refused = Object.assign(new Error('WRONGPASS invalid username-password pair or user is disabled.'), { command: { name: 'auth', args: ['ops', 'p4ssMARKER'] } });
    log.warn({ err: refused }, 'node channel subscribe failed');
    log.child({ component: 'cluster' }).error({ error: refused }, 'failed');
    expect(text()).toContain('"name":"auth"');
    expect(text()).toContain('WRONGPASS');
    expect(text()).not.toContain('p4ssMARKER');
  });

  it('masks the secrets of a configuration object, should one be logged', () => {
    const { log, text } = capture();
    const config = loadConfig({ AUTH_SECRET: 'k'.repeat(32) + '-SECRETMARKER', METRICS_TOKEN: 'metrics-token-MTMARKER', REDIS_URL: 'redis://ops:p4ssMARKER@cache.internal:6379' });
    log.info(config, 'configuration');
    log.info({ config }, 'configuration');
    expect(text()).toContain('"redisKeyPrefix":"rt:"');
    for (const marker of ['SECRETMARKER', 'MTMARKER', 'p4ssMARKER']) expect(text()).not.toContain(marker);
  });
});

/** `npm start`'s path (src/main.ts) with exactly the configuration given (a start takes 2–3 s here, more under load). */
function start(config: Record<string, string>) {
  return runScript('src/main.ts', [], config);
}

/** A local port nothing listens on: Redis there refuses every connection at once. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('`npm start`', () => {
  // A start of tsx src/main.ts takes 2–3 s here, so one process stands for all the bad values
  // above (main.ts prints the ConfigError's message as it is): a REDIS_URL with a password and a
  // scheme that is not redis, beside valid secrets that must not show either.
  it('exits 1 on a bad REDIS_URL with one line that quotes none of the secrets', async () => {
    const proc = start({ PORT: '0', HOST: '127.0.0.1', AUTH_SECRET: 'k'.repeat(32) + '-SECRETMARKER', METRICS_TOKEN: 'metrics-token-MTMARKER', REDIS_URL: 'http://ops:p4ssMARKER@cache.internal:6379' });
    try {
      expect((await proc.exited()).code).toBe(1);
      const { stdout, stderr } = proc.output;
      expect(stdout).toBe('');
      expect(stderr).toBe(`Invalid configuration: REDIS_URL ${RULES.REDIS_URL} (value not shown)\n`);
    } finally {
      proc.kill();
    }
  });

  it('starts in cluster mode with a password in REDIS_URL and prints no secret while starting or stopping', async () => {
    const secrets = { AUTH_SECRET: 'k'.repeat(32) + '-SECRETMARKER', METRICS_TOKEN: 'metrics-token-MTMARKER', REDIS_URL: `redis://ops:p4ssMARKER@127.0.0.1:${await closedPort()}/0` };
    const proc = start({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'trace', SHUTDOWN_DRAIN_MS: '0', ...secrets });
    try {
      // The last thing start-up prints: the 'listening' log line, then (AUTH_SECRET being set, so
      // no tokens) the one line on how to mint some.
      await proc.until(() => proc.output.stdout.includes('"msg":"listening"') && proc.output.stderr.includes('npm run token'));
      proc.child.kill('SIGTERM');
      expect((await proc.exited()).code).toBe(0);
      const { stdout, stderr } = proc.output;
      expect(stdout).toContain('"msg":"closed"');
      for (const marker of ['SECRETMARKER', 'MTMARKER', 'p4ssMARKER']) {
        expect(stdout).not.toContain(marker);
        expect(stderr).not.toContain(marker);
      }
    } finally {
      proc.kill();
    }
  });

  // A Redis that refuses the password: ioredis fails the subscriber's queued SSUBSCRIBE with the
  // AUTH error, whose `command.args` hold the password, and the cluster logs that error.
  it.skipIf(spawnSync('redis-server', ['--version']).status !== 0)('logs a refused REDIS_URL password as refused, without the password', async () => {
    await using redis = await startRedisServer();
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    await admin.config('SET', 'requirepass', 'the-right-one');
    admin.disconnect();
    const proc = start({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'trace', SHUTDOWN_DRAIN_MS: '0', REDIS_URL: `redis://ops:p4ssMARKER@127.0.0.1:${redis.port}` });
    try {
      await proc.until(() => proc.output.stdout.includes('WRONGPASS') && proc.output.stdout.includes('"msg":"listening"'));
      proc.child.kill('SIGTERM');
      expect((await proc.exited()).code).toBe(0);
      const { stdout, stderr } = proc.output;
      expect(stdout).toContain('"command":{"name":"auth","args":"[redacted]"}');
      expect(stdout).not.toContain('p4ssMARKER');
      expect(stderr).not.toContain('p4ssMARKER');
    } finally {
      proc.kill();
    }
  });
});
