/**
 * `npm run build:client`: the typed client as one browser ES module, dist/client/realtime-client.js
 * — what `import … from 'realtime-broadcast/client'` costs a page. It bundles the module the
 * package's `browser` export condition names, from source (clients/chat/browser.ts: no `ws`);
 * esbuild with platform 'browser' fails on any Node built-in, so a build that succeeds is a
 * bundle a browser can load.
 * Prints the size minified and gzipped (node:zlib, level 9) and what dominates it (the
 * metafile's inputs, grouped by package).
 */
import { build, type Metafile } from 'esbuild';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export interface ClientBuild {
  outfile: string;
  code: string;
  minifiedBytes: number;
  gzipBytes: number;
  /** Output bytes by package (`@trpc/client`, `superjson`…) or `realtime-broadcast` for our own files, largest first. */
  contributors: Array<{ name: string; bytes: number; share: number }>;
  metafile: Metafile;
}

export async function buildClient(outfile = join(root, 'dist/client/realtime-client.js')): Promise<ClientBuild> {
  const result = await build({
    stdin: { contents: "export * from './clients/chat/browser.ts';", resolveDir: root, sourcefile: 'realtime-client.entry.js' },
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: true,
    metafile: true,
    write: false,
    outfile,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const output = result.outputFiles[0];
  if (!output) throw new Error('esbuild wrote no output');
  await mkdir(dirname(outfile), { recursive: true });
  await writeFile(outfile, output.contents);
  const code = output.text;
  const byName = new Map<string, number>();
  for (const out of Object.values(result.metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(out.inputs)) {
      const name = packageOf(input);
      byName.set(name, (byName.get(name) ?? 0) + bytesInOutput);
    }
  }
  const minifiedBytes = output.contents.byteLength;
  const contributors = [...byName]
    .map(([name, bytes]) => ({ name, bytes, share: bytes / minifiedBytes }))
    .sort((a, b) => b.bytes - a.bytes);
  return { outfile, code, minifiedBytes, gzipBytes: gzipSync(output.contents, { level: 9 }).byteLength, contributors, metafile: result.metafile };
}

/** `node_modules/@trpc/client/dist/x.mjs` → `@trpc/client`; our own sources → `realtime-broadcast`. */
function packageOf(input: string): string {
  const at = input.lastIndexOf('node_modules/');
  if (at < 0) return 'realtime-broadcast (clients/chat, src types)';
  const parts = input.slice(at + 'node_modules/'.length).split('/');
  return parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const built = await buildClient();
  console.log(`${relative(process.cwd(), built.outfile)}: ${kib(built.minifiedBytes)} minified, ${kib(built.gzipBytes)} gzip`);
  console.log('largest contributors (minified bytes in the bundle):');
  for (const { name, bytes, share } of built.contributors.slice(0, 8)) {
    console.log(`  ${name.padEnd(44)} ${kib(bytes).padStart(9)}  ${(share * 100).toFixed(0).padStart(3)} %`);
  }
}
