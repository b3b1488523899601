import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import type { TopKResult } from '../src/native/index.js';
import { SEED, csrRef, denseRef, ffiRef, randomCsr, randomFfiIdx, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

/** Top-k of each row by sorting all scores: descending, ties by smaller label; -1 / -Infinity padding. */
function sortTopK(scores: ArrayLike<number>, B: number, L: number, k: number, offset = 0): TopKResult {
  const labels = new Int32Array(B * k).fill(-1), out = new Float32Array(B * k).fill(-Infinity);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, l) => l).sort((p, q) => scores[b * L + q] - scores[b * L + p] || p - q);
    for (let i = 0; i < Math.min(k, L); i++) {
      labels[b * k + i] = order[i] + offset;
      out[b * k + i] = scores[b * L + order[i]];
    }
  }
  return { labels, scores: out };
}

/**
 * A layer's top-k against float64 reference scores: the returned scores match
 * the reference at the returned labels, are sorted, and nothing left out
 * scores higher than the k-th (within float32 tolerance).
 */
function expectTopKOf(got: TopKResult, ref: Float64Array, B: number, L: number, k: number, offset: number): void {
  const tol = 1e-4;
  for (let b = 0; b < B; b++) {
    const row = Array.from(got.labels.subarray(b * k, (b + 1) * k));
    const valid = row.filter((l) => l >= 0);
    expect(valid.length, `row ${b}, seed ${SEED}`).toBe(Math.min(k, L));
    expect(new Set(valid).size).toBe(valid.length);
    for (let i = 0; i < valid.length; i++) {
      const l = valid[i] - offset;
      expect(l).toBeGreaterThanOrEqual(0);
      expect(Math.abs(got.scores[b * k + i] - ref[b * L + l])).toBeLessThan(tol * (1 + Math.abs(ref[b * L + l])));
      if (i > 0) expect(got.scores[b * k + i]).toBeLessThanOrEqual(got.scores[b * k + i - 1]);
    }
    const chosen = new Set(valid.map((l) => l - offset));
    const kth = got.scores[b * k + valid.length - 1];
    for (let l = 0; l < L; l++) if (!chosen.has(l)) expect(ref[b * L + l]).toBeLessThanOrEqual(kth + tol * (1 + Math.abs(kth)));
  }
}

describe('ops - top-k', () => {
  it('topK equals sorting the full scores, ties broken by the smaller label', async () => {
    const r = rng();
    const B = 1 + r.int(8), L = 50 + r.int(200), k = 1 + r.int(20);
    // few distinct values: many ties
    const s = Float32Array.from({ length: B * L }, () => r.int(7) - 3);
    const got = await be.topK(be.fromArray(s, [B, L]), k, { labelOffset: 1000 });
    const ref = sortTopK(s, B, L, k, 1000);
    expect(Array.from(got.labels)).toEqual(Array.from(ref.labels));
    expect(Array.from(got.scores)).toEqual(Array.from(ref.scores));
  });

  it('topK pads with label -1 and score -Infinity when k > L', async () => {
    const s = Float32Array.from([0.5, 2, -1, 3, 3, 1]);
    const got = await be.topK(be.fromArray(s, [2, 3]), 5);
    expect(Array.from(got.labels)).toEqual([1, 0, 2, -1, -1, 0, 1, 2, -1, -1]);
    expect(Array.from(got.scores)).toEqual([2, 0.5, -1, -Infinity, -Infinity, 3, 3, 1, -Infinity, -Infinity]);
  });

  it('topK rejects k < 1 naming the op and the argument', () => {
    const t = be.fromArray(new Float32Array(4), [2, 2]);
    expect(() => be.topK(t, 0)).toThrow(RangeError);
    expect(() => be.topK(t, 0)).toThrow(/^topK: argument k must be an integer in \[1, /);
  });

  // label counts that are not multiples of the chunk, batch 1, k > chunk, k > L
  for (const [B, I, L, k, chunk] of [[4, 16, 103, 5, 10], [1, 9, 37, 40, 8], [3, 12, 64, 20, 7], [2, 10, 20, 3, 8192]]) {
    const what = `(B=${B}, I=${I}, L=${L}, k=${k}, chunk=${chunk})`;

    it(`denseTopK equals the top-k of the dense scores ${what}`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(L * I), b = r.floats(L);
      const offset = r.int(100);
      const got = await be.denseTopK(be.fromArray(x, [B, I]), be.fromArray(W, [L, I]), be.fromArray(b), k, { labelOffset: offset, chunk });
      expectTopKOf(got, denseRef(x, W, b, B, I, L), B, L, k, offset);
    });

    it(`ffiTopK equals the top-k of ffiForward's scores ${what}`, async () => {
      const r = rng();
      const fan = 7;
      const x = be.fromArray(r.floats(B * I), [B, I]), W = be.fromArray(r.floats(L * fan), [L, fan]);
      const idxArr = randomFfiIdx(r, L, fan, I), idx = be.fromArray(idxArr, [L, fan]), b = be.fromArray(r.floats(L));
      const out = be.tensor('float32', [B, L]);
      be.ffiForward(x, W, idx, b, out);
      const got = await be.ffiTopK(x, W, idx, b, k, { chunk, labelOffset: 5 });
      // the chunked scores are bit-identical to the forward's: exact comparison with sorting them
      const ref = sortTopK(await out.read(), B, L, k, 5);
      expect(Array.from(got.labels), `seed ${SEED}`).toEqual(Array.from(ref.labels));
      expect(Array.from(got.scores)).toEqual(Array.from(ref.scores));
      expectTopKOf(got, ffiRef(await x.read(), await W.read(), idxArr, await b.read(), B, I, L, fan), B, L, k, 5);
    });

    it(`sparseTopK equals the top-k of the CSR layer's scores ${what}`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, L * 3);
      const x = r.floats(B * I), W = r.floats(L * 3), b = r.floats(L);
      const got = await be.sparseTopK(be.fromArray(x, [B, I]), be.fromArray(csr.rowPtr), be.fromArray(csr.col), be.fromArray(W), be.fromArray(b), k, { chunk });
      expectTopKOf(got, csrRef(x, csr, W, b, B), B, L, k, 0);
    });
  }
});

