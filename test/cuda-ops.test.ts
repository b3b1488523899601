// The CUDA backend against the CPU reference backend, op by op, on fresh
// random inputs at several shapes (batch 1, batches and fan-ins that are not
// multiples of 4, label counts that no tile divides, an input dimension
// above 65,536). Outputs are poisoned (NaN) before every run. Tolerance:
// ||cuda - cpu|| / ||cpu|| < 1e-4 (float32 arithmetic in another order);
// exact equality where the arithmetic is the same (ReLU, dropout, fill,
// copy, rewiring, top-k with ties).
import { describe, expect, it } from 'vitest';
import type { Backend, LossKind } from '../src/native/index.js';
import { SEED, labelCsr, randomCsr, randomFfiIdx, randomLabels, rng } from './ops-helpers.js';
import type { Rng } from './ops-helpers.js';
import { HAVE_CUDA, cpu, cuda, denseTol, expectNear, expectSame, poisoned } from './cuda-helpers.js';
import { CudaBackend } from '../src/native/cuda-backend.js';
import { createBackend } from '../src/native/index.js';

const TOL = 1e-4;

describe.skipIf(!HAVE_CUDA)('cuda ops - elementwise', () => {
  it('fill, copy, reluForward, reluBackward and dropout equal the CPU backend exactly', async () => {
    const r = rng();
    for (const n of [1, 7, 1000, 300_001]) {
      const x = r.floats(n), g = r.floats(n);
      x[0] = Number.NaN; // NaN stays NaN through ReLU
      const run = async (be: Backend) => {
        const tx = be.fromArray(x), tg = be.fromArray(g);
        const relu = poisoned(be, [n]), back = poisoned(be, [n]), drop = poisoned(be, [n]), copy = poisoned(be, [n]);
        be.reluForward(tx, relu);
        be.reluBackward(relu, tg, back);
        be.dropout(tx, drop, 0.3, 12345 + n);
        be.copy(tx, copy);
        const ints = be.tensor('int32', [n]);
        be.fill(ints, -7);
        return Promise.all([relu.read(), back.read(), drop.read(), copy.read(), ints.read()]);
      };
      const [c, d] = await Promise.all([run(cpu), run(cuda())]);
      for (let i = 0; i < c.length; i++) expectSame(d[i], c[i], `n=${n} output ${i}`);
    }
  });

  it('in-place ReLU and dropout (out = x) work', async () => {
    const r = rng();
    const x = r.floats(5000);
    const run = async (be: Backend) => {
      const t = be.fromArray(x);
      be.reluForward(t, t);
      be.dropout(t, t, 0.5, 99);
      return t.read();
    };
    expectSame(await run(cuda()), await run(cpu), 'relu + dropout in place');
  });
});

describe.skipIf(!HAVE_CUDA)('cuda ops - dense', () => {
  for (const [B, I, O] of [[1, 37, 129], [33, 200, 1003], [128, 768, 4099]]) {
    it(`denseForward / denseBackward match the CPU backend (B=${B}, I=${I}, O=${O})`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(O * I, 0.1), b = r.floats(O), g = r.floats(B * O);
      const run = async (be: Backend) => {
        const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W, [O, I]), tb = be.fromArray(b), tg = be.fromArray(g, [B, O]);
        const out = poisoned(be, [B, O]), dX = poisoned(be, [B, I]), dW = poisoned(be, [O, I]), dB = poisoned(be, [O]);
        be.denseForward(tx, tW, tb, out);
        be.denseBackward(tx, tW, tg, dX, dW, dB);
        const dW0 = poisoned(be, [O, I]), dB0 = poisoned(be, [O]);
        be.denseBackward(tx, tW, tg, null, dW0, dB0); // first layer: no dX
        return Promise.all([out.read(), dX.read(), dW.read(), dB.read(), dW0.read(), dB0.read()]);
      };
      const [c, d] = await Promise.all([run(cpu), run(cuda())]);
      ['out', 'dX', 'dW', 'dB', 'dW (dX null)', 'dB (dX null)'].forEach((what, i) => expectNear(d[i], c[i], denseTol(), what));
    });
  }
});

interface SparseCase {
  B: number;
  I: number;
  L: number;
  k: number;
}

