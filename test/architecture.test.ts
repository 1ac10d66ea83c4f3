/**
 * The folders of src/ are layers, and this test is their fence (issue 12): it reads every
 * relative import under src/ (type-only ones included — a type import still couples two folders)
 * and fails on
 *  - an import loop between folders (two folders that reach each other, directly or through a third),
 *  - an import loop between files,
 *  - the pure core and its seams (rooms, acks, history, typing, broker, presence, domain, util)
 *    importing the layers built on them (service, transport, admin, metrics, cluster),
 *  - anything but the composition root (and metrics/) importing cluster/,
 *  - anything but the composition root (server.ts, server/, main.ts, index.ts) importing it.
 * Intended direction: domain, util ← rooms, acks, history, typing, broker, presence ← service ←
 * transport, admin, metrics, cluster ← server.ts / main.ts. `cluster/` wires the Redis
 * implementations of the seams and may depend on service and admin interfaces, never the reverse.
 * No dependency: a regex over the sources is enough for `import … from '…'`, `export … from '…'`
 * and `import('…')`, which are the only forms this code base uses.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
const CORE = ['rooms', 'acks', 'history', 'typing', 'broker', 'presence', 'domain', 'util'];
const UPPER = ['service', 'transport', 'admin', 'metrics', 'cluster'];
/** The composition root: the files that wire everything, and the folder `server.ts` is split into. */
const ROOT = ['server.ts', 'main.ts', 'index.ts', 'server'];
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === '__generated__' ? [] : sources(path);
    return /\.tsx?$/.test(entry.name) ? [path] : [];
  });
}

/** `src/`-relative path with `/` separators, e.g. `cluster/cluster.ts`. */
const rel = (path: string): string => relative(SRC, path).split(sep).join('/');
/** The top folder under src/, or the file name for a file directly in src/. */
const folderOf = (file: string): string => file.split('/')[0]!;

const files = sources(SRC).map(rel);
const graph = new Map<string, string[]>(
  files.map((file) => {
    const text = readFileSync(join(SRC, file), 'utf8');
    const targets = [...text.matchAll(IMPORT)]
      .map((match) => rel(resolve(SRC, dirname(file), match[1]!)))
      .filter((target) => !target.startsWith('..'));
    return [file, targets];
  }),
);

const folderEdges = new Map<string, Set<string>>();
for (const [file, targets] of graph) {
  for (const target of targets) {
    const from = folderOf(file);
    const to = folderOf(target);
    if (from === to) continue;
    if (!folderEdges.has(from)) folderEdges.set(from, new Set());
    folderEdges.get(from)!.add(to);
  }
}

/** Every cycle found by a depth-first walk, each reported once by the edge that closes it. */
function cycles(edges: Map<string, Iterable<string>>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) visit(node);
  return found;
}

/** `file → target` for each import from one of `fromFolders` into one of `toFolders`. */
function importsBetween(fromFolders: string[], toFolders: string[]): string[] {
  return [...graph].flatMap(([file, targets]) =>
    fromFolders.includes(folderOf(file)) ? targets.filter((target) => toFolders.includes(folderOf(target))).map((target) => `${file} → ${target}`) : [],
  );
}

describe('architecture of src/', () => {
  it('reads the import graph (the check is not vacuous)', () => {
    expect(files.length).toBeGreaterThan(30);
    expect(graph.get('server.ts')!.length).toBeGreaterThan(5);
  });

  it('has no import loop between folders', () => {
    expect(cycles(folderEdges).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('has no import loop between files', () => {
    expect(cycles(graph).map((cycle) => cycle.join(' → '))).toEqual([]);
  });

  it('keeps the core and its seams free of service, transport, admin, metrics and cluster', () => {
    expect(importsBetween(CORE, UPPER)).toEqual([]);
  });

  it('keeps the service free of the layers built on it', () => {
    expect(importsBetween(['service'], UPPER.filter((folder) => folder !== 'service'))).toEqual([]);
  });

  it('keeps cluster mode behind the composition root: only it (and /metrics, for the broker counters) imports cluster/', () => {
    const allowed = [...ROOT, 'cluster', 'metrics'];
    expect(importsBetween(files.map(folderOf).filter((folder) => !allowed.includes(folder)), ['cluster'])).toEqual([]);
  });

  it('lets nothing but the composition root import it', () => {
    expect(importsBetween(files.map(folderOf).filter((folder) => !ROOT.includes(folder)), ROOT)).toEqual([]);
  });
});
