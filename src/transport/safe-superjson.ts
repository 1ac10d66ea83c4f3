import type { DataTransformer } from '@trpc/server';
import superjson, { type SuperJSONResult } from 'superjson';

/**
 * superjson for untrusted input. superjson 2.2 walks `meta.values` without checking its shape:
 * a string where an annotation tree belongs makes it recurse, copying a growing path at every
 * level, until the stack overflows — ~10 ms of CPU and megabytes of garbage for a 100-byte
 * input, found by our protocol fuzzer (test/regression/issue-6-fuzz-findings.test.ts). Inputs are
 * checked here first: value annotations must be well-formed trees of bounded depth and size, and
 * referential-equality annotations (which can build cycles, and which no input of ours needs)
 * are refused. Outputs are superjson's own.
 */

const MAX_DEPTH = 32;
const MAX_NODES = 1000;

export class UnsafeInputError extends Error {
  override readonly name = 'UnsafeInputError';
}

export function safeDeserialize(payload: unknown): unknown {
  if (payload === undefined) return payload;
  if (typeof payload !== 'object' || payload === null || Array.isArray(payload) || !('json' in payload)) {
    throw new UnsafeInputError('input must be superjson: an object with a "json" field');
  }
  const { meta } = payload as { meta?: unknown };
  if (meta !== undefined) checkMeta(meta);
  return superjson.deserialize(payload as SuperJSONResult);
}

export const safeSuperjson: DataTransformer = {
  serialize: (value: unknown) => superjson.serialize(value),
  deserialize: safeDeserialize,
};

function checkMeta(meta: unknown): void {
  if (!isRecord(meta)) throw new UnsafeInputError('superjson meta must be an object');
  for (const key of Object.keys(meta)) {
    if (key !== 'values' && key !== 'v') throw new UnsafeInputError(`superjson meta.${key} is not accepted in input`);
  }
  if (meta.v !== undefined && typeof meta.v !== 'number') throw new UnsafeInputError('superjson meta.v must be a number');
  if (meta.values !== undefined) {
    const budget = { nodes: 0 };
    if (!isTree(meta.values, 0, budget)) throw new UnsafeInputError('superjson meta.values is not a well-formed annotation tree');
  }
}

/** A tree is `[annotation, children?]` or an object of subtrees; an annotation is a name or `[kind, name]`. */
function isTree(tree: unknown, depth: number, budget: { nodes: number }): boolean {
  budget.nodes += 1;
  if (depth > MAX_DEPTH || budget.nodes > MAX_NODES) return false;
  if (Array.isArray(tree)) {
    if (tree.length < 1 || tree.length > 2) return false;
    const [annotation, children] = tree as [unknown, unknown];
    if (!isAnnotation(annotation)) return false;
    if (children === undefined) return true;
    return isRecord(children) && Object.values(children).every((child) => isTree(child, depth + 1, budget));
  }
  return isRecord(tree) && Object.values(tree).every((child) => isTree(child, depth + 1, budget));
}

function isAnnotation(value: unknown): boolean {
  if (typeof value === 'string') return true;
  return Array.isArray(value) && value.length === 2 && typeof value[0] === 'string' && typeof value[1] === 'string';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
