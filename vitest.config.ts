import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The files that load both cores for long stretches (chaos, storms, churn, soak and bench
 * smokes, killed and restarted cluster nodes): run one at a time, first, so none of them
 * competes with another for CPU. Everything else then runs two files at a time — those files
 * mostly wait on sockets and child processes. Vitest's default on 2 cores is one file at a time
 * for everything (available parallelism − 1): 6 minutes; this way about 4.
 */
const HEAVY = ['test/chaos.test.ts', 'test/storm.test.ts', 'test/presence-storm.test.ts', 'test/soak-smoke.test.ts', 'test/regression/issue-11-churn.test.ts'];

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
    // The JSON report lets .ci/run close with a plain "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
    projects: [
      { extends: true, test: { name: 'heavy', include: HEAVY, maxWorkers: 1, sequence: { groupOrder: 0 } } },
      {
        extends: true,
        test: { name: 'rest', include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'clients/**/*.test.ts'], exclude: [...configDefaults.exclude, ...HEAVY], maxWorkers: 2, isolate: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
