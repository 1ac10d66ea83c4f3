import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as TrpcClient from '@trpc/client';

/**
 * The client-compatibility matrix: one folder per published `@trpc/client` version,
 * `test/compat/trpc-client-<version>/`, holding that client together with its own, equal
 * `@trpc/server` (the client's exact peer, whose `unstable-core-do-not-import` it runs on) and a
 * committed lockfile. `install.ts` (npm's `pretest`) installs them; `trpc-clients.test.ts` runs
 * the acceptance tests once per folder against our real server, which runs on the root's
 * `@trpc/server`. Adding a version is adding a folder: nothing here lists them.
 */

export const COMPAT_DIR = dirname(fileURLToPath(import.meta.url));

export interface CompatFolder {
  /** The `@trpc/client` (and `@trpc/server`) version the folder pins. */
  version: string;
  dir: string;
}

const FOLDER = /^trpc-client-(\d+)\.(\d+)\.(\d+)$/;

/** The matrix's folders, oldest version first. */
export function compatFolders(): CompatFolder[] {
  return readdirSync(COMPAT_DIR, { withFileTypes: true })
    .flatMap((entry) => {
      const match = entry.isDirectory() ? FOLDER.exec(entry.name) : null;
      return match ? [{ key: match.slice(1, 4).map(Number), folder: { version: match.slice(1, 4).join('.'), dir: join(COMPAT_DIR, entry.name) } }] : [];
    })
    .sort((a, b) => a.key[0]! - b.key[0]! || a.key[1]! - b.key[1]! || a.key[2]! - b.key[2]!)
    .map(({ folder }) => folder);
}

/** The part of `@trpc/client` the tests use (typed by the root's copy: 11.x keeps this shape). */
export type TrpcClientModule = Pick<typeof TrpcClient, 'createTRPCClient' | 'createWSClient' | 'wsLink' | 'TRPCClientError'>;

export interface LoadedClient {
  module: TrpcClientModule;
  /** `version` of the loaded `@trpc/client` and of the `@trpc/server` it runs on. */
  clientVersion: string;
  serverVersion: string;
  /** Where the client's `@trpc/server/unstable-core-do-not-import` resolved to. */
  serverCorePath: string;
}

const readVersion = (packageJson: string) => (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version;

/**
 * Loads the folder's `@trpc/client` with Node's own resolution from that folder (its CommonJS
 * build, which every 11.x ships), so that it runs on the folder's `@trpc/server`, not the root's.
 */
export function loadClient({ version, dir }: CompatFolder): LoadedClient {
  const modules = join(dir, 'node_modules');
  if (!existsSync(join(modules, '@trpc', 'client', 'package.json'))) {
    throw new Error(`@trpc/client ${version} is not installed in ${dir}: \`npm test\` installs the matrix first (its pretest), or run \`npm run compat:install\``);
  }
  const require = createRequire(join(dir, 'package.json'));
  const entry = require.resolve('@trpc/client');
  const serverCorePath = createRequire(entry).resolve('@trpc/server/unstable-core-do-not-import');
  if (!serverCorePath.startsWith(modules + sep)) throw new Error(`@trpc/client ${version} resolved its @trpc/server outside ${dir}: ${serverCorePath}`);
  return {
    module: require(entry) as TrpcClientModule,
    clientVersion: readVersion(join(modules, '@trpc', 'client', 'package.json')),
    serverVersion: readVersion(join(modules, '@trpc', 'server', 'package.json')),
    serverCorePath,
  };
}
