import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import { NativeError } from '../src/errors.js';
import { csrRef, dotWith, expectClose, f64, finiteDiff, randomCsr, rng } from './ops-helpers.js';
import type { Csr } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

function upload(csr: Csr) {
  return { rowPtr: be.fromArray(csr.rowPtr), col: be.fromArray(csr.col) };
}

describe('ops - unstructured sparse (CSR) layer', () => {
  // nnz = L * k connections at uniformly random cells: row sizes vary, some rows may be empty
  for (const [B, I, L, k] of [[5, 19, 41, 7], [1, 12, 33, 3], [30, 50, 700, 7]]) {
    it(`sparseForward matches a float64 reference (B=${B}, I=${I}, L=${L}, nnz=${L * k})`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, L * k);
      const x = r.floats(B * I), W = r.floats(L * k), b = r.floats(L);
      const { rowPtr, col } = upload(csr);
      const out = be.tensor('float32', [B, L]);
      be.sparseForward(be.fromArray(x, [B, I]), rowPtr, col, be.fromArray(W), be.fromArray(b), out);
      expectClose(await out.read(), csrRef(x, csr, W, b, B));
    });
  }

  for (const [B, I, L, nnz] of [[3, 10, 23, 60], [1, 7, 13, 40]]) {
    it(`sparseBackward matches finite differences (B=${B}, I=${I}, L=${L}, nnz=${nnz})`, async () => {
      const r = rng();
      const csr = randomCsr(r, L, I, nnz);
      const x = f64(r.floats(B * I)), W = f64(r.floats(nnz)), b = f64(r.floats(L)), R = f64(r.floats(B * L));
      const J = () => dotWith(csrRef(x, csr, W, b, B), R);
      const { rowPtr, col } = upload(csr);
      const dX = be.tensor('float32', [B, I]), dW = be.tensor('float32', [nnz]), dB = be.tensor('float32', [L]);
      be.sparseBackward(be.fromArray(Float32Array.from(x), [B, I]), rowPtr, col, be.fromArray(Float32Array.from(W)),
        be.fromArray(Float32Array.from(R), [B, L]), dX, dW, dB);
      expectClose(await dX.read(), finiteDiff(x, J), 1e-5, 'dX');
      expectClose(await dW.read(), finiteDiff(W, J), 1e-5, 'dW');
      expectClose(await dB.read(), finiteDiff(b, J), 1e-5, 'dB');
    });
  }

  it('sparse layer equals a dense layer with the same sparsity pattern (forward and backward)', async () => {
    const r = rng();
    const B = 1 + r.int(16), I = 20 + r.int(30), L = 50 + r.int(300), nnz = L * (1 + r.int(8));
    const csr = randomCsr(r, L, I, nnz);
    const x = r.floats(B * I), W = r.floats(nnz), b = r.floats(L), g = r.floats(B * L);
    const D = new Float32Array(L * I);
    for (let l = 0; l < L; l++) for (let e = csr.rowPtr[l]; e < csr.rowPtr[l + 1]; e++) D[l * I + csr.col[e]] = W[e];
    const { rowPtr, col } = upload(csr);
    const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W), tb = be.fromArray(b), tD = be.fromArray(D, [L, I]), tg = be.fromArray(g, [B, L]);
    const sOut = be.tensor('float32', [B, L]), dOut = be.tensor('float32', [B, L]);
    be.sparseForward(tx, rowPtr, col, tW, tb, sOut);
    be.denseForward(tx, tD, tb, dOut);
    expectClose(await sOut.read(), await dOut.read(), 1e-5, 'forward');
    const sdX = be.tensor('float32', [B, I]), sdW = be.tensor('float32', [nnz]), sdB = be.tensor('float32', [L]);
    const ddX = be.tensor('float32', [B, I]), ddW = be.tensor('float32', [L, I]), ddB = be.tensor('float32', [L]);
    be.sparseBackward(tx, rowPtr, col, tW, tg, sdX, sdW, sdB);
    be.denseBackward(tx, tD, tg, ddX, ddW, ddB);
    expectClose(await sdX.read(), await ddX.read(), 1e-5, 'dX');
    expectClose(await sdB.read(), await ddB.read(), 1e-5, 'dB');
    const dense = await ddW.read();
    const gathered = new Float32Array(nnz);
    for (let l = 0; l < L; l++) for (let e = csr.rowPtr[l]; e < csr.rowPtr[l + 1]; e++) gathered[e] = dense[l * I + csr.col[e]];
    expectClose(await sdW.read(), gathered, 1e-5, 'dW at the pattern');
  });

  it('sparseForward rejects an invalid CSR structure at run time, naming the op', async () => {
    const r = rng();
    const csr = randomCsr(r, 6, 8, 20);
    const bad = Uint32Array.from(csr.rowPtr);
    bad[6] = 19; // rowPtr[L] != nnz
    const x = be.fromArray(r.floats(16), [2, 8]), W = be.fromArray(r.floats(20)), b = be.fromArray(r.floats(6));
    be.sparseForward(x, be.fromArray(bad), be.fromArray(csr.col), W, b, be.tensor('float32', [2, 6]));
    const err = await be.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as Error).message).toMatch(/^sparseForward: rowPtr\[L = 6\] = 19 must equal nnz = 20/);
    const col = Uint32Array.from(csr.col);
    col[3] = 8;
    be.sparseForward(x, be.fromArray(csr.rowPtr), be.fromArray(col), W, b, be.tensor('float32', [2, 6]));
    await expect(be.sync()).rejects.toThrow(/^sparseForward: col\[3\] = 8 is not a valid source/);
  });
});