/** Round half to even, as rintf. */
function rintEven(v: number): number {
  const f = Math.floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** int8TopK's input rows: q = clamp(rint(x / s_b), -127, 127) with s_b = max|x| / 127 in float32 (NaN for a row
 * holding a NaN or an infinity, whose q are 0). */
function int8Rows(x: Float32Array, B: number, I: number): { q: Int8Array; scale: Float32Array } {
  const q = new Int8Array(B * I), scale = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    let m = 0, finite = true;
    for (let i = 0; i < I; i++) {
      const a = Math.abs(x[b * I + i]);
      if (!Number.isFinite(a)) finite = false; else m = Math.max(m, a);
    }
    const s = Math.fround(Math.fround(m) / 127);
    scale[b] = finite ? s : NaN;
    for (let i = 0; i < I; i++) q[b * I + i] = finite && s > 0 ? Math.min(127, Math.max(-127, rintEven(Math.fround(x[b * I + i] / s)))) : 0;
  }
  return { q, scale };
}

/** A label's weight scale 2^e: the smallest e with max|w| <= 32639 2^e (native/common/int8_topk.h). */
function int8WeightScale(m: number, finite: boolean): number {
  if (!finite) return NaN;
  if (!(m > 0)) return 0;
  let E = Math.ceil(Math.log2(m));  // then exactly: 2^(E-1) <= m < 2^E
  while (m >= 2 ** E) E++;
  while (m < 2 ** (E - 1)) E--;
  let e = E - 15;
  if (m > 32639 * 2 ** e) e++;
  return 2 ** e;
}

/**
 * The int8TopK scores written out independently of the C++ (native/common/int8_topk.h): weights as
 * W16 = 256 hi + lo, exact integer sums, float(256 acc_hi + acc_lo) 2^e, fma(s_b, v, bias) (float64 then
 * float32: double rounding would differ from the fma only on an exact float32 midpoint).
 */
function int8Scores(x: Float32Array, B: number, I: number, L: number, begin: (l: number) => number, end: (l: number) => number,
  src: ArrayLike<number>, W: Float32Array, bias: Float32Array): Float32Array {
  const { q, scale } = int8Rows(x, B, I);
  const out = new Float32Array(B * L);
  for (let l = 0; l < L; l++) {
    let m = 0, finite = true;
    for (let e = begin(l); e < end(l); e++) {
      if (!Number.isFinite(W[e])) finite = false; else m = Math.max(m, Math.abs(W[e]));
    }
    const ls = int8WeightScale(m, finite);
    for (let b = 0; b < B; b++) {
      let hiSum = 0, loSum = 0;
      for (let e = begin(l); e < end(l); e++) {
        const w16 = ls > 0 ? Math.min(32639, Math.max(-32639, rintEven(W[e] / ls))) : 0;
        const hi = Math.floor((w16 + 128) / 256), lo = w16 - 256 * hi;
        hiSum += q[b * I + src[e]] * hi;
        loSum += q[b * I + src[e]] * lo;
      }
      const v = Math.fround(Math.fround(256 * hiSum + loSum) * ls);
      out[b * L + l] = Math.fround(scale[b] * v + bias[l]);
    }
  }
  return out;
}

