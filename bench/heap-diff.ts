/**
 * What the heap gained between two snapshots of one process (heap-per-connection.ts --snapshot):
 * objects of the second snapshot whose ids the first does not have, grouped by constructor or
 * closure name, and by retainer (the owner's name and the edge that holds it), in bytes per
 * `--per N` (the number of connections opened in between).
 *
 *   npx tsx bench/heap-diff.ts DIR/baseline.heapsnapshot DIR/loaded.heapsnapshot --per 2000 [--top 40]
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } };
  nodes: number[];
  edges: number[];
  strings: string[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '40' } } });
const [basePath, loadedPath] = positionals;
if (!basePath || !loadedPath) throw new Error('usage: heap-diff.ts baseline.heapsnapshot loaded.heapsnapshot --per N');
const per = Number(values.per);
const top = Number(values.top);

const ids = (s: Snapshot) => {
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const idAt = f.indexOf('id');
  const set = new Set<number>();
  for (let i = 0; i < s.nodes.length; i += width) set.add(s.nodes[i + idAt]!);
  return set;
};

const base = ids(JSON.parse(readFileSync(basePath, 'utf8')) as Snapshot);
const snap = JSON.parse(readFileSync(loadedPath, 'utf8')) as Snapshot;
const { node_fields: nf, node_types: nt, edge_fields: ef, edge_types: et } = snap.snapshot.meta;
const W = nf.length;
const EW = ef.length;
const [T, N, ID, SZ, EC] = ['type', 'name', 'id', 'self_size', 'edge_count'].map((k) => nf.indexOf(k)) as [number, number, number, number, number];
const [ET, EN, ETO] = ['type', 'name_or_index', 'to_node'].map((k) => ef.indexOf(k)) as [number, number, number];
const nodeTypes = nt[0];
const edgeTypes = et[0];
const { nodes, edges, strings } = snap;

const label = (n: number): string => {
  const type = nodeTypes[nodes[n + T]!]!;
  const name = strings[nodes[n + N]!]!;
  if (type === 'object' || type === 'closure' || type === 'native') return `${type === 'closure' ? 'closure ' : ''}${name}`;
  if (type === 'hidden' || type === 'code' || type === 'array') return `(${type}) ${name.slice(0, 40)}`;
  return `(${type})`;
};

// First retainer of each node (a strong edge that is not from the synthetic roots), by edge order.
const retainer = new Int32Array(nodes.length / W).fill(-1);
const retainerEdge = new Array<string>(nodes.length / W);
let e = 0;
for (let n = 0; n < nodes.length; n += W) {
  const count = nodes[n + EC]!;
  for (let k = 0; k < count; k += 1, e += EW) {
    const type = edgeTypes[edges[e + ET]!];
    if (type === 'weak') continue;
    const to = edges[e + ETO]! / W;
    if (retainer[to] !== -1) continue;
    // Prefer the first owner that is itself new (the structure that grew), else any.
    retainer[to] = n;
    const nameOrIndex = edges[e + EN]!;
    retainerEdge[to] = type === 'element' || type === 'hidden' ? `[${nameOrIndex}]` : String(strings[nameOrIndex]);
  }
}

const byName = new Map<string, { count: number; size: number }>();
const byRetainer = new Map<string, { count: number; size: number }>();
let total = 0;
for (let n = 0; n < nodes.length; n += W) {
  if (base.has(nodes[n + ID]!)) continue;
  const size = nodes[n + SZ]!;
  total += size;
  const name = label(n);
  const a = byName.get(name) ?? { count: 0, size: 0 };
  a.count += 1;
  a.size += size;
  byName.set(name, a);
  const r = retainer[n / W]!;
  const key = `${name}  ◀ ${r === -1 ? '(none)' : `${label(r)}.${retainerEdge[n / W]}`}`;
  const b = byRetainer.get(key) ?? { count: 0, size: 0 };
  b.count += 1;
  b.size += size;
  byRetainer.set(key, b);
}

const print = (title: string, map: Map<string, { count: number; size: number }>) => {
  console.log(`\n${title}`);
  console.log('   B/conn  objs/conn  what');
  for (const [k, v] of [...map].sort((a, b) => b[1].size - a[1].size).slice(0, top)) {
    console.log(`${(v.size / per).toFixed(0).padStart(8)}  ${(v.count / per).toFixed(2).padStart(9)}  ${k}`);
  }
};
console.log(`new objects: ${(total / per).toFixed(0)} B per connection (self sizes; N=${per})`);
print('by constructor / closure', byName);
print('by retainer', byRetainer);

// --inspect: a few new objects whose label starts with the given text, with their edges and retainer chain.
const inspect = process.env.HEAP_INSPECT;
if (inspect) {
  const edgeStart = new Int32Array(nodes.length / W + 1);
  for (let n = 0, acc = 0; n < nodes.length; n += W) {
    edgeStart[n / W] = acc;
    acc += nodes[n + EC]! * EW;
  }
  const edgeName = (i: number) => {
    const type = edgeTypes[edges[i + ET]!];
    const v = edges[i + EN]!;
    return type === 'element' || type === 'hidden' ? `[${v}]` : String(strings[v]);
  };
  let shown = 0;
  for (let n = 0; n < nodes.length && shown < Number(process.env.HEAP_INSPECT_COUNT ?? 3); n += W) {
    if (base.has(nodes[n + ID]!) || !label(n).startsWith(inspect)) continue;
    shown += 1;
    console.log(`\n${label(n)} self ${nodes[n + SZ]} B`);
    const start = edgeStart[n / W]!;
    for (let k = 0; k < Math.min(nodes[n + EC]!, 25); k += 1) {
      const i = start + k * EW;
      const to = edges[i + ETO]!;
      console.log(`   .${edgeName(i)} → ${label(to)} ${strings[nodes[to + N]!]!.slice(0, 60).replace(/\n/g, ' ')}`);
    }
    let r = n / W;
    const chain: string[] = [];
    for (let depth = 0; depth < 12 && retainer[r] !== -1; depth += 1) {
      chain.push(`${retainerEdge[r]} of ${label(retainer[r]!)}`);
      r = retainer[r]! / W;
    }
    console.log(`   retained: ${chain.join(' ◀ ')}`);
  }
}
