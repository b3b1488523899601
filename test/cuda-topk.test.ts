// Top-k on the CUDA backend against the CPU backend: exact equality on
// score matrices with many ties (labels by the same ranking rule), and for
// the chunked layer variants, the CPU backend's full scores as reference
// (sorted, nothing left out scores higher than the k-th, labels equal up to
// near-ties), with chunks that do not divide L and k above the chunk size.
import { describe, expect, it } from 'vitest';
import type { Backend, TopKResult } from '../src/native/index.js';
import { SEED, randomCsr, randomFfiIdx, rng } from './ops-helpers.js';
import { HAVE_CUDA, cpu, cuda, expectSame } from './cuda-helpers.js';

/**
 * got is a valid top-k of the float32 reference scores ref [B, L] (within tol), and agrees with
 * the CPU's up to near-ties. Plain loops (one expect at the end): L can be large.
 */
function expectTopKOf(got: TopKResult, cpuResult: TopKResult, ref: Float32Array, B: number, L: number, k: number, offset: number): void {
  const tol = 1e-4;
  const problems: string[] = [];
  const near = (a: number, b: number) => Math.abs(a - b) < tol * (1 + Math.abs(b));
  for (let b = 0; b < B && problems.length < 5; b++) {
    const row = Array.from(got.labels.subarray(b * k, (b + 1) * k));
    const valid = row.filter((l) => l >= 0);
    if (valid.length !== Math.min(k, L)) problems.push(`row ${b}: ${valid.length} labels, expected ${Math.min(k, L)}`);
    if (new Set(valid).size !== valid.length) problems.push(`row ${b}: repeated labels`);
    for (let i = 0; i < valid.length; i++) {
      const l = valid[i] - offset;
      if (l < 0 || l >= L) { problems.push(`row ${b} rank ${i}: label ${valid[i]} out of range`); continue; }
      const s = ref[b * L + l];
      if (!near(got.scores[b * k + i], s)) problems.push(`row ${b} rank ${i}: score ${got.scores[b * k + i]} vs reference ${s}`);
      if (i > 0 && got.scores[b * k + i] > got.scores[b * k + i - 1]) problems.push(`row ${b} rank ${i}: not sorted`);
      const other = cpuResult.labels[b * k + i];
      if (other !== valid[i] && !near(ref[b * L + other - offset], s)) problems.push(`row ${b} rank ${i}: label ${valid[i]} vs CPU ${other}, not a near-tie`);
    }
    const chosen = new Set(valid.map((l) => l - offset));
    const kth = got.scores[b * k + valid.length - 1];
    for (let l = 0; l < L; l++)
      if (!chosen.has(l) && ref[b * L + l] > kth + tol * (1 + Math.abs(kth))) {
        problems.push(`row ${b}: label ${l + offset} (score ${ref[b * L + l]}) left out above the k-th score ${kth}`);
        break;
      }
  }
  expect(problems, `seed ${SEED}`).toEqual([]);
}

describe.skipIf(!HAVE_CUDA)('cuda top-k - score matrices', () => {
  it('topK equals the CPU backend exactly on scores with many ties, -0/+0, NaN and -Infinity', async () => {
    const r = rng();
    for (const [B, L, k] of [[1, 1, 1], [3, 50, 7], [8, 9000, 20], [2, 100_003, 5], [5, 40, 64]]) {
      const s = Float32Array.from({ length: B * L }, () => r.int(7) - 3);
      for (let i = 0; i < Math.min(10, s.length); i++) s[r.int(s.length)] = [Number.NaN, -0, -Infinity, Infinity][r.int(4)];
      const run = (be: Backend) => be.topK(be.fromArray(s, [B, L]), k, { labelOffset: 1000 });
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      expectSame(g.labels, c.labels, `labels (B=${B}, L=${L}, k=${k})`);
      expectSame(g.scores, c.scores, `scores (B=${B}, L=${L}, k=${k})`);
    }
  });

  it('topK pads with label -1 and score -Infinity when k > L', async () => {
    const got = await cuda().topK(cuda().fromArray(Float32Array.from([0.5, 2, -1, 3, 3, 1]), [2, 3]), 5);
    expect(Array.from(got.labels)).toEqual([1, 0, 2, -1, -1, 0, 1, 2, -1, -1]);
    expect(Array.from(got.scores)).toEqual([2, 0.5, -1, -Infinity, -Infinity, 3, 3, 1, -Infinity, -Infinity]);
  });
});

describe.skipIf(!HAVE_CUDA)('cuda top-k - layers (fused for k <= 16, else over label chunks)', () => {
  const shapes: [number, number, number, number, number][] = [
    // B, I, L, k, chunk
    [1, 30, 100, 5, 8192],
    [7, 64, 4321, 5, 1000],
    [33, 200, 3000, 50, 16], // k above the chunk: candidates carried across many merges
    [128, 768, 20_011, 5, 8192],
    // the fused row-sparse top-k (k <= 16): two batch chunks of rows not a multiple of 4, k = 1 and 16,
    // fewer labels than k (padding), and k = 17 (chunked again)
    [130, 100, 5003, 16, 8192],
    [256, 300, 777, 1, 8192],
    [3, 20, 3, 5, 8192],
    [64, 500, 10_000, 17, 4096],
  ];
  for (const [B, I, L, k, chunk] of shapes) {
    it(`denseTopK / ffiTopK / sparseTopK are top-k of the layer's scores (B=${B}, I=${I}, L=${L}, k=${k}, chunk=${chunk})`, async () => {
      const r = rng();
      const fan = 13, nnz = L * 9, offset = 77;
      const x = r.floats(B * I), Wd = r.floats(L * I, 0.1), Wf = r.floats(L * fan), Ws = r.floats(nnz), b = r.floats(L, 0.1);
      const idx = randomFfiIdx(r, L, fan, I);
      const csr = randomCsr(r, L, I, nnz);
      const opts = { chunk, labelOffset: offset };
      const run = async (be: Backend) => {
        const tx = be.fromArray(x, [B, I]), tb = be.fromArray(b);
        const tWd = be.fromArray(Wd, [L, I]), tWf = be.fromArray(Wf, [L, fan]), tIdx = be.fromArray(idx, [L, fan]);
        const tRp = be.fromArray(csr.rowPtr), tCol = be.fromArray(csr.col), tWs = be.fromArray(Ws);
        return Promise.all([
          be.denseTopK(tx, tWd, tb, k, opts),
          be.ffiTopK(tx, tWf, tIdx, tb, k, opts),
          be.sparseTopK(tx, tRp, tCol, tWs, tb, k, opts),
        ]);
      };
      // Reference scores: the CPU backend's forward ops (float32).
      const tx = cpu.fromArray(x, [B, I]), tb = cpu.fromArray(b);
      const outs = [cpu.tensor('float32', [B, L]), cpu.tensor('float32', [B, L]), cpu.tensor('float32', [B, L])];
      cpu.denseForward(tx, cpu.fromArray(Wd, [L, I]), tb, outs[0]);
      cpu.ffiForward(tx, cpu.fromArray(Wf, [L, fan]), cpu.fromArray(idx, [L, fan]), tb, outs[1]);
      cpu.sparseForward(tx, cpu.fromArray(csr.rowPtr), cpu.fromArray(csr.col), cpu.fromArray(Ws), tb, outs[2]);
      const refs = await Promise.all(outs.map((t) => t.read()));
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      for (let i = 0; i < 3; i++) expectTopKOf(g[i], c[i], refs[i], B, L, k, offset);
    });
  }
});