describe('ops - int8 top-k (CPU reference of the CUDA int8TopK)', () => {
  const int8 = createBackend('cpu', { threads: 3, int8TopK: true });

  for (const [B, I, L, k, fan] of [[5, 300, 997, 5, 7], [1, 40, 61, 16, 3], [3, 64, 200, 12, 32]]) {
    it(`ffiTopK with int8TopK equals the int8 arithmetic written out in JS, and is close to float32 (B=${B}, L=${L}, k=${k})`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(L * fan), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
      const got = await int8.ffiTopK(int8.fromArray(x, [B, I]), int8.fromArray(W, [L, fan]), int8.fromArray(idx, [L, fan]), int8.fromArray(b), k);
      const ref = sortTopK(int8Scores(x, B, I, L, (l) => l * fan, (l) => (l + 1) * fan, idx, W, b), B, L, k);
      expect(Array.from(got.labels), `seed ${SEED}`).toEqual(Array.from(ref.labels));
      expect(Array.from(got.scores)).toEqual(Array.from(ref.scores));
      // close to the float32 top-k: the rounding of inputs to 8 bits and weights to 16 bits
      const plain = await be.ffiTopK(be.fromArray(x, [B, I]), be.fromArray(W, [L, fan]), be.fromArray(idx, [L, fan]), be.fromArray(b), k);
      let diff = 0, norm = 0;
      for (let i = 0; i < B * k; i++) diff += Math.abs(got.scores[i] - plain.scores[i]), norm += Math.abs(plain.scores[i]);
      expect(diff / norm, `relative difference of the top-${k} scores to float32, seed ${SEED}`).toBeLessThan(0.02);
    });
  }

  it('sparseTopK with int8TopK equals the int8 arithmetic written out in JS; k > 16 is not rounded (as on CUDA)', async () => {
    const r = rng();
    const B = 4, I = 50, L = 300, k = 7;
    const csr = randomCsr(r, L, I, 900);
    const x = r.floats(B * I), W = r.floats(900), b = r.floats(L, 0.1);
    const top = (backend: typeof be, input: Float32Array, kk: number) =>
      backend.sparseTopK(backend.fromArray(input, [B, I]), backend.fromArray(csr.rowPtr), backend.fromArray(csr.col), backend.fromArray(W), backend.fromArray(b), kk);
    const got = await top(int8, x, k);
    const ref = sortTopK(int8Scores(x, B, I, L, (l) => csr.rowPtr[l], (l) => csr.rowPtr[l + 1], csr.col, W, b), B, L, k);
    expect(Array.from(got.labels)).toEqual(Array.from(ref.labels));
    expect(Array.from(got.scores)).toEqual(Array.from(ref.scores));
    const [big, plain] = await Promise.all([top(int8, x, 17), top(be, x, 17)]);
    expect(Array.from(big.scores)).toEqual(Array.from(plain.scores));
  });

  it('a row with a NaN or an infinity scores NaN for every label (-Infinity, labels in order); other rows are unaffected', async () => {
    const r = rng();
    const B = 3, I = 30, L = 40, fan = 4, k = 3;
    const x = r.floats(B * I), W = r.floats(L * fan), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
    x[3] = NaN;
    x[2 * I + 1] = -Infinity;
    const got = await int8.ffiTopK(int8.fromArray(x, [B, I]), int8.fromArray(W, [L, fan]), int8.fromArray(idx, [L, fan]), int8.fromArray(b), k);
    for (const row of [0, 2]) {
      expect(Array.from(got.scores.subarray(row * k, (row + 1) * k))).toEqual([-Infinity, -Infinity, -Infinity]);
      expect(Array.from(got.labels.subarray(row * k, (row + 1) * k))).toEqual([0, 1, 2]);
    }
    expect(got.scores[k]).toBeGreaterThan(-Infinity);
  });

  it('rejects a non-boolean int8TopK option', () => {
    expect(() => createBackend('cpu', { int8TopK: 1 as unknown as boolean })).toThrow(/int8TopK must be a boolean/);
  });
});
