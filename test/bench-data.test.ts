// The GPU benchmark's synthetic data (bench/bench-data.ts) must cover its ranges: a
// short-period generator once made the benchmark's model use 8,190 of 65,536 units as
// sources and repeat the rows of W1, and every figure measured on it was too high.
import { describe, expect, it } from 'vitest';
import { BenchData, distinctSources } from '../bench/bench-data.js';

const shape = { input: 768, hidden: 16_384, labels: 20_000, fanin: 32 };

describe('bench data', () => {
  it('bench data - every hidden unit feeds some label and a label has distinct sources', () => {
    const { idx } = new BenchData().ffiModel(shape);
    // 640,000 uniform draws over 16,384 units leave a given unit unused with probability e^-39
    expect(distinctSources(idx, shape.hidden)).toBe(shape.hidden);
    for (let l = 0; l < shape.labels; l++) {
      const row = idx.subarray(l * shape.fanin, (l + 1) * shape.fanin);
      expect(new Set(row).size).toBe(shape.fanin);
    }
  });

  it('bench data - the rows of W1 are all different and the weights within their bounds', () => {
    const { W1, W2 } = new BenchData().ffiModel(shape);
    const rows = new Set<string>();
    for (let h = 0; h < shape.hidden; h++) rows.add(W1.subarray(h * shape.input, h * shape.input + 8).join(','));
    expect(rows.size).toBe(shape.hidden);
    const b1 = Math.sqrt(6 / shape.input), b2 = Math.sqrt(3 / shape.fanin);
    expect(W1.every((w) => Math.abs(w) <= b1)).toBe(true);
    expect(W2.every((w) => Math.abs(w) <= b2)).toBe(true);
  });

  it('bench data - a batch has its labels in range and features of the right scale', () => {
    const data = new BenchData(7);
    const { x, ptr, ids } = data.batch(256, shape.input, shape.labels, 5);
    expect(ptr[256]).toBe(256 * 5);
    expect(ids.every((l) => l < shape.labels)).toBe(true);
    expect(new Set(ids).size).toBeGreaterThan(1200); // 1,280 draws over 20,000 labels: ~40 repeats expected
    const meanSquare = x.reduce((s, v) => s + v * v, 0) / x.length;
    expect(meanSquare * shape.input).toBeGreaterThan(0.9); // normal / sqrt(input): mean square 1 / input
    expect(meanSquare * shape.input).toBeLessThan(1.1);
  });

  it('bench data - the same seed gives the same data, another seed other data', () => {
    const small = { input: 16, hidden: 64, labels: 100, fanin: 8 };
    const a = new BenchData(1).ffiModel(small), b = new BenchData(1).ffiModel(small), c = new BenchData(2).ffiModel(small);
    expect(Array.from(a.idx)).toEqual(Array.from(b.idx));
    expect(Array.from(a.W1)).toEqual(Array.from(b.W1));
    expect(Array.from(a.idx)).not.toEqual(Array.from(c.idx));
  });

  it('bench data - a fan-in above the hidden units is refused', () => {
    expect(() => new BenchData().ffiModel({ input: 4, hidden: 8, labels: 2, fanin: 9 })).toThrow(/fan-in 9 exceeds the 8 hidden units/);
  });
});
