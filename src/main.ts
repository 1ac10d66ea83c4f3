/**
 * `npm start`: a thin shell over createRealtimeServer. Validates configuration (one line and
 * exit 1 on a bad value), listens, prints dev tokens outside production, drains on SIGTERM/SIGINT.
 * Nothing it prints carries the value of a secret variable (AUTH_SECRET, METRICS_TOKEN, REDIS_URL's
 * password): ConfigError never quotes them, and any other start-up failure is scrubbed of them.
 */
import { inspect } from 'node:util';
import { mintToken } from './auth/tokens.ts';
import { ConfigError, redactSecrets } from './config.ts';
import { createRealtimeServer } from './server.ts';

async function main(): Promise<void> {
  let app;
  try {
    app = createRealtimeServer();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ signal }, 'stopping');
    app.close().then(
      () => process.exit(0),
      (error: unknown) => {
        app.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Handlers first: a signal during start-up still drains instead of killing the process.
  const { url } = await app.listen();
  if (!app.config.production) await printDevTokens(app.config.authSecret, app.config.generatedSecret, url);
}

async function printDevTokens(secret: string, generated: boolean, url: string): Promise<void> {
  const all = ['*'];
  const alice = await mintToken(secret, { userId: 'alice', name: 'Alice', conversations: all });
  const bob = await mintToken(secret, { userId: 'bob', name: 'Bob', conversations: all });
  const admin = await mintToken(secret, { userId: 'admin', name: 'Admin', role: 'admin', conversations: all });
  const ws = `${url.replace(/^http/, 'ws')}/trpc`;
  process.stderr.write(
    [
      '',
      `Development mode. ${generated ? 'AUTH_SECRET is random for this start; set AUTH_SECRET to keep tokens valid across restarts.' : 'Tokens signed with AUTH_SECRET.'}`,
      `  tRPC over WebSocket: ${ws}`,
      `  alice: ${alice}`,
      `  bob:   ${bob}`,
      `  admin: ${admin}`,
      '',
      'Talk from two terminals:',
      `  npm run chat -- --url ${ws} --room lobby --token ${alice}`,
      `  npm run chat -- --url ${ws} --room lobby --token ${bob}`,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  // Not ours to word (a library's error may quote a URL it was given): print it, scrubbed.
  process.stderr.write(`${redactSecrets(inspect(error))}\n`);
  process.exit(1);
});
