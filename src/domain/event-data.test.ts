import { describe, expect, it } from 'vitest';
import { DomainError } from './errors.ts';
import { checkEventData, MAX_EVENT_DATA_DEPTH } from './event-data.ts';

function refusal(value: unknown, maxBytes = 10_000): string {
  try {
    checkEventData(value, 'data', maxBytes);
  } catch (error) {
    expect(error).toBeInstanceOf(DomainError);
    expect((error as DomainError).code).toBe('INVALID_EVENT_DATA');
    return (error as Error).message;
  }
  throw new Error('accepted');
}

describe('checkEventData', () => {
  it('accepts JSON and what superjson carries', () => {
    expect(checkEventData({ a: [1, 'x', null, true], b: { c: new Date(0), d: 1n, e: undefined, f: new Map([['k', 1]]), g: new Set([1]) } }, 'data', 10_000)).toBeGreaterThan(0);
    expect(checkEventData(null, 'data', 10)).toBe(8);
  });

  it('refuses keys named __proto__, constructor or prototype at any depth, naming the path', () => {
    expect(refusal(JSON.parse('{"a":{"__proto__":{"x":1}}}'))).toBe('data.a.__proto__: keys named __proto__, constructor or prototype are not allowed');
    expect(refusal({ constructor: 1 })).toContain('data.constructor:');
    expect(refusal([{ ok: 1 }, { prototype: {} }])).toContain('data[1].prototype:');
  });

  it('refuses nesting deeper than the limit without overflowing the stack', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i += 1) deep = [deep];
    expect(refusal(deep)).toContain(`nested deeper than ${MAX_EVENT_DATA_DEPTH} levels`);
    let ok: unknown = 1;
    for (let i = 0; i < MAX_EVENT_DATA_DEPTH; i += 1) ok = [ok];
    expect(() => checkEventData(ok, 'data', 10_000)).not.toThrow();
  });

  it('refuses what cannot be sent and what is too large', () => {
    expect(refusal({ f: () => 1 })).toBe('data.f: a function cannot be sent');
    expect(refusal({ s: Symbol('x') })).toBe('data.s: a symbol cannot be sent');
    expect(refusal({ e: new Error('x') })).toBe('data.e: only plain objects can be sent');
    expect(refusal({ text: 'x'.repeat(200) }, 100)).toBe('data: must be at most 100 bytes as JSON (MAX_MESSAGE_BYTES)');
  });
});
