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
import { chmodSync, cpSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gzipSync } from 'node:zlib';
import { bundleWebChat } from '../src/server/web-chat-route.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(root, 'dist');

function totalBytes(dir: string): number {
  return readdirSync(dir, { withFileTypes: true }).reduce((sum, entry) => {
    const path = join(dir, entry.name);
    return sum + (entry.isDirectory() ? totalBytes(path) : statSync(path).size);
  }, 0);
}

export async function build(): Promise<void> {
  const started = performance.now();
  rmSync(dist, { recursive: true, force: true });

  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });

  cpSync(join(root, 'src/admin/dashboard'), join(dist, 'src/admin/dashboard'), { recursive: true, filter: (path) => !path.endsWith('.ts') && !path.endsWith('tsconfig.json') });

  const web = join(dist, 'clients/web');
  mkdirSync(web, { recursive: true });
  for (const name of ['index.html', 'chat.css']) cpSync(join(root, 'clients/web', name), join(web, name));
  const script = await bundleWebChat(pathToFileURL(join(root, 'clients/web/main.ts')));
  writeFileSync(join(web, 'chat.js'), script);

  const main = join(dist, 'main.js');
  writeFileSync(main, "#!/usr/bin/env node\n// The production start: `node dist/main.js` (see docs/deploy.md).\nimport './src/main.js';\n");
  chmodSync(main, 0o755);

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
