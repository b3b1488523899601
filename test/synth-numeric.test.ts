import { describe, expect, it } from 'vitest';
import { native } from '../src/native/index.js';
import { floatToHalfBits } from '../src/synth/index.js';
import { halfToFloat } from './synth-helpers.js';

/** Reference: the nearest of all finite halves (ties to the even mantissa), infinity past 65520. */
function referenceHalf(x: number, finite: { value: number; bits: number }[]): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0, hi = finite.length - 1;  // finite: non-negative halves, ascending
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (finite[mid].value <= a) lo = mid; else hi = mid;
  }
  const below = finite[lo], above = finite[hi];
  let pick = below;
  if (a - below.value > above.value - a) pick = above;
  else if (a - below.value === above.value - a && a !== below.value) pick = (below.bits & 1) === 0 ? below : above;
  return sign | pick.bits;
}

describe('synth - float16 conversion', () => {
  const finite = Array.from({ length: 0x7c00 }, (_, bits) => ({ bits, value: halfToFloat(bits) }));

  it('every half value, every midpoint between neighbours and its float neighbours round to nearest even', () => {
    const inputs: number[] = [];
    for (let b = 0; b < 0x7c00; b++) {
      const v = finite[b].value;
      inputs.push(v, -v);
      const next = b + 1 < 0x7c00 ? finite[b + 1].value : 65536;
      const mid = (v + next) / 2;  // exact in float32 (12 significant bits)
      const f = new Float32Array([mid]);
      const asInt = new Uint32Array(f.buffer);
      const up = new Float32Array(new Uint32Array([asInt[0] + 1]).buffer)[0];
      const down = new Float32Array(new Uint32Array([asInt[0] - 1]).buffer)[0];
      inputs.push(mid, -mid, up, down);
    }
    inputs.push(65504, 65519.99, 65520, 1e6, Infinity, -Infinity, 2 ** -25, 2 ** -26, 1e-10, 0, -0);
    const x = Float32Array.from(inputs);
    const got = floatToHalfBits(x);
    const wrong: string[] = [];
    for (let i = 0; i < x.length; i++) {
      const want = referenceHalf(x[i], finite);
      if (got[i] !== want) wrong.push(`${x[i]}: got 0x${got[i].toString(16)}, want 0x${want.toString(16)}`);
    }
    expect(wrong.slice(0, 5)).toEqual([]);
  });

  it('NaN stays NaN', () => {
    const h = floatToHalfBits(Float32Array.from([NaN]))[0];
    expect(h & 0x7c00).toBe(0x7c00);
    expect(h & 0x3ff).not.toBe(0);
  });
});

describe('synth - libm-free elementary functions', () => {
  const check = (native() as unknown as { synthMathCheck(name: string, x: Float64Array): Float64Array }).synthMathCheck;

  function worstRelativeError(name: string, f: (x: number) => number, xs: number[]): number {
    const y = check(name, Float64Array.from(xs));
    let worst = 0;
    xs.forEach((x, i) => {
      const want = f(x);
      worst = Math.max(worst, want === 0 ? Math.abs(y[i]) : Math.abs(y[i] - want) / Math.abs(want));
    });
    return worst;
  }

  // a deterministic spread of inputs (no Math.random: the test must be repeatable)
  const grid = (lo: number, hi: number, n: number) => Array.from({ length: n }, (_, i) => lo + ((hi - lo) * (i + 0.5)) / n);

  it('exp, log and tanh agree with Math.* to ~1e-15 over the ranges the generator uses', () => {
    expect(worstRelativeError('exp', Math.exp, grid(-700, 700, 20001))).toBeLessThan(1e-15);
    expect(worstRelativeError('log', Math.log, grid(1e-12, 1, 20001))).toBeLessThan(1e-15);
    expect(worstRelativeError('log', Math.log, grid(1, 3e6, 20001))).toBeLessThan(1e-15);
    expect(worstRelativeError('log', Math.log, [2 ** -1074, 2 ** -1060, 2 ** -54, 2 ** 1000])).toBeLessThan(1e-15);
    expect(worstRelativeError('tanh', Math.tanh, [...grid(-25, 25, 20001), ...grid(-0.1, 0.1, 2001), 1e-300, -1e-9])).toBeLessThan(2e-15);
  });

  it('edge values', () => {
    const y = check('log', Float64Array.from([0, -1, 1]));
    expect(y[0]).toBe(-Infinity);
    expect(Number.isNaN(y[1])).toBe(true);
    expect(y[2]).toBe(0);
    const e = check('exp', Float64Array.from([0, -1000, 1000]));
    expect(Array.from(e)).toEqual([1, 0, Infinity]);
  });
});
