import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

/**
 * The machines and CI run Node 20, and package.json promises `>=20.19.0`. This keeps every
 * package that `npm ci` installs — runtime and dev, from package-lock.json (lockfile v3 records
 * each package's `engines`) — declaring support for that floor, so `npm ci` prints no
 * EBADENGINE warning and nothing we install was only made for a newer Node. When it fails, pick
 * an older release of the package (or of the dependency that brings it in) rather than raising
 * the floor.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ENGINES_NODE = '>=20.19.0';

interface LockedPackage {
  name?: string;
  version?: string;
  dev?: boolean;
  engines?: { node?: string };
}
interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockedPackage>;
}

const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { engines?: { node?: string } };
const lock = JSON.parse(readFileSync(`${ROOT}package-lock.json`, 'utf8')) as Lockfile;

/** `node_modules/a/node_modules/@s/b` → `@s/b` (the lock names a package by its install path). */
function nameOf(path: string, entry: LockedPackage): string {
  return entry.name ?? path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

/**
 * The locked packages whose `engines.node` the given Node version does not satisfy: one sorted
 * line per package version (a version installed in several places is listed once).
 */
function offenders(packages: Lockfile['packages'], node: string): string[] {
  const lines = Object.entries(packages)
    .filter(([path, entry]) => path !== '' && entry.engines?.node !== undefined && !semver.satisfies(node, entry.engines.node))
    .map(([path, entry]) => `${nameOf(path, entry)}@${entry.version} (${entry.dev ? 'dev' : 'runtime'}) wants node ${entry.engines?.node}`);
  return [...new Set(lines)].sort();
}

describe('Node engine floor', () => {
  it(`package.json declares engines.node ${ENGINES_NODE}, and the lock records the same`, () => {
    expect(pkg.engines?.node).toBe(ENGINES_NODE);
    expect(lock.lockfileVersion).toBe(3);
    expect(lock.packages['']?.engines?.node).toBe(ENGINES_NODE);
  });

  it('every package in the lock, dev and runtime, supports the lowest Node that package.json allows', () => {
    // The lowest version package.json's range allows: our promise to Node 20 users.
    const floor = semver.minVersion(pkg.engines?.node ?? '*')?.version ?? '0.0.0';
    expect(floor).toBe('20.19.0');
    // The lock records engines for hundreds of packages; a handful would mean it was not read.
    const declaring = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && entry.engines?.node !== undefined);
    expect(declaring.length).toBeGreaterThan(100);

    const bad = offenders(lock.packages, floor);
    const why = `these need a newer Node than ${floor} (\`npm ls NAME\` shows what brings each in):\n  ${bad.join('\n  ')}\n`;
    expect(bad, why).toEqual([]);
  });

  it('names each offender once, by package, version and range', () => {
    const packages = {
      '': { engines: { node: ENGINES_NODE } },
      'node_modules/ok': { version: '1.0.0', engines: { node: '>=18' } },
      'node_modules/listr2': { version: '10.2.2', dev: true, engines: { node: '>=22.13.0' } },
      'node_modules/@graphql-tools/x/node_modules/@whatwg-node/promise-helpers': { version: '2.0.2', dev: true, engines: { node: '>=22.15.0' } },
      'node_modules/@graphql-tools/y/node_modules/@whatwg-node/promise-helpers': { version: '2.0.2', dev: true, engines: { node: '>=22.15.0' } },
    };
    expect(offenders(packages, '20.19.0')).toEqual([
      '@whatwg-node/promise-helpers@2.0.2 (dev) wants node >=22.15.0',
      'listr2@10.2.2 (dev) wants node >=22.13.0',
    ]);
  });
});