/** Forward, backward with and without dX of an FFI or CSR layer on one backend. */
async function rowSparse(be: Backend, kind: 'ffi' | 'csr', x: Float32Array, c: SparseCase, structure: { rowPtr?: Uint32Array; src: Uint32Array }, W: Float32Array, b: Float32Array, g: Float32Array) {
  const { B, I, L } = c;
  const tx = be.fromArray(x, [B, I]), tb = be.fromArray(b), tg = be.fromArray(g, [B, L]);
  const nnz = W.length;
  const out = poisoned(be, [B, L]), dX = poisoned(be, [B, I]);
  if (kind === 'ffi') {
    const tW = be.fromArray(W, [L, c.k]), tIdx = be.fromArray(structure.src, [L, c.k]);
    const dW = poisoned(be, [L, c.k]), dB = poisoned(be, [L]), dW0 = poisoned(be, [L, c.k]), dB0 = poisoned(be, [L]);
    be.ffiForward(tx, tW, tIdx, tb, out);
    be.ffiBackward(tx, tW, tIdx, tg, dX, dW, dB);
    be.ffiBackward(tx, tW, tIdx, tg, null, dW0, dB0);
    return Promise.all([out.read(), dX.read(), dW.read(), dB.read(), dW0.read(), dB0.read()]);
  }
  const tW = be.fromArray(W), tRp = be.fromArray(structure.rowPtr!), tCol = be.fromArray(structure.src);
  const dW = poisoned(be, [nnz]), dB = poisoned(be, [L]), dW0 = poisoned(be, [nnz]), dB0 = poisoned(be, [L]);
  be.sparseForward(tx, tRp, tCol, tW, tb, out);
  be.sparseBackward(tx, tRp, tCol, tW, tg, dX, dW, dB);
  be.sparseBackward(tx, tRp, tCol, tW, tg, null, dW0, dB0);
  return Promise.all([out.read(), dX.read(), dW.read(), dB.read(), dW0.read(), dB0.read()]);
}

const OUTPUTS = ['out', 'dX', 'dW', 'dB', 'dW (dX null)', 'dB (dX null)'];

describe.skipIf(!HAVE_CUDA)('cuda ops - FFI layer', () => {
  const cases: SparseCase[] = [
    { B: 1, I: 50, L: 77, k: 5 },
    { B: 33, I: 300, L: 1000, k: 13 },
    { B: 64, I: 1000, L: 2001, k: 40 }, // fan-in above a warp: several groups of 32 connections
    { B: 130, I: 70_000, L: 5003, k: 32 }, // an intermediate above 65,536; two batch chunks
    { B: 128, I: 4096, L: 20_000, k: 32 },
  ];
  for (const c of cases) {
    it(`ffiForward / ffiBackward match the CPU backend (B=${c.B}, I=${c.I}, L=${c.L}, k=${c.k})`, async () => {
      const r = rng();
      const x = r.floats(c.B * c.I), W = r.floats(c.L * c.k), b = r.floats(c.L), g = r.floats(c.B * c.L);
      const idx = randomFfiIdx(r, c.L, c.k, c.I);
      const [ref, got] = await Promise.all([rowSparse(cpu, 'ffi', x, c, { src: idx }, W, b, g), rowSparse(cuda(), 'ffi', x, c, { src: idx }, W, b, g)]);
      OUTPUTS.forEach((what, i) => expectNear(got[i], ref[i], TOL, what));
    });
  }

  it('int32 sources work like uint32 ones', async () => {
    const r = rng();
    const B = 8, I = 100, L = 300, k = 6;
    const x = r.floats(B * I), W = r.floats(L * k), b = r.floats(L);
    const idx = Int32Array.from(randomFfiIdx(r, L, k, I));
    const run = async (be: Backend) => {
      const out = poisoned(be, [B, L]);
      be.ffiForward(be.fromArray(x, [B, I]), be.fromArray(W, [L, k]), be.fromArray(idx, [L, k]), be.fromArray(b), out);
      return out.read();
    };
    expectNear(await run(cuda()), await run(cpu), TOL, 'out');
  });
});

describe.skipIf(!HAVE_CUDA)('cuda ops - CSR layer', () => {
  // Random cells: row sizes vary, some rows are empty.
  const cases: [number, number, number, number][] = [
    [1, 40, 60, 300],
    [37, 500, 999, 9000],
    [128, 70_000, 3000, 96_000],
    [16, 64, 10, 600], // long rows: about 60 connections each (two groups of 32)
  ];
  for (const [B, I, L, nnz] of cases) {
    it(`sparseForward / sparseBackward match the CPU backend (B=${B}, I=${I}, L=${L}, nnz=${nnz})`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, nnz);
      const x = r.floats(B * I), W = r.floats(nnz), b = r.floats(L), g = r.floats(B * L);
      const c = { B, I, L, k: 0 };
      const s = { rowPtr: csr.rowPtr, src: csr.col };
      const [ref, got] = await Promise.all([rowSparse(cpu, 'csr', x, c, s, W, b, g), rowSparse(cuda(), 'csr', x, c, s, W, b, g)]);
      OUTPUTS.forEach((what, i) => expectNear(got[i], ref[i], TOL, what));
    });
  }
});

