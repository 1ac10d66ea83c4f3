/**
 * Installs the client-compatibility matrix (npm's `pretest`, so `npm test` and CI get it
 * without a step of their own): `npm ci` in each `test/compat/trpc-client-<version>/` whose
 * node_modules is missing or older than its package.json and lockfile (a content stamp, so a
 * fresh checkout's timestamps do not matter). Quiet when there is nothing to do; any failure
 * prints npm's output and fails the test run.
 *
 *   npm run compat:install            # what pretest runs
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { compatFolders, loadClient, type CompatFolder } from './matrix.ts';

const STAMP = join('node_modules', '.compat-installed');

function fingerprint(dir: string): string {
  const hash = createHash('sha256');
  for (const file of ['package.json', 'package-lock.json', '.npmrc']) {
    const path = join(dir, file);
    hash.update(`${file}\0${existsSync(path) ? readFileSync(path) : ''}\0`);
  }
  return hash.digest('hex');
}

function npm(args: string[]): Promise<{ code: number | null; output: string }> {
  // Under `npm test`, the npm that runs us; otherwise (or under another package manager) the one on the PATH.
  const execPath = process.env.npm_execpath;
  const [command, argv] = execPath && basename(execPath) === 'npm-cli.js' ? [process.execPath, [execPath, ...args]] : ['npm', args];
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'], shell: process.platform === 'win32' && command === 'npm' });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

async function install(folder: CompatFolder): Promise<string | null> {
  const { version, dir } = folder;
  const name = relative(process.cwd(), dir) || dir;
  if (!existsSync(join(dir, 'package-lock.json'))) {
    throw new Error(`${name} has no package-lock.json: run \`npm install --prefix ${name}\` once and commit the lockfile`);
  }
  const wanted = fingerprint(dir);
  const stamp = join(dir, STAMP);
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === wanted) return null;
  // The folder's .npmrc says legacy-peer-deps (the typescript peer is not needed); given here too.
  const { code, output } = await npm(['ci', '--prefix', dir, '--no-audit', '--no-fund', '--ignore-scripts', '--legacy-peer-deps', '--loglevel=error']);
  if (code !== 0) throw new Error(`npm ci --prefix ${name} failed (exit ${code}):\n${output}`);
  const loaded = loadClient(folder);
  if (loaded.clientVersion !== version || loaded.serverVersion !== version) {
    throw new Error(`${name} installed @trpc/client ${loaded.clientVersion} with @trpc/server ${loaded.serverVersion}; the folder's name says ${version} for both`);
  }
  writeFileSync(stamp, wanted);
  return name;
}

const folders = compatFolders();
const started = Date.now();
const results = await Promise.allSettled(folders.map(install));
const failures = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as Error] : []));
if (failures.length > 0) {
  for (const error of failures) console.error(`compat: ${error.message}`);
  console.error('compat: the @trpc/client matrix (test/compat/) could not be installed; the test run stops here.');
  process.exit(1);
}
const installed = results.flatMap((r) => (r.status === 'fulfilled' && r.value !== null ? [r.value] : []));
if (installed.length > 0) console.log(`compat: installed ${installed.join(', ')} in ${Date.now() - started} ms`);
