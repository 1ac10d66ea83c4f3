import { DomainError } from './errors.ts';

/**
 * The rules for the free-form data a publisher puts into an event (`system` data, a
 * `conversation_updated` change set), checked before the event takes a sequence number: what
 * cannot be delivered to every client is refused, never stored.
 *
 * - Values the wire format (superjson) carries: JSON (null, booleans, numbers, strings, arrays,
 *   plain objects) plus Date, bigint, undefined, Map and Set. Nothing else (functions, symbols,
 *   class instances).
 * - No object key named `__proto__`, `constructor` or `prototype`, at any depth. superjson refuses
 *   to serialize them as a prototype-pollution risk, and a client that merges the data into its
 *   state would run the same risk: refused, not rewritten.
 * - At most MAX_EVENT_DATA_DEPTH levels of nesting, and at most `maxBytes` (about its JSON size).
 */

export const MAX_EVENT_DATA_DEPTH = 32;
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Checks `value` (named `field` in errors); returns its approximate size as JSON, in bytes. */
export function checkEventData(value: unknown, field: string, maxBytes: number): number {
  let bytes = 0;
  // Iterative: a deeply nested value cannot overflow the stack here.
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path: field, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, path, depth } = stack.pop()!;
    if (typeof v === 'string') bytes += Buffer.byteLength(v, 'utf8') + 3;
    else if (v === null || v === undefined || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'bigint') bytes += 8;
    else if (v instanceof Date) bytes += 30;
    else if (typeof v !== 'object') throw invalid(`${path}: a ${typeof v} cannot be sent`);
    else {
      if (depth >= MAX_EVENT_DATA_DEPTH) throw invalid(`${path}: nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
      bytes += 2;
      if (Array.isArray(v) || v instanceof Set) {
        let i = 0;
        for (const item of v) stack.push({ value: item, path: `${path}[${i++}]`, depth: depth + 1 });
      } else if (v instanceof Map) {
        for (const [key, item] of v) {
          stack.push({ value: key, path: `${path}<key>`, depth: depth + 1 });
          stack.push({ value: item, path: `${path}.get(${typeof key === 'string' ? key : '…'})`, depth: depth + 1 });
        }
      } else {
        const proto = Object.getPrototypeOf(v) as unknown;
        if (proto !== Object.prototype && proto !== null) throw invalid(`${path}: only plain objects can be sent`);
        for (const key of Object.keys(v)) {
          if (FORBIDDEN_KEYS.has(key)) throw invalid(`${path}.${key}: keys named __proto__, constructor or prototype are not allowed`);
          bytes += Buffer.byteLength(key, 'utf8') + 4;
          stack.push({ value: (v as Record<string, unknown>)[key], path: `${path}.${key}`, depth: depth + 1 });
        }
      }
    }
    if (bytes > maxBytes) throw invalid(`${field}: must be at most ${maxBytes} bytes as JSON (MAX_MESSAGE_BYTES)`);
  }
  return bytes;
}

function invalid(message: string): DomainError {
  return new DomainError('INVALID_EVENT_DATA', message);
}