describe.skipIf(!HAVE_CUDA)('cuda ops - losses', () => {
  const KINDS: LossKind[] = ['squared-hinge', 'bce'];
  for (const kind of KINDS) {
    for (const [B, L] of [[1, 23], [7, 10_001], [128, 70_000]]) {
      it(`lossForward ${kind} matches the CPU backend: value and gradient, separate, in place and value-only (B=${B}, L=${L})`, async () => {
        const r = rng();
        const scores = r.floats(B * L, 1.5);
        const labels = randomLabels(r, B, L);
        const { ptr, ids } = labelCsr(labels);
        const run = async (be: Backend) => {
          const s = be.fromArray(scores, [B, L]), tp = be.fromArray(ptr), ti = be.fromArray(ids);
          const d = poisoned(be, [B, L]);
          const l1 = be.lossForward(s, tp, ti, d, { kind });
          const inPlace = be.fromArray(scores, [B, L]);
          const l2 = be.lossForward(inPlace, tp, ti, inPlace, { kind });
          const l3 = be.lossForward(s, tp, ti, null, { kind });
          return Promise.all([l1.read(), d.read(), l2.read(), inPlace.read(), l3.read()]);
        };
        const [c, g] = await Promise.all([run(cpu), run(cuda())]);
        for (const i of [0, 2, 4]) expect(Math.abs(g[i][0] - c[i][0]) / Math.abs(c[i][0]), `loss value, seed ${SEED}`).toBeLessThan(1e-5);
        expectNear(g[1], c[1], 1e-5, 'dScores');
        expectNear(g[3], c[3], 1e-5, 'dScores in place');
      });
    }

    it(`lossForward ${kind}: label shards (labelOffset, normaliser) match the CPU backend`, async () => {
      const r = rng();
      const B = 9, Ltotal = 5000, offset = 1234, L = 2000;
      const scores = r.floats(B * L);
      const labels = randomLabels(r, B, Ltotal);
      const { ptr, ids } = labelCsr(labels);
      const run = async (be: Backend) => {
        const d = poisoned(be, [B, L]);
        const loss = be.lossForward(be.fromArray(scores, [B, L]), be.fromArray(ptr), be.fromArray(ids), d, { kind, labelOffset: offset, normaliser: Ltotal });
        return Promise.all([loss.read(), d.read()]);
      };
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      expect(Math.abs(g[0][0] - c[0][0]) / Math.abs(c[0][0])).toBeLessThan(1e-5);
      expectNear(g[1], c[1], 1e-5, 'dScores');
    });
  }
});

