/**
 * `npm run token -- --user alice [--name Alice] [--role admin|service|user] [--conversations 'a,b' | '*'] [--expires 1h]`
 * Prints a token signed with AUTH_SECRET (the server's secret must be the same).
 */
import { parseArgs } from 'node:util';
import { mintToken } from '../auth/tokens.ts';
import type { Role } from '../domain/types.ts';

const { values } = parseArgs({
  options: {
    user: { type: 'string' },
    name: { type: 'string' },
    role: { type: 'string', default: 'user' },
    conversations: { type: 'string', default: '*' },
    expires: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

const usage = "usage: AUTH_SECRET=… npm run token -- --user <id> [--name <display>] [--role user|admin|service] [--conversations '*'|'a,b'] [--expires 12h]";
if (values.help || !values.user) {
  process.stderr.write(`${usage}\n`);
  process.exit(values.help ? 0 : 1);
}
const secret = process.env.AUTH_SECRET;
if (!secret) {
  process.stderr.write('AUTH_SECRET is not set: start the server with the same AUTH_SECRET so it accepts this token.\n');
  process.exit(1);
}
if (!['user', 'admin', 'service'].includes(values.role)) {
  process.stderr.write(`--role must be user, admin or service\n${usage}\n`);
  process.exit(1);
}
const conversations = values.conversations === '*' ? ['*'] : values.conversations.split(',').map((s) => s.trim()).filter(Boolean);
const token = await mintToken(secret, {
  userId: values.user,
  role: values.role as Role,
  conversations,
  ...(values.name !== undefined && { name: values.name }),
  ...(values.expires !== undefined && { expiresIn: values.expires }),
});
process.stdout.write(`${token}\n`);
