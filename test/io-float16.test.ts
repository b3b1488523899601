import { describe, expect, it } from 'vitest';
import {
  float16BitsToFloat32, float16ToFloat32Array, float32ToFloat16Array, float32ToFloat16Bits, isFloat16NonFinite,
} from '../src/io/float16.js';

/** Positive finite float16 values by bit pattern 0..0x7bff, computed from the definition. */
const POSITIVE: number[] = [];
for (let h = 0; h <= 0x7bff; h++) {
  const e = h >> 10;
  const m = h & 0x3ff;
  POSITIVE.push(e === 0 ? m * 2 ** -24 : (1 + m / 1024) * 2 ** (e - 15));
}

/** Reference rounding: nearest float16 by search, ties to the even bit pattern, 65520 and up to Inf. */
function referenceBits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (Number.isNaN(x)) return 0x7e00;
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = POSITIVE.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (POSITIVE[mid] <= a) lo = mid; else hi = mid;
  }
  const dLo = a - POSITIVE[lo];
  const dHi = POSITIVE[hi] - a;
  const h = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 === 0 ? lo : hi);
  return sign | h;
}

describe('io - float16 conversion', () => {
  it('decodes every float16 bit pattern exactly and re-encodes it to the same bits', () => {
    for (let h = 0; h < 65536; h++) {
      const v = float16BitsToFloat32(h);
      const exp = (h >> 10) & 0x1f;
      const mant = h & 0x3ff;
      if (exp === 0x1f && mant !== 0) {
        expect(v).toBeNaN();
        expect(isFloat16NonFinite(float32ToFloat16Bits(v))).toBe(true);
        continue;
      }
      const expected = (h & 0x8000 ? -1 : 1) * (exp === 0x1f ? Infinity : h & 0x7fff ? POSITIVE[h & 0x7fff] : 0);
      expect(Object.is(v, expected) || v === expected).toBe(true);
      expect(float32ToFloat16Bits(v)).toBe(h);
    }
  });

  it('rounds float32 to nearest, ties to even, with subnormals and overflow', () => {
    // Exact midpoints between neighbours (all representable in float32).
    for (let h = 0; h < 0x7bff; h += 7) {
      const mid = (POSITIVE[h] + POSITIVE[h + 1]) / 2;
      expect(Math.fround(mid)).toBe(mid);
      expect(float32ToFloat16Bits(mid), `midpoint above ${h}`).toBe(h % 2 === 0 ? h : h + 1);
      expect(float32ToFloat16Bits(-mid)).toBe(0x8000 | (h % 2 === 0 ? h : h + 1));
    }
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00);
    expect(float32ToFloat16Bits(1e10)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-Infinity)).toBe(0xfc00);
    expect(float32ToFloat16Bits(2 ** -24)).toBe(0x0001);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // tie to even (0)
    expect(float32ToFloat16Bits(Math.fround(2 ** -25 * 1.0001))).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 -> 2
    expect(float32ToFloat16Bits(1e-30)).toBe(0);
    expect(float32ToFloat16Bits(-1e-30)).toBe(0x8000);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -26)).toBe(0x0400); // rounds up into the normals
    expect(float32ToFloat16Bits(NaN) & 0x7fff).toBeGreaterThan(0x7c00);
  });

  it('agrees with a search-based reference on random float32 values', () => {
    let seed = 2024;
    const rand = () => { seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0; return seed; };
    const bits = new Uint32Array(1);
    const f = new Float32Array(bits.buffer);
    for (let i = 0; i < 200000; i++) {
      // Exponents concentrated around the float16 range.
      const exponent = 127 - 30 + (rand() % 50);
      bits[0] = (rand() & 0x80000000) | (exponent << 23) | (rand() & 0x7fffff);
      expect(float32ToFloat16Bits(f[0]), `${f[0]}`).toBe(referenceBits(f[0]));
    }
  });

  it('converts arrays both ways', () => {
    const src = Float32Array.from([0, -1.5, 3.14159, 70000, -1e-8, 6e-5]);
    const halves = float32ToFloat16Array(src);
    expect(Array.from(halves)).toEqual(Array.from(src, (v) => referenceBits(v)));
    const back = float16ToFloat32Array(halves);
    expect(back[1]).toBe(-1.5);
    expect(back[2]).toBe(3.140625); // nearest float16 (spacing 2^-9 near 3)
    expect(back[3]).toBe(Infinity);
  });
});