describe.skipIf(!HAVE_CUDA)('cuda ops - fused FFI layer and loss', () => {
  // [B, I, L, k, kind, labelOffset, total labels, bias shift]: a bias of -3 puts most
  // squared-hinge negatives below -1, so that most labels skip their backward.
  const cases: [number, number, number, number, LossKind, number, number, number][] = [
    [1, 50, 77, 5, 'squared-hinge', 0, 77, 0],
    [33, 300, 1000, 13, 'bce', 0, 1000, 0],
    [64, 1000, 2001, 40, 'squared-hinge', 500, 4000, 0], // fan-in above a warp; a label shard
    [130, 70_000, 5003, 32, 'squared-hinge', 0, 5003, 0], // an intermediate above 65,536; two batch chunks
    [128, 4096, 20_000, 32, 'squared-hinge', 0, 20_000, -3], // mostly zero gradients
    [128, 4096, 20_000, 32, 'squared-hinge', 0, 20_000, -2], // some labels with a few rows of gradient, some with many
    [256, 2048, 3001, 32, 'bce', 1000, 9000, -3],
    [130, 3000, 4001, 7, 'squared-hinge', 0, 4001, -3], // rows not a multiple of 4, few gradients
  ];
  for (const [B, I, L, k, kind, labelOffset, Ltotal, shift] of cases) {
    it(`ffiLossBackward matches the CPU backend (B=${B}, I=${I}, L=${L}, k=${k}, ${kind}, offset ${labelOffset}, bias ${shift})`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(L * k, 0.3), b = r.floats(L).map((v) => v + shift), idx = randomFfiIdx(r, L, k, I);
      const { ptr, ids } = labelCsr(randomLabels(r, B, Ltotal));
      const run = async (be: Backend) => {
        const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W, [L, k]), tIdx = be.fromArray(idx, [L, k]), tb = be.fromArray(b);
        const tp = be.fromArray(ptr), ti = be.fromArray(ids);
        const dX = poisoned(be, [B, I]), dW = poisoned(be, [L, k]), dB = poisoned(be, [L]), dW0 = poisoned(be, [L, k]), dB0 = poisoned(be, [L]);
        const loss = poisoned(be, [1]), loss0 = poisoned(be, [1]);
        const opts = { kind, labelOffset, normaliser: Ltotal };
        be.ffiLossBackward(tx, tW, tIdx, tb, tp, ti, dX, dW, dB, { ...opts, out: loss });
        be.ffiLossBackward(tx, tW, tIdx, tb, tp, ti, null, dW0, dB0, { ...opts, out: loss0 });
        return Promise.all([loss.read(), dX.read(), dW.read(), dB.read(), loss0.read(), dW0.read(), dB0.read()]);
      };
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      for (const i of [0, 4]) expect(Math.abs(g[i][0] - c[i][0]) / Math.abs(c[i][0]), `loss value, seed ${SEED}`).toBeLessThan(1e-5);
      ['loss', 'dX', 'dW', 'dB', 'loss (dX null)', 'dW (dX null)', 'dB (dX null)'].forEach((what, i) => {
        if (i !== 0 && i !== 4) expectNear(g[i], c[i], TOL, what);
      });
    });
  }

  // inputRelu: the ReLU applied on the way into the kernels and its mask on dX's way out (B = 1: no transposes)
  for (const [B, I, L, k] of [[1, 300, 500, 9], [130, 3000, 4001, 32], [128, 4096, 5000, 32]]) {
    it(`ffiLossBackward with inputRelu matches the CPU backend (B=${B}, I=${I}, L=${L}, k=${k}, float32 and bf16 gathers)`, async () => {
      const r = rng();
      const x = roundToBf16(r.floats(B * I)), W = r.floats(L * k, 0.3), b = r.floats(L).map((v) => v - 1), idx = randomFfiIdx(r, L, k, I);
      for (let i = 0; i < x.length; i += 41) x[i] = 0;
      const { ptr, ids } = labelCsr(randomLabels(r, B, L));
      const run = async (be: Backend) => {
        const dX = poisoned(be, [B, I]), dW = poisoned(be, [L, k]), dB = poisoned(be, [L]), loss = poisoned(be, [1]);
        be.ffiLossBackward(be.fromArray(x, [B, I]), be.fromArray(W, [L, k]), be.fromArray(idx, [L, k]), be.fromArray(b), be.fromArray(ptr), be.fromArray(ids),
          dX, dW, dB, { out: loss, inputRelu: true });
        return Promise.all([loss.read(), dX.read(), dW.read(), dB.read()]);
      };
      const c = await run(cpu);
      for (const g of [await run(cuda()), await run(new CudaBackend({ bf16Gathers: true }))]) {
        expect(Math.abs(g[0][0] - c[0][0]) / Math.abs(c[0][0]), `loss, seed ${SEED}`).toBeLessThan(1e-5);
        ['dX', 'dW', 'dB'].forEach((what, i) => expectNear(g[i + 1], c[i + 1], TOL, what));
        const dx = g[1];
        let leaks = 0;
        for (let i = 0; i < x.length; i++) if (!(x[i] > 0) && dx[i] !== 0) leaks++;
        expect(leaks, 'dX non-zero where x <= 0').toBe(0);
      }
    });
  }

  it('ffiLossBackward reports a bad labelPtr and a bad source like the CPU backend', async () => {
    const B = 2, I = 6, L = 8, k = 2;
    const r = rng();
    const messages = async (be: Backend) => {
      const args = (idx: Uint32Array) => [be.fromArray(r.floats(B * I), [B, I]), be.fromArray(r.floats(L * k), [L, k]), be.fromArray(idx, [L, k]), be.fromArray(r.floats(L))] as const;
      const good = randomFfiIdx(r, L, k, I), bad = Uint32Array.from(good);
      bad[5] = 6;
      const out: string[] = [];
      const [x1, W1, i1, b1] = args(good);
      be.ffiLossBackward(x1, W1, i1, b1, be.fromArray(new Uint32Array([0, 3, 1])), be.fromArray(new Uint32Array([1, 2, 3])), null, be.tensor('float32', [L, k]), be.tensor('float32', [L]));
      out.push(String(await be.sync().catch((e: Error) => e.message)));
      const [x2, W2, i2, b2] = args(bad);
      be.ffiLossBackward(x2, W2, i2, b2, be.fromArray(new Uint32Array([0, 1, 2])), be.fromArray(new Uint32Array([1, 2])), null, be.tensor('float32', [L, k]), be.tensor('float32', [L]));
      out.push(String(await be.sync().catch((e: Error) => e.message)));
      return out;
    };
    const [c, g] = [await messages(cpu), await messages(cuda())];
    expect(g[0]).toMatch(/^ffiLossBackward: labelPtr is not non-decreasing at row 1/);
    expect(g[1]).toMatch(/^ffiLossBackward: idx\[2, 1\] = 6 is not a valid source: it must be in \[0, I = 6\)/);
    expect(g).toEqual(c);
  });
});

