import { configDefaults, defineConfig } from 'vitest/config';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * The files that load the machine for long stretches (chaos, storms, churn): a group of their
 * own, two at a time — each leaves a core mostly idle (chaos runs its clients and server in one
 * process; the storms' servers wait on their clients), which one at a time left the machine
 * 30–80 % idle for 80 s. Everything else runs two files at a time too, in the other group —
 * those files mostly wait on sockets and child processes (the soak smoke too: 40 users in 9 rooms). Vitest's default on 2 cores is one file at a time
 * for everything (available parallelism − 1): 6 minutes; this way about 4.
 */
const HEAVY = ['test/chaos.test.ts', 'test/storm.test.ts', 'test/presence-storm.test.ts', 'test/regression/issue-11-churn.test.ts'];

/**
 * The slowest of the other files (tens of seconds each, mostly waiting on child processes):
 * started first, so two workers do not end with one of them alone on a 35 s file. On a clean
 * clone (CI) vitest has no durations cached and would order by file size.
 */
const SLOW_FIRST = ['test/bench-smoke.test.ts', 'test/soak-smoke.test.ts', 'test/web-chat.browser.test.ts', 'test/presence-batch.test.ts', 'test/cluster-failover.test.ts', 'test/cluster.test.ts', 'test/regression/issue-10-connection-edges.test.ts', 'test/redis-cluster-outage.test.ts', 'test/sse-edges.test.ts', 'test/package.test.ts', 'test/regression/issue-11-http-edge.test.ts', 'test/codegen.test.ts', 'test/dashboard.browser.test.ts', 'test/cluster-redis-outage.test.ts', 'test/regression/issue-6-chaos-findings.test.ts', 'test/signals.test.ts', 'test/read-rates.test.ts', 'test/cluster-history.test.ts', 'test/limits.test.ts', 'test/compat/trpc-clients.test.ts', 'test/shutdown.test.ts', 'test/regression/issue-11-tokens-and-faults.test.ts'];

class SlowFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const rank = (file: TestSpecification) => {
      const i = SLOW_FIRST.findIndex((path) => file.moduleId.endsWith(path));
      return i === -1 ? SLOW_FIRST.length : i;
    };
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b));
  }
}

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node (and so tsx, and every package in node_modules)
    // loads its CommonJS entry, while Vite would hand our own sources the "module" (.mjs) entry.
    // Two graphql instances then meet in one schema ("Cannot use GraphQLNonNull from another
    // module or realm"). Resolve it the way Node does, so tests run what production runs.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    testTimeout: 20_000,
    hookTimeout: 20_000,
    env: { LOG_LEVEL: 'silent' },
    // One build of the server and CLIs per run: every process a test spawns runs from it.
    globalSetup: ['test/support/global-build.ts'],
    // The JSON report lets .ci/run close with a plain "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    sequence: { sequencer: SlowFirst },
    projects: [
      { extends: true, test: { name: 'heavy', include: HEAVY, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: { name: 'rest', include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'clients/**/*.test.ts'], exclude: [...configDefaults.exclude, ...HEAVY], maxWorkers: 2, isolate: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
