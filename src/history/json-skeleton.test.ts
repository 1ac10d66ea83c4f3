import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { joinJson, skeletonParts, splitJson } from './json-skeleton.ts';

const roundTrip = (text: string) => {
  const { skeleton, values } = splitJson(text);
  return joinJson(skeletonParts(skeleton), values);
};

describe('JSON skeleton and values', () => {
  it('gives back exactly the text for any JSON.stringify output', () => {
    const strings = fc.oneof(fc.string({ unit: 'binary' }), fc.constantFrom('', '"', '\\', '\\"', 'a\\', '\u0001', '\u0002', '\u2028', 'x.y', '0'));
    const value = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: 'small' }, strings, fc.integer(), fc.double({ noNaN: true }), fc.boolean(), fc.constant(null), fc.array(tie('node'), { maxLength: 5 }), fc.dictionary(strings, tie('node'), { maxKeys: 5 })),
    })).node;
    fc.assert(fc.property(value, (v) => {
      const text = JSON.stringify(v);
      expect(roundTrip(text)).toBe(text);
    }), { numRuns: 2000 });
  });

  it('keeps keys in the skeleton and a repeated value once', () => {
    const at = '2026-01-02T03:04:05.006Z';
    const text = JSON.stringify({ at, message: { id: 'm1', body: 'say "hi" \\', sentAt: at, n: 1, ok: false, empty: '' } });
    const { skeleton, values } = splitJson(text);
    expect(skeleton).toBe('{"at":\u0001,"message":{"id":\u0001,"body":\u0001,"sentAt":\u0001,"n":1,"ok":false,"empty":\u0001}}');
    expect(values.split('\u0001')).toEqual([at, 'm1', 'say \\"hi\\" \\\\', '\u00020', '']);
    expect(roundTrip(text)).toBe(text);
  });

  it('handles texts without string values', () => {
    for (const text of ['{}', '[]', '{"a":1,"b":[true,null]}', '[[],{}]']) expect(roundTrip(text)).toBe(text);
  });
});
