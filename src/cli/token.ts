/**
 * `npm run token -- --user alice [--name Alice] [--role admin|service|user] [--conversations 'a,b' | '*'] [--expires 24h]`
 * Prints a token signed with AUTH_SECRET (the server's secret must be the same). It expires in
 * 24 h unless `--expires` says otherwise (90s, 30m, 12h, 7d, a number of seconds, or `never`).
 * Every error is one line on stderr and exit code 1; a secret the server would refuse is refused.
 */
import { parseArgs } from 'node:util';
import { mintToken, parseLifetime } from '../auth/tokens.ts';
import { envSchema } from '../config.ts';
import type { Role } from '../domain/types.ts';

const usage = "usage: AUTH_SECRET=… npm run token -- --user <id> [--name <display>] [--role user|admin|service] [--conversations '*'|'a,b'] [--expires 24h|90s|30m|7d|<seconds>|never]";

/** One line on stderr, exit 1: no stack, nothing else. */
function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(1);
}

const DEFAULT_EXPIRES_SEC = 24 * 60 * 60;

/** `--expires` in seconds, or null for `never`. */
function parseExpires(text: string): number | null {
  try {
    return parseLifetime(text);
  } catch (error) {
    return fail((error as Error).message);
  }
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      user: { type: 'string' },
      name: { type: 'string' },
      role: { type: 'string', default: 'user' },
      conversations: { type: 'string', default: '*' },
      expires: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
} catch (error) {
  fail(`${error instanceof Error ? error.message.split('\n')[0] : String(error)} (see --help)`);
}
const { values } = parsed;

if (values.help) {
  process.stdout.write(`${usage}\n`);
  process.exit(0);
}
if (!values.user) fail(`--user is required: ${usage}`);
if (!['user', 'admin', 'service'].includes(values.role)) fail(`--role must be user, admin or service (got ${JSON.stringify(values.role)})`);
const expiresIn = parseExpires(values.expires ?? String(DEFAULT_EXPIRES_SEC));
const secret = process.env.AUTH_SECRET;
if (!secret) fail('AUTH_SECRET is not set: set it to the secret the server was started with, so the server accepts this token');
// The server's own rule (src/config.ts): a token signed with a secret it refuses would be useless.
const secretCheck = envSchema.shape.AUTH_SECRET.safeParse(secret);
if (!secretCheck.success) fail(`AUTH_SECRET ${secretCheck.error.issues[0]?.message ?? 'is invalid'} (value not shown): the server refuses such a secret, so it would never accept this token`);
if (expiresIn === null) {
  process.stderr.write('warning: --expires never: this token does not expire; a production server refuses it unless ALLOW_LONG_LIVED_TOKENS=true\n');
}
const conversations = values.conversations === '*' ? ['*'] : values.conversations.split(',').map((s) => s.trim()).filter(Boolean);
const token = await mintToken(secret, {
  userId: values.user,
  role: values.role as Role,
  conversations,
  ...(values.name !== undefined && { name: values.name }),
  ...(expiresIn !== null && { expiresIn }),
}).catch((error: unknown) => fail(`could not sign the token: ${error instanceof Error ? error.message : String(error)}`));
process.stdout.write(`${token}\n`);
