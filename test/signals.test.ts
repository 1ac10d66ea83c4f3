import { describe, it } from 'vitest';
import { mintToken } from '../src/auth/tokens.ts';
import { expectSigtermDrains } from './support/drain-check.ts';
import { runProcess } from './support/script-process.ts';
import { TEST_SECRET } from './support/start-test-app.ts';

/**
 * `kill -TERM` to `npm start` — what `docker stop` does when npm is PID 1, and what a service
 * manager does to the process it started — used to kill npm and leave the server running,
 * orphaned and undrained (npm signalled `sh`, which died, and tsx with the server lived on). The
 * start script now execs one node process, which npm's signal reaches (issue 15). The built
 * server (`node dist/main.js`) is signalled the same way in test/package.test.ts.
 */
describe('signals from the outermost process', () => {
  it('SIGTERM to `npm start` reaches the server, which drains its subscriber and exits 0 with npm; nothing is left running', { timeout: 60_000 }, async () => {
    using proc = runProcess('npm', ['start'], { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', AUTH_SECRET: TEST_SECRET }, { timeoutMs: 45_000 });
    await expectSigtermDrains(proc, await mintToken(TEST_SECRET, { userId: 'alice', conversations: ['*'] }));
  });
});
