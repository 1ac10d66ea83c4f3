import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

/**
 * How a test runs one of our scripts as a process: `node <build>/<script>.js` from the run's
 * build (test/support/global-build.ts) when the script is part of it — src/ and the chat, admin
 * and CLI clients — otherwise (tests' own scripts, benches, or no build) through tsx.
 * `script` is relative to the project's root, e.g. 'src/main.ts'.
 */
export function nodeArgsFor(script: string): string[] {
  const dir = builtDir();
  if (dir && /^(src|clients\/(chat|admin|cli))\/.+\.ts$/.test(script)) {
    const built = join(dir, script.replace(/\.ts$/, '.js'));
    if (existsSync(built)) return [built];
  }
  return ['--import', 'tsx', script];
}

function builtDir(): string {
  try {
    return inject('builtDir') ?? '';
  } catch {
    return ''; // not inside a vitest worker
  }
}