/** x rounded to bfloat16 (nearest even) and widened back: the values a bf16 gather reads. */
function roundToBf16(x: Float32Array): Float32Array {
  const out = Float32Array.from(x);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 16) << 16;
  return out;
}

describe.skipIf(!HAVE_CUDA)('cuda ops - bf16 gathers', () => {
  const bf16 = HAVE_CUDA ? new CudaBackend({ bf16Gathers: true }) : null;
  // B % 8 == 0 takes the 16-byte gathers and the kernel that caches a label's gathers for its backward (fan-in
  // up to 32: k = 37 does not use the cache), B % 4 == 0 the 8-byte ones, other B scalar loads. Bias shifts
  // of -2 and 0 give labels with a few rows of gradient and labels with many; B = 136 and 8 end in a part chunk.
  const cases = [[128, 4096, 20_000, 32, -2], [136, 3000, 4001, 37, 0], [136, 3000, 4001, 32, -2], [256, 4096, 20_000, 32, 0],
    [8, 500, 3001, 16, 0], [132, 700, 999, 7, 0], [130, 3000, 4001, 7, 0], [1, 50, 77, 5, 0]];
  for (const [B, I, L, k, shift] of cases) {
    it(`ffiLossBackward with bf16Gathers equals the CPU backend on inputs already rounded to bf16 (B=${B}, I=${I}, L=${L}, k=${k})`, async () => {
      const r = rng();
      const x = roundToBf16(r.floats(B * I)), W = r.floats(L * k, 0.3), b = r.floats(L).map((v) => v + shift), idx = randomFfiIdx(r, L, k, I);
      const { ptr, ids } = labelCsr(randomLabels(r, B, L));
      const run = async (be: Backend) => {
        const dX = poisoned(be, [B, I]), dW = poisoned(be, [L, k]), dB = poisoned(be, [L]), loss = poisoned(be, [1]);
        be.ffiLossBackward(be.fromArray(x, [B, I]), be.fromArray(W, [L, k]), be.fromArray(idx, [L, k]), be.fromArray(b), be.fromArray(ptr), be.fromArray(ids), dX, dW, dB, { out: loss });
        return Promise.all([loss.read(), dX.read(), dW.read(), dB.read()]);
      };
      const [c, g] = await Promise.all([run(cpu), run(bf16!)]);
      expect(Math.abs(g[0][0] - c[0][0]) / Math.abs(c[0][0]), `loss, seed ${SEED}`).toBeLessThan(1e-5);
      ['dX', 'dW', 'dB'].forEach((what, i) => expectNear(g[i + 1], c[i + 1], TOL, what));
    });
  }

  for (const [B, I, L, k, fan] of [[64, 2048, 30_011, 5, 32], [40, 1000, 5003, 12, 19], [36, 1000, 5003, 5, 19]])
  it(`ffiTopK with bf16Gathers ranks like the CPU backend on inputs already rounded to bf16, and is close on others (B=${B}, k=${k}, fan-in ${fan})`, async () => {
    const r = rng();
    const raw = r.floats(B * I), x = roundToBf16(raw), W = r.floats(L * fan), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
    const top = (be: Backend, input: Float32Array) =>
      be.ffiTopK(be.fromArray(input, [B, I]), be.fromArray(W, [L, fan]), be.fromArray(idx, [L, fan]), be.fromArray(b), k);
    const [c, g] = await Promise.all([top(cpu, x), top(bf16!, x)]);
    expect(Array.from(g.labels)).toEqual(Array.from(c.labels));
    expectNear(g.scores, c.scores, 1e-5, 'scores');
    const [c2, g2] = await Promise.all([top(cpu, raw), top(bf16!, raw)]);
    expectNear(g2.scores, c2.scores, 1e-2, 'scores of unrounded inputs (bf16 rounding)');
  });
});

