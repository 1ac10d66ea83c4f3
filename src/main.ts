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
import { ConfigError, redactSecrets, type Config } from './config.ts';
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
  if (app.config.production) return; // JSON log lines only; the 'listening' line has the URL
  process.stderr.write(banner(url, app.config));
  // Tokens signed with a real AUTH_SECRET would outlive this start in a log: only the random
  // secret's tokens are printed (and they expire anyway).
  if (app.config.generatedSecret) await printDevTokens(app.config.authSecret, url, app.config.webChat);
  else process.stderr.write('AUTH_SECRET set: no tokens printed; mint one with AUTH_SECRET=<same> npm run token -- --user alice (add --role admin for the admin plane)\n\n');
}

/** Where everything is, for the development start (production prints JSON log lines only). */
function banner(url: string, config: Pick<Config, 'graphiql' | 'webChat'>): string {
  const rows: Array<[string, string]> = [
    ['tRPC', `${url.replace(/^http/, 'ws')}/trpc (WebSocket), ${url}/trpc (HTTP and SSE)`],
    ...(config.webChat ? [['Web chat', `${url}/chat`] as [string, string]] : []),
    ['Dashboard', `${url}/dashboard (sign in with an admin token)`],
    ['GraphQL', `${url}/graphql${config.graphiql ? ' (GraphiQL: open it in a browser)' : ''}`],
    ['Admin CLI', `ADMIN_TOKEN=<admin token> npm run admin -- stats --url ${url}`],
    ['Health', `${url}/healthz, ${url}/readyz; metrics at ${url}/metrics`],
  ];
  const width = Math.max(...rows.map(([label]) => label.length)) + 1;
  return ['', `realtime-broadcast is up (development mode): ${url}`, ...rows.map(([label, value]) => `  ${`${label}:`.padEnd(width)} ${value}`), ''].join('\n') + '\n';
}

async function printDevTokens(secret: string, url: string, webChat: boolean): Promise<void> {
  const tokens = await devTokens(secret); // the same ones GET /chat/dev-tokens hands the web chat
  const tokenOf = (userId: string) => tokens.find((t) => t.userId === userId)!.token;
  const [alice, bob, admin] = [tokenOf('alice'), tokenOf('bob'), tokenOf('admin')];
  const ws = `${url.replace(/^http/, 'ws')}/trpc`;
  process.stderr.write(
    [
      'AUTH_SECRET is random for this start: these tokens work until it stops, for 24 h at most; set AUTH_SECRET (and use npm run token) for tokens that survive restarts.',
      `  alice: ${alice}`,
      `  bob:   ${bob}`,
      `  admin: ${admin}`,
      '',
      'Talk from two terminals:',
      `  npm run chat -- --url ${ws} --room lobby --token ${alice}`,
      `  npm run chat -- --url ${ws} --room lobby --token ${bob}`,
      ...(webChat ? ['', `Or chat in a browser: open ${url}/chat in two windows and pick Alice under "Dev token" in one, Bob in the other.`] : []),
      '',
      'The admin plane from a terminal:',
      `  ADMIN_TOKEN=${admin} npm run admin -- rooms --url ${url}`,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  // Not ours to word (a library's error may quote a URL it was given): print it, scrubbed.
  process.stderr.write(`${redactSecrets(inspect(error))}\n`);
  process.exit(1);
});
