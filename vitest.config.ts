import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 has no "exports" map: Node (and so tsx, and every package in node_modules)
    // loads its CommonJS entry, while Vite would hand our own sources the "module" (.mjs) entry.
    // Two graphql instances then meet in one schema ("Cannot use GraphQLNonNull from another
    // module or realm"). Resolve it the way Node does, so tests run what production runs.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'clients/**/*.test.ts'],
    // Two test files at a time. Vitest's default on 2 cores is one (available parallelism − 1),
    // which left the suite at 6 minutes; most files spend their time waiting on sockets and child
    // processes, not computing, and the CPU-heavy ones (storm, churn, chaos) assert completeness
    // and bounds, never timings. Measured: 361 s → 240 s on the 2-core CI machine, no new failure.
    maxWorkers: 2,
    testTimeout: 20_000,
    hookTimeout: 20_000,
    env: { LOG_LEVEL: 'silent' },
    // The JSON report lets .ci/run close with a plain "N passed, N failed" line.
    reporters: ['default', ['json', { outputFile: 'test-results/vitest.json' }]],
  },
});