/** Rows of exactly representable int8 values: x = q 2^-7 with q in [-127, 127] and |q| = 127 somewhere in each
 * non-empty row (rows given by their starts), so the int8 top-k's scale of the row (of inputs, or of a label's
 * weights) is exactly 2^-7 and its quantization loses nothing. */
function int8Exact(r: Rng, starts: ArrayLike<number>): Float32Array {
  const n = starts[starts.length - 1];
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r.int(255) - 127) / 128;
  for (let row = 0; row + 1 < starts.length; row++) {
    const len = starts[row + 1] - starts[row];
    if (len > 0) x[starts[row] + r.int(len)] = (r.int(2) ? 127 : -127) / 128;
  }
  return x;
}
const rowStarts = (rows: number, len: number) => Array.from({ length: rows + 1 }, (_, i) => i * len);

describe.skipIf(!HAVE_CUDA)('cuda ops - int8 top-k', () => {
  const int8 = HAVE_CUDA ? new CudaBackend({ int8TopK: true }) : null;
  // B % 16 != 0 pads the byte rows; k > 8 keeps 16 candidates per thread; fan-in 19 leaves a partial group;
  // B = 200 and 1100 take the kernel's 256- and 512-row chunks (1100: two whole chunks and a partial one)
  for (const [B, I, L, k, fan] of [[64, 2048, 30_011, 5, 32], [37, 1000, 5003, 12, 19], [1, 50, 77, 3, 5],
    [200, 3000, 10_007, 5, 32], [1100, 1024, 4099, 10, 24]]) {
    it(`ffiTopK with int8TopK ranks like the CPU backend on exactly representable inputs, and is close on others (B=${B}, k=${k}, fan-in ${fan})`, async () => {
      const r = rng();
      const x = int8Exact(r, rowStarts(B, I)), Wq = int8Exact(r, rowStarts(L, fan)), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
      const raw = r.floats(B * I), W = r.floats(L * fan);
      const top = (be: Backend, input: Float32Array, w: Float32Array) =>
        be.ffiTopK(be.fromArray(input, [B, I]), be.fromArray(w, [L, fan]), be.fromArray(idx, [L, fan]), be.fromArray(b), k);
      const [c, g] = await Promise.all([top(cpu, x, Wq), top(int8!, x, Wq)]);
      expect(Array.from(g.labels)).toEqual(Array.from(c.labels));
      expectNear(g.scores, c.scores, 1e-5, 'scores');
      // unquantized inputs and weights: close scores, mostly the same labels
      const [c2, g2] = await Promise.all([top(cpu, raw, W), top(int8!, raw, W)]);
      expectNear(g2.scores, c2.scores, 3e-2, 'top scores of unquantized inputs (int8 rounding)');
      let common = 0;
      for (let row = 0; row < B; row++) {
        const want = new Set(Array.from(c2.labels.subarray(row * k, (row + 1) * k)));
        for (const l of g2.labels.subarray(row * k, (row + 1) * k)) if (want.has(l)) common++;
      }
      expect(common / (B * k), `share of the float32 top-${k} labels found with int8 inputs, seed ${SEED}`).toBeGreaterThan(0.7);
    });
  }

  for (const B of [48, 700]) it(`ffiTopK with int8TopK equals the CPU backend with int8TopK (its reference) bit for bit on fresh random inputs (B=${B})`, async () => {
    const r = rng();
    const I = 1500, L = 20_011, k = 5, fan = 32;
    const cpuInt8 = createBackend('cpu', { threads: 4, int8TopK: true });
    const x = r.floats(B * I), W = r.floats(L * fan), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
    const top = (be: Backend) =>
      be.ffiTopK(be.fromArray(x, [B, I]), be.fromArray(W, [L, fan]), be.fromArray(idx, [L, fan]), be.fromArray(b), k);
    const [c, g] = await Promise.all([top(cpuInt8), top(int8!)]);
    // the same integer sums and the same roundings (native/common/int8_topk.h): equal bit for bit
    expect(Array.from(g.labels), `labels, seed ${SEED}`).toEqual(Array.from(c.labels));
    expect(Array.from(g.scores), `scores, seed ${SEED}`).toEqual(Array.from(c.scores));
  });

  it('sparseTopK with int8TopK equals the CPU backend with int8TopK bit for bit, rows of about 100 connections (several warps\' worth)', async () => {
    const r = rng();
    const B = 300, I = 700, L = 500, nnz = 50_000, k = 5;
    const csr = randomCsr(r, L, I, nnz);
    const x = r.floats(B * I), W = r.floats(nnz), b = r.floats(L, 0.1);
    const cpuInt8 = createBackend('cpu', { threads: 4, int8TopK: true });
    const top = (be: Backend) =>
      be.sparseTopK(be.fromArray(x, [B, I]), be.fromArray(csr.rowPtr), be.fromArray(csr.col), be.fromArray(W), be.fromArray(b), k);
    const [c, g] = await Promise.all([top(cpuInt8), top(int8!)]);
    expect(Array.from(g.labels), `labels, seed ${SEED}`).toEqual(Array.from(c.labels));
    expect(Array.from(g.scores), `scores, seed ${SEED}`).toEqual(Array.from(c.scores));
  });

  it('sparseTopK with int8TopK ranks like the CPU backend on exactly representable inputs', async () => {
    const r = rng();
    const B = 24, I = 700, L = 3001, nnz = 40_000, k = 7;
    const csr = randomCsr(r, L, I, nnz);
    const x = int8Exact(r, rowStarts(B, I)), W = int8Exact(r, csr.rowPtr), b = r.floats(L, 0.1);
    const top = (be: Backend) =>
      be.sparseTopK(be.fromArray(x, [B, I]), be.fromArray(csr.rowPtr), be.fromArray(csr.col), be.fromArray(W), be.fromArray(b), k);
    const [c, g] = await Promise.all([top(cpu), top(int8!)]);
    expect(Array.from(g.labels)).toEqual(Array.from(c.labels));
    expectNear(g.scores, c.scores, 1e-5, 'scores');
  });

  it('a row with a NaN or an infinity scores NaN for every label (reported as -Infinity, labels in order); other rows are unaffected', async () => {
    const r = rng();
    const B = 3, I = 300, L = 500, fan = 8, k = 4;
    const x = int8Exact(r, rowStarts(B, I)), W = int8Exact(r, rowStarts(L, fan)), b = r.floats(L, 0.1), idx = randomFfiIdx(r, L, fan, I);
    x[5] = NaN;
    x[2 * I + 7] = Infinity;
    const top = (be: Backend, input: Float32Array) =>
      be.ffiTopK(be.fromArray(input, [B, I]), be.fromArray(W, [L, fan]), be.fromArray(idx, [L, fan]), be.fromArray(b), k);
    const g = await top(int8!, x);
    for (const row of [0, 2]) {
      expect(Array.from(g.scores.subarray(row * k, (row + 1) * k))).toEqual([-Infinity, -Infinity, -Infinity, -Infinity]);
      expect(Array.from(g.labels.subarray(row * k, (row + 1) * k))).toEqual([0, 1, 2, 3]);
    }
    const c = await top(cpu, x);
    expect(Array.from(g.labels.subarray(k, 2 * k))).toEqual(Array.from(c.labels.subarray(k, 2 * k)));
  });

  it('reports the option in info()', () => {
    expect(int8!.info().int8TopK).toBe(true);
    expect(new CudaBackend().info().int8TopK).toBe(false);
  });
});

