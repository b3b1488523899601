import { describe, expect, it } from 'vitest';
import { Xoshiro128, deriveSeed, randomPermutation, splitmix64 } from '../src/data/random.js';
import { batchCount, batchIndices, batches, epochOrder, gatherBatch } from '../src/data/batches.js';
import { csrFromRows } from '../src/data/csr.js';
import type { CsrMatrix, Dataset, DenseMatrix } from '../src/data/types.js';

describe('data - deterministic random numbers', () => {
  it('splitmix64 matches the reference outputs for seed 1234567', () => {
    let state = 1234567n;
    const out: bigint[] = [];
    for (let i = 0; i < 5; i++) {
      const r = splitmix64(state);
      state = r.state;
      out.push(r.value);
    }
    expect(out).toEqual([6457827717110365317n, 3203168211198807973n, 9817491932198370423n, 4593380528125082431n, 16408922859458223821n]);
  });

  it('xoshiro128** matches the reference outputs from state (1, 2, 3, 4)', () => {
    const g = Xoshiro128.fromState(1, 2, 3, 4);
    expect([g.nextUint32(), g.nextUint32(), g.nextUint32(), g.nextUint32()]).toEqual([11520, 0, 5927040, 70819200]);
  });

  it('gives the same permutation for the same seed, a valid one, and a different one per epoch', () => {
    const a = randomPermutation(1000, new Xoshiro128(42));
    const b = randomPermutation(1000, new Xoshiro128(42));
    expect(a).toEqual(b);
    expect(Array.from(a).sort((x, y) => x - y)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(epochOrder(1000, 42, 0)).not.toEqual(epochOrder(1000, 42, 1));
    expect(epochOrder(1000, 42, 3)).toEqual(randomPermutation(1000, new Xoshiro128(deriveSeed(42, 3))));
    // Pinned: this exact order on every machine (a change here changes every training run).
    expect(Array.from(epochOrder(10, 7, 0))).toEqual(PINNED_ORDER);
  });

  it('below(n) is uniform (chi-square over 6 buckets)', () => {
    const g = new Xoshiro128(123);
    const counts = new Array(6).fill(0);
    const draws = 60000;
    for (let i = 0; i < draws; i++) counts[g.below(6)]++;
    const expected = draws / 6;
    const chi2 = counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(20.5); // p ~ 0.001 for 5 degrees of freedom
  });
});

// Computed once by this implementation (its PRNG outputs are checked against the
// reference vectors above); pinned so that a change of order cannot go unnoticed.
const PINNED_ORDER = [3, 7, 2, 1, 6, 8, 5, 9, 0, 4];

describe('data - batching', () => {
  const dense: DenseMatrix = { kind: 'dense', rows: 7, cols: 2, data: Float32Array.from({ length: 14 }, (_, i) => i) };
  const sparse = csrFromRows(9, [[0], [1, 2], [], [3], [4, 8], [5], [6]], [[1], [2, 3], [], [4], [5, 6], [7], [8]]);
  const labels = csrFromRows(3, [[0], [1], [2], [0, 1], [], [2], [0, 2]]);

  it('visits every row once per epoch in batches of the requested size', () => {
    const seen: number[] = [];
    const sizes: number[] = [];
    for (const b of batchIndices(7, { batchSize: 3, seed: 1, epoch: 0 })) {
      seen.push(...b);
      sizes.push(b.length);
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen.slice().sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(batchCount(7, 3, true)).toBe(2);
    expect([...batchIndices(7, { batchSize: 3, seed: 1, epoch: 0, dropLast: true })].map((b) => b.length)).toEqual([3, 3]);
    expect([...batchIndices(7, { batchSize: 3, seed: 1, epoch: 0, shuffle: false })].map((b) => Array.from(b))).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
    expect(() => [...batchIndices(7, { batchSize: 0, seed: 1, epoch: 0 })]).toThrow(/batchSize/);
  });

  it('gathers dense rows, CSR rows (values materialised) and label rows in batch order', () => {
    const rows = Uint32Array.from([4, 0, 2]);
    const d = gatherBatch({ features: dense, labels, source: '' }, rows);
    expect(d.features).toEqual({ kind: 'dense', rows: 3, cols: 2, data: Float32Array.from([8, 9, 0, 1, 4, 5]) });
    expect(Array.from(d.labels.indptr)).toEqual([0, 0, 1, 2]);
    expect(Array.from(d.labels.indices)).toEqual([0, 2]);
    expect(d.labels.values).toBeNull();
    const s = gatherBatch({ features: sparse, labels, source: '' }, rows).features as CsrMatrix;
    expect(Array.from(s.indptr)).toEqual([0, 2, 3, 3]);
    expect(Array.from(s.indices)).toEqual([4, 8, 0]);
    expect(Array.from(s.values!)).toEqual([5, 6, 1]);
    const binary: Dataset = { features: csrFromRows(9, [[1, 2], [3]]), labels: csrFromRows(3, [[0], [1]]), source: '' };
    const bb = gatherBatch(binary, Uint32Array.from([1, 0])).features as CsrMatrix;
    expect(Array.from(bb.values!)).toEqual([1, 1, 1]);
    expect(() => gatherBatch(binary, Uint32Array.from([2]))).toThrow(/row 2 out of range/);
  });

  it('batches() of an epoch cover the dataset', () => {
    let total = 0;
    let labelEntries = 0;
    for (const b of batches({ features: sparse, labels, source: '' }, { batchSize: 2, seed: 9, epoch: 4 })) {
      total += b.indices.length;
      labelEntries += b.labels.indptr[b.labels.rows];
    }
    expect(total).toBe(7);
    expect(labelEntries).toBe(labels.indptr[labels.rows]);
  });
});
