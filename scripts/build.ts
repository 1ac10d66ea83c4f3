/**
 * `npm run build`: what production runs and what the package exports, into dist/.
 *
 * - tsc (tsconfig.build.json): src/ and the clients as JavaScript with .d.ts types, in the
 *   source layout (dist/src, dist/clients), imports rewritten from .ts to .js;
 * - the dashboard's files next to the compiled dashboard routes;
 * - the web chat: its page and stylesheet, and its script bundled for browsers once, here, so a
 *   built server needs no bundler (dist/clients/web);
 * - dist/main.js, the production start (`node dist/main.js`, and the package's bin).
 *
 * dist/ is emptied first: nothing left over from an earlier build is shipped.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { bundleWebChat } from '../src/server/web-chat-route.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function totalBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
    const path = join(dir, entry.name);
    return sum + (entry.isDirectory() ? totalBytes(path) : statSync(path).size);
  }, 0);
}

export interface BuildOptions {
  /** Where to (default dist/). Inside the project, so that node_modules resolves from it. */
  outDir?: string;
  /**
   * false: tsc emits JavaScript only — no type-check, no .d.ts (`--noCheck`): the same
   * JavaScript in a third of the time. The tests' build (test/support/global-build.ts) runs
   * every spawned server and CLI from it; `npm run typecheck` is what checks types.
   */
  typed?: boolean;
  /** No summary on stdout. */
  quiet?: boolean;
  /** More folders to compile along (relative to the project), e.g. the tests' build adds bench/. */
  alsoCompile?: string[];
}

export async function build(options: BuildOptions = {}): Promise<void> {
  const { outDir: dist = join(root, 'dist'), typed = true, quiet = false, alsoCompile = [] } = options;
  const started = performance.now();
  rmSync(dist, { recursive: true, force: true });

  let project = join(root, 'tsconfig.build.json');
  if (alsoCompile.length > 0) {
    // tsc takes no extra `include` on its command line: a config beside the output that extends
    // the build's (its include, absolute) with the extra folders.
    project = `${dist}.tsconfig.json`;
    mkdirSync(dirname(project), { recursive: true });
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8').replace(/^\s*\/\/.*$/gm, '')) as { include: string[]; exclude: string[] };
    const absolute = (paths: string[]) => paths.map((p) => join(root, p));
    writeFileSync(project, JSON.stringify({ extends: join(root, 'tsconfig.build.json'), include: absolute([...build.include, ...alsoCompile]), exclude: absolute(build.exclude) }));
  }
  const tsc = [join(root, 'node_modules/typescript/bin/tsc'), '-p', project, '--outDir', dist];
  if (!typed) tsc.push('--noCheck', '--declaration', 'false');
  try {
    execFileSync(process.execPath, tsc, { stdio: 'inherit' });
  } finally {
    if (project !== join(root, 'tsconfig.build.json')) rmSync(project, { force: true });
  }

  cpSync(join(root, 'src/admin/dashboard'), join(dist, 'src/admin/dashboard'), { recursive: true, filter: (path) => !path.endsWith('.ts') && !path.endsWith('tsconfig.json') });

  const web = join(dist, 'clients/web');
  mkdirSync(web, { recursive: true });
  for (const name of ['index.html', 'chat.css']) cpSync(join(root, 'clients/web', name), join(web, name));
  const script = await bundleWebChat(pathToFileURL(join(root, 'clients/web/main.ts')));
  writeFileSync(join(web, 'chat.js'), script);

  const main = join(dist, 'main.js');
  writeFileSync(main, "#!/usr/bin/env node\n// The production start: `node dist/main.js` (see docs/deploy.md).\nimport './src/main.js';\n");
  chmodSync(main, 0o755);

  if (quiet) return;
  const kib = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
  process.stdout.write(
    [
      `built ${relative(process.cwd(), dist) || 'dist'}/ in ${((performance.now() - started) / 1000).toFixed(1)} s: ${kib(totalBytes(dist))}`,
      `  server:   node dist/main.js`,
      `  web chat: dist/clients/web/chat.js ${kib(script.length)} minified, ${kib(gzipSync(script).length)} gzip`,
      '',
    ].join('\n'),
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await build();