describe.skipIf(!HAVE_CUDA)('cuda ops - Adam', () => {
  it('adam equals the CPU backend bit for bit over several steps (aligned and odd sizes)', async () => {
    const r = rng();
    for (const n of [1, 4099, 100_000]) {
      const p = r.floats(n), m = r.floats(n, 0.01), v = Float32Array.from({ length: n }, () => r.next() * 0.01);
      const grads = [r.floats(n), r.floats(n), r.floats(n)];
      const run = async (be: Backend) => {
        const tp = be.fromArray(p), tm = be.fromArray(m), tv = be.fromArray(v), tg = be.tensor('float32', [n]);
        grads.forEach((g, s) => {
          tg.write(g);
          be.adam(tp, tg, tm, tv, { lr: 1e-2, step: s + 1, beta1: 0.8 });
        });
        return Promise.all([tp.read(), tm.read(), tv.read()]);
      };
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      ['param', 'm', 'v'].forEach((what, i) => expectSame(g[i], c[i], `${what} (n=${n})`));
    }
  });
});

describe.skipIf(!HAVE_CUDA)('cuda ops - rewiring', () => {
  const moments = (r: Rng, n: number) => Float32Array.from({ length: n }, () => 0.01 + r.next());

  // [L, k, I, fraction, share of exact zeros in W, NaNs in W]. The device path takes fan-ins up to 256 where
  // no row can use over 3/4 of the inputs (I = 7, k = 7 and k = 257 run on the host); zeros make a threshold
  // whose ties span many rows and row blocks, so the tie rule (lower flat index first) decides.
  const cases: [number, number, number, number, number, number][] = [
    [57, 7, 40, 0.2, 0, 0], [30, 7, 7, 0.5, 0, 0], [5000, 32, 70_000, 0.1, 0, 0], [10, 3, 4, 1, 0, 0],
    [3000, 64, 5000, 0.25, 0.4, 0], [700, 100, 1000, 0.3, 0.05, 9], [300, 256, 400, 0.1, 0, 0], [40, 257, 2000, 0.1, 0.1, 0],
  ];
  for (const [L, k, I, fraction, zeros, nans] of cases) {
    it(`rewireFfi gives the CPU backend's result exactly, fan-in k with distinct sources (L=${L}, k=${k}, I=${I}, fraction=${fraction}, zeros ${zeros}, NaNs ${nans})`, async () => {
      const r = rng();
      const W0 = r.floats(L * k), idx0 = randomFfiIdx(r, L, k, I), m0 = moments(r, L * k), v0 = moments(r, L * k);
      W0[3] = W0[5]; // a tie
      for (let e = 0; e < W0.length; e++) if (r.next() < zeros) W0[e] = r.next() < 0.5 ? 0 : -0;
      for (let i = 0; i < nans; i++) W0[r.int(W0.length)] = NaN;
      const seed = r.int(1e9);
      const run = async (be: Backend) => {
        const W = be.fromArray(W0, [L, k]), idx = be.fromArray(idx0, [L, k]), m = be.fromArray(m0, [L, k]), v = be.fromArray(v0, [L, k]);
        const n = be.rewireFfi(W, idx, m, v, { fraction, inputDim: I, seed });
        return { n, arrays: await Promise.all([W.read(), idx.read(), m.read(), v.read()]) };
      };
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      expect(g.n).toBe(Math.floor(fraction * L * k));
      expect(g.n).toBe(c.n);
      ['W', 'idx', 'm', 'v'].forEach((what, i) => expectSame(g.arrays[i], c.arrays[i], what));
      const idx1 = g.arrays[1] as Uint32Array;
      for (let l = 0; l < L; l++) {
        const row = Array.from(idx1.subarray(l * k, (l + 1) * k));
        expect(new Set(row).size, `row ${l}, seed ${SEED}`).toBe(k);
        for (const s of row) expect(s).toBeLessThan(I);
      }
    });
  }

  for (const [L, I, nnz, fraction] of [[40, 30, 300, 0.3], [8, 5, 38, 0.5], [3000, 70_000, 96_000, 0.1]]) {
    it(`rewireSparse gives the CPU backend's result exactly, a valid CSR (L=${L}, I=${I}, nnz=${nnz}, fraction=${fraction})`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, nnz);
      const W0 = r.floats(nnz), m0 = moments(r, nnz), v0 = moments(r, nnz);
      const seed = r.int(1e9);
      const run = async (be: Backend) => {
        const rp = be.fromArray(csr.rowPtr), col = be.fromArray(csr.col), W = be.fromArray(W0), m = be.fromArray(m0), v = be.fromArray(v0);
        const n = be.rewireSparse(rp, col, W, m, v, { fraction, inputDim: I, seed });
        return { n, arrays: await Promise.all([rp.read(), col.read(), W.read(), m.read(), v.read()]) };
      };
      const [c, g] = await Promise.all([run(cpu), run(cuda())]);
      expect(g.n).toBe(c.n);
      ['rowPtr', 'col', 'W', 'm', 'v'].forEach((what, i) => expectSame(g.arrays[i], c.arrays[i], what));
      const [rp, col] = g.arrays.slice(0, 2) as [Uint32Array, Uint32Array];
      expect(rp[0]).toBe(0);
      expect(rp[L]).toBe(nnz);
      for (let l = 0; l < L; l++) for (let e = rp[l] + 1; e < rp[l + 1]; e++) expect(col[e]).toBeGreaterThan(col[e - 1]);
    });
  }
});
