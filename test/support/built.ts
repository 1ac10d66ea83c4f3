import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

/**
 * How a test runs one of our scripts as a process: `node <build>/<script>.js` from the run's
 * build (test/support/global-build.ts) when the script is part of it — src/, the chat, admin and
 * CLI clients, bench/ and the idle-clients script — otherwise (or with no build) through tsx.
 * `script` is relative to the project's root, e.g. 'src/main.ts'.
 */
export function nodeArgsFor(script: string): string[] {
  const dir = builtDir();
  if (dir && /^(src|clients\/(chat|admin|cli)|bench)\/.+\.ts$|^test\/support\/idle-clients\.ts$/.test(script)) {
    const built = join(dir, script.replace(/\.ts$/, '.js'));
    if (existsSync(built)) return [built];
  }
  return ['--import', 'tsx', script];
}

/** The run's build directory, or '' outside a vitest worker or without one. */
export function builtDir(): string {
  try {
    return inject('builtDir') ?? '';
  } catch {
    return ''; // not inside a vitest worker
  }
}
