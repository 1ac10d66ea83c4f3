/**
 * Vitest's global setup: builds the server and the CLIs once per run, as JavaScript, and tells
 * the tests where (`inject('builtDir')`). Every server and CLI a test spawns runs from that
 * build (test/support/built.ts) — what production runs — instead of compiling TypeScript
 * through tsx on each start: about 1.9 s of CPU less per process, and the suite starts dozens.
 *
 * It is the production build (scripts/build.ts) without the type-check and the .d.ts files
 * (`npm run typecheck` checks types; test/package.test.ts ships the typed build), plus bench/
 * (the bench and soak smokes' processes) and the idle-clients script. Each run has
 * its own directory, under node_modules/.cache so that packages resolve from it and git never
 * sees it, removed when the run ends.
 */
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { build } from '../../scripts/build.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's build of src/ and the clients (absolute path), or '' when there is none. */
    builtDir: string;
  }
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Once per run: the root and each project run this setup, in one process. */
const shared = globalThis as { realtimeTestBuild?: Promise<string> };

export default async function setup(project: TestProject): Promise<() => void> {
  shared.realtimeTestBuild ??= (async () => {
    removeAbandonedBuilds();
    const outDir = join(ROOT, 'node_modules', '.cache', `test-build-${process.pid}`);
    await build({ outDir, typed: false, quiet: true, alsoCompile: ['bench', 'test/support/idle-clients.ts'] });
    return outDir;
  })();
  const outDir = await shared.realtimeTestBuild;
  project.provide('builtDir', outDir);
  return () => rmSync(outDir, { recursive: true, force: true });
}

/** Builds left by runs that were killed before their teardown (their process is gone). */
function removeAbandonedBuilds(): void {
  const cache = join(ROOT, 'node_modules', '.cache');
  let names: string[];
  try {
    names = readdirSync(cache);
  } catch {
    return;
  }
  for (const name of names) {
    const pid = /^test-build-(\d+)$/.exec(name)?.[1];
    if (pid && !isAlive(Number(pid))) rmSync(join(cache, name), { recursive: true, force: true });
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
