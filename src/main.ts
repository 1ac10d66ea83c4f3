/**
 * `npm start`: a thin shell over createRealtimeServer. Validates configuration (one line and
 * exit 1 on a bad value), listens (one line and exit 1 on a busy or forbidden port), prints dev
 * tokens (24 h) when it made up its own secret — with AUTH_SECRET set, only how to mint one —
 * and drains on SIGTERM/SIGINT.
 * Nothing it prints carries the value of a secret variable (AUTH_SECRET, METRICS_TOKEN, REDIS_URL's
 * password): ConfigError never quotes them, and any other start-up failure is scrubbed of them.
 */
import { inspect } from 'node:util';
import { devTokens } from './auth/dev-tokens.ts';
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
  let url: string;
  try {
    ({ url } = await app.listen());
  } catch (error) {
    // A busy or forbidden port, an address not ours: listen() worded it as one line.
    if ((error as { listenError?: boolean }).listenError) {
      process.stderr.write(`${(error as Error).message}\n`);
      process.exit(1);
    }
    throw error;
  }
  if (app.config.production) return;
  // Tokens signed with a real AUTH_SECRET would outlive this start in a log: only the random
  // secret's tokens are printed (and they expire anyway).
  if (app.config.generatedSecret) await printDevTokens(app.config.authSecret, url, app.config.webChat);
  else process.stderr.write('Development mode, AUTH_SECRET set: no tokens printed; mint one with AUTH_SECRET=<same> npm run token -- --user alice\n');
}

async function printDevTokens(secret: string, url: string, webChat: boolean): Promise<void> {
  const tokens = await devTokens(secret); // the same ones GET /chat/dev-tokens hands the web chat
  const tokenOf = (userId: string) => tokens.find((t) => t.userId === userId)!.token;
  const [alice, bob, admin] = [tokenOf('alice'), tokenOf('bob'), tokenOf('admin')];
  const ws = `${url.replace(/^http/, 'ws')}/trpc`;
  process.stderr.write(
    [
      '',
      'Development mode. AUTH_SECRET is random for this start: these tokens work until it stops, for 24 h at most; set AUTH_SECRET (and use npm run token) for tokens that survive restarts.',
      `  tRPC over WebSocket: ${ws}`,
      `  alice: ${alice}`,
      `  bob:   ${bob}`,
      `  admin: ${admin}`,
      '',
      'Talk from two terminals:',
      `  npm run chat -- --url ${ws} --room lobby --token ${alice}`,
      `  npm run chat -- --url ${ws} --room lobby --token ${bob}`,
      ...(webChat ? ['', `Or chat in a browser: open ${url}/chat in two windows and pick Alice under "Dev token" in one, Bob in the other.`] : []),
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  // Not ours to word (a library's error may quote a URL it was given): print it, scrubbed.
  process.stderr.write(`${redactSecrets(inspect(error))}\n`);
  process.exit(1);
});
