import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import { SEED, randomCsr, randomFfiIdx, rng } from './ops-helpers.js';
import type { Rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

/** Strictly positive random moments, so that a reset (0) is unambiguous. */
const moments = (r: Rng, n: number) => Float32Array.from({ length: n }, () => 0.01 + r.next());

describe('ops - rewiring of the FFI layer', () => {
  for (const [L, k, I, fraction] of [[57, 7, 40, 0.2], [30, 7, 7, 0.5], [200, 5, 1000, 0.1], [10, 3, 4, 1]]) {
    it(`rewireFfi keeps fan-in k with distinct sources and regrows the smallest |W| (L=${L}, k=${k}, I=${I}, fraction=${fraction})`, async () => {
      const r = rng();
      const W0 = r.floats(L * k), idx0 = randomFfiIdx(r, L, k, I), m0 = moments(r, L * k), v0 = moments(r, L * k);
      const W = be.fromArray(W0, [L, k]), idx = be.fromArray(idx0, [L, k]), m = be.fromArray(m0, [L, k]), v = be.fromArray(v0, [L, k]);
      const seed = r.int(1e9);
      const n = be.rewireFfi(W, idx, m, v, { fraction, inputDim: I, seed });
      expect(n).toBe(Math.floor(fraction * L * k));
      const [W1, idx1, m1, v1] = await Promise.all([W.read(), idx.read(), m.read(), v.read()]);
      const rewired: number[] = [];
      for (let e = 0; e < L * k; e++) {
        if (m1[e] === 0 && v1[e] === 0) {
          rewired.push(e);
          expect(W1[e]).toBe(0);
        } else {
          // kept: untouched
          expect([W1[e], idx1[e], m1[e], v1[e]]).toEqual([W0[e], idx0[e], m0[e], v0[e]]);
        }
      }
      expect(rewired.length, `seed ${SEED}`).toBe(n);
      // the pruned ones were the smallest |W|
      const isRewired = new Set(rewired);
      let maxPruned = 0, minKept = Infinity;
      for (let e = 0; e < L * k; e++) {
        if (isRewired.has(e)) maxPruned = Math.max(maxPruned, Math.abs(W0[e]));
        else minKept = Math.min(minKept, Math.abs(W0[e]));
      }
      expect(maxPruned).toBeLessThanOrEqual(minKept);
      // fan-in exactly k, distinct, in range
      for (let l = 0; l < L; l++) {
        const row = Array.from(idx1.subarray(l * k, (l + 1) * k));
        expect(new Set(row).size, `row ${l}, seed ${SEED}`).toBe(k);
        for (const s of row) expect(s).toBeLessThan(I);
      }
      // same seed, same result
      const again = be.fromArray(idx0, [L, k]);
      be.rewireFfi(be.fromArray(W0, [L, k]), again, be.fromArray(m0, [L, k]), be.fromArray(v0, [L, k]), { fraction, inputDim: I, seed });
      expect(Array.from(await again.read())).toEqual(Array.from(idx1));
    });
  }

  it('rewireFfi regrows sources uniformly (chi-square over inputs)', async () => {
    const r = rng();
    const L = 2000, k = 2, I = 20;
    const W = be.fromArray(new Float32Array(L * k), [L, k]); // all |W| equal: fraction by flat order
    const idx = be.fromArray(randomFfiIdx(r, L, k, I), [L, k]);
    const n = be.rewireFfi(W, idx, be.fromArray(moments(r, L * k), [L, k]), be.fromArray(moments(r, L * k), [L, k]), { fraction: 1, inputDim: I, seed: r.int(1e9) });
    expect(n).toBe(L * k);
    const counts = new Array(I).fill(0);
    for (const s of await idx.read()) counts[s]++;
    const expected = (L * k) / I;
    const chi2 = counts.reduce((a, c) => a + (c - expected) ** 2 / expected, 0);
    expect(chi2, `chi-square with 19 degrees of freedom, seed ${SEED}`).toBeLessThan(50); // p < 2e-4
  });

  it('rewireFfi checks its options at enqueue time', () => {
    const W = be.tensor('float32', [4, 3]), idx = be.tensor('uint32', [4, 3]), m = be.tensor('float32', [4, 3]), v = be.tensor('float32', [4, 3]);
    expect(() => be.rewireFfi(W, idx, m, v, { fraction: 1.5, inputDim: 10, seed: 1 })).toThrow(/^rewireFfi: option fraction must be a number in \[0, 1\]/);
    expect(() => be.rewireFfi(W, idx, m, v, { fraction: 0.5, inputDim: 2, seed: 1 })).toThrow(/rewireFfi: fan-in k = 3 exceeds option inputDim = 2/);
    expect(() => be.rewireFfi(W, idx, m, W, { fraction: 0.5, inputDim: 10, seed: 1 })).toThrow(/rewireFfi: arguments W and v must be different tensors/);
    expect(be.rewireFfi(W, idx, m, v, { fraction: 0, inputDim: 10, seed: 1 })).toBe(0);
  });
});

describe('ops - rewiring of the unstructured (CSR) layer', () => {
  for (const [L, I, nnz, fraction] of [[40, 30, 280, 0.25], [13, 6, 70, 0.3], [300, 500, 2100, 0.1], [5, 4, 20, 1]]) {
    it(`rewireSparse keeps nnz and a valid CSR, regrowing the smallest |W| at empty cells (L=${L}, I=${I}, nnz=${nnz}, fraction=${fraction})`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, nnz);
      const W0 = r.floats(nnz), m0 = moments(r, nnz), v0 = moments(r, nnz);
      const rowPtr = be.fromArray(csr.rowPtr), col = be.fromArray(csr.col);
      const W = be.fromArray(W0), m = be.fromArray(m0), v = be.fromArray(v0);
      const n = be.rewireSparse(rowPtr, col, W, m, v, { fraction, inputDim: I, seed: r.int(1e9) });
      expect(n).toBe(Math.floor(fraction * nnz));
      const [rp, c, W1, m1, v1] = await Promise.all([rowPtr.read(), col.read(), W.read(), m.read(), v.read()]);
      // valid CSR: nnz preserved, rows sorted, no duplicate cells
      expect(rp[0]).toBe(0);
      expect(rp[L]).toBe(nnz);
      const before = new Map<number, number>(); // cell -> entry
      for (let l = 0; l < L; l++) for (let e = csr.rowPtr[l]; e < csr.rowPtr[l + 1]; e++) before.set(l * I + csr.col[e], e);
      const kept = new Set<number>();
      let grown = 0;
      for (let l = 0; l < L; l++) {
        expect(rp[l + 1]).toBeGreaterThanOrEqual(rp[l]);
        for (let e = rp[l]; e < rp[l + 1]; e++) {
          expect(c[e]).toBeLessThan(I);
          if (e > rp[l]) expect(c[e], `row ${l} sorted and unique, seed ${SEED}`).toBeGreaterThan(c[e - 1]);
          if (m1[e] === 0 && v1[e] === 0) {
            grown++;
            expect(W1[e]).toBe(0);
          } else {
            const old = before.get(l * I + c[e]);
            expect(old, 'a kept connection existed before at the same cell').toBeDefined();
            expect([W1[e], m1[e], v1[e]]).toEqual([W0[old!], m0[old!], v0[old!]]);
            kept.add(old!);
          }
        }
      }
      expect(grown).toBe(n);
      expect(kept.size).toBe(nnz - n);
      let maxPruned = 0, minKept = Infinity;
      for (let e = 0; e < nnz; e++) {
        if (kept.has(e)) minKept = Math.min(minKept, Math.abs(W0[e]));
        else maxPruned = Math.max(maxPruned, Math.abs(W0[e]));
      }
      expect(maxPruned).toBeLessThanOrEqual(minKept);
    });
  }

  it('rewireSparse output still runs forward like its dense expansion', async () => {
    const r = rng();
    const L = 64, I = 32, nnz = 64 * 7, B = 3;
    const csr = randomCsr(r, L, I, nnz);
    const rowPtr = be.fromArray(csr.rowPtr), col = be.fromArray(csr.col), W = be.fromArray(r.floats(nnz));
    be.rewireSparse(rowPtr, col, W, be.fromArray(moments(r, nnz)), be.fromArray(moments(r, nnz)), { fraction: 0.3, inputDim: I, seed: 7 });
    const [rp, c, w] = await Promise.all([rowPtr.read(), col.read(), W.read()]);
    const D = new Float32Array(L * I);
    for (let l = 0; l < L; l++) for (let e = rp[l]; e < rp[l + 1]; e++) D[l * I + c[e]] = w[e];
    const x = be.fromArray(r.floats(B * I), [B, I]), b = be.fromArray(r.floats(L));
    const a = be.tensor('float32', [B, L]), d = be.tensor('float32', [B, L]);
    be.sparseForward(x, rowPtr, col, W, b, a);
    be.denseForward(x, be.fromArray(D, [L, I]), b, d);
    const [av, dv] = await Promise.all([a.read(), d.read()]);
    for (let i = 0; i < av.length; i++) expect(av[i]).toBeCloseTo(dv[i], 4);
  });
});
