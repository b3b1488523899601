import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import { NativeError } from '../src/errors.js';
import { SEED, denseRef, dotWith, expectClose, f64, ffiRef, finiteDiff, randomFfiIdx, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

/** The dense [L, I] matrix with the FFI layer's sparsity pattern. */
function expand(W: ArrayLike<number>, idx: ArrayLike<number>, L: number, k: number, I: number): Float32Array {
  const D = new Float32Array(L * I);
  for (let l = 0; l < L; l++) for (let j = 0; j < k; j++) D[l * I + idx[l * k + j]] = W[l * k + j];
  return D;
}

describe('ops - ffi layer', () => {
  // fan-in not a multiple of 4, batch 1, L not a multiple of the 16-label tile
  for (const [B, I, L, k] of [[6, 23, 37, 7], [1, 15, 29, 7], [40, 64, 1003, 9], [3, 8, 5, 8]]) {
    it(`ffiForward matches a float64 reference (B=${B}, I=${I}, L=${L}, k=${k})`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(L * k), idx = randomFfiIdx(r, L, k, I), b = r.floats(L);
      const out = be.tensor('float32', [B, L]);
      be.ffiForward(be.fromArray(x, [B, I]), be.fromArray(W, [L, k]), be.fromArray(idx, [L, k]), be.fromArray(b), out);
      expectClose(await out.read(), ffiRef(x, W, idx, b, B, I, L, k));
    });
  }

  for (const [B, I, L, k] of [[4, 11, 19, 7], [1, 9, 17, 7]]) {
    it(`ffiBackward matches finite differences (B=${B}, I=${I}, L=${L}, k=${k})`, async () => {
      const r = rng();
      const idx = randomFfiIdx(r, L, k, I);
      const x = f64(r.floats(B * I)), W = f64(r.floats(L * k)), b = f64(r.floats(L)), R = f64(r.floats(B * L));
      const J = () => dotWith(ffiRef(x, W, idx, b, B, I, L, k), R);
      const dX = be.tensor('float32', [B, I]), dW = be.tensor('float32', [L, k]), dB = be.tensor('float32', [L]);
      be.ffiBackward(be.fromArray(Float32Array.from(x), [B, I]), be.fromArray(Float32Array.from(W), [L, k]),
        be.fromArray(idx, [L, k]), be.fromArray(Float32Array.from(R), [B, L]), dX, dW, dB);
      expectClose(await dX.read(), finiteDiff(x, J), 1e-5, 'dX');
      expectClose(await dW.read(), finiteDiff(W, J), 1e-5, 'dW');
      expectClose(await dB.read(), finiteDiff(b, J), 1e-5, 'dB');
    });
  }

  it('ffi layer equals a dense layer with the same sparsity pattern (forward and backward)', async () => {
    const r = rng();
    const B = 1 + r.int(20), I = 30 + r.int(40), L = 100 + r.int(400), k = 1 + r.int(12);
    const x = r.floats(B * I), W = r.floats(L * k), idx = randomFfiIdx(r, L, k, I), b = r.floats(L), g = r.floats(B * L);
    const D = expand(W, idx, L, k, I);
    const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W, [L, k]), tIdx = be.fromArray(idx, [L, k]), tb = be.fromArray(b);
    const tD = be.fromArray(D, [L, I]), tg = be.fromArray(g, [B, L]);
    const sOut = be.tensor('float32', [B, L]), dOut = be.tensor('float32', [B, L]);
    be.ffiForward(tx, tW, tIdx, tb, sOut);
    be.denseForward(tx, tD, tb, dOut);
    expectClose(await sOut.read(), await dOut.read(), 1e-5, `forward, seed ${SEED}`);

    const sdX = be.tensor('float32', [B, I]), sdW = be.tensor('float32', [L, k]), sdB = be.tensor('float32', [L]);
    const ddX = be.tensor('float32', [B, I]), ddW = be.tensor('float32', [L, I]), ddB = be.tensor('float32', [L]);
    be.ffiBackward(tx, tW, tIdx, tg, sdX, sdW, sdB);
    be.denseBackward(tx, tD, tg, ddX, ddW, ddB);
    expectClose(await sdX.read(), await ddX.read(), 1e-5, 'dX');
    expectClose(await sdB.read(), await ddB.read(), 1e-5, 'dB');
    const dense = await ddW.read();
    const gathered = Array.from(idx, (src, e) => dense[Math.floor(e / k) * I + src]);
    expectClose(await sdW.read(), gathered, 1e-5, 'dW at the pattern');
    // and the references agree with each other
    expectClose(await sOut.read(), denseRef(x, D, b, B, I, L), 1e-5, 'dense reference');
  });

  it('ffiBackward without dX (first layer) gives the same dW and dB', async () => {
    const r = rng();
    const B = 7, I = 20, L = 45, k = 7;
    const tx = be.fromArray(r.floats(B * I), [B, I]), tW = be.fromArray(r.floats(L * k), [L, k]);
    const tIdx = be.fromArray(randomFfiIdx(r, L, k, I), [L, k]), tg = be.fromArray(r.floats(B * L), [B, L]);
    const dX = be.tensor('float32', [B, I]), dW1 = be.tensor('float32', [L, k]), dB1 = be.tensor('float32', [L]);
    const dW2 = be.tensor('float32', [L, k]), dB2 = be.tensor('float32', [L]);
    be.ffiBackward(tx, tW, tIdx, tg, dX, dW1, dB1);
    be.ffiBackward(tx, tW, tIdx, tg, null, dW2, dB2);
    expect(Array.from(await dW2.read())).toEqual(Array.from(await dW1.read()));
    expect(Array.from(await dB2.read())).toEqual(Array.from(await dB1.read()));
  });

  it('ffiForward rejects a source index >= I at run time, naming the op and the entry', async () => {
    const r = rng();
    const idx = randomFfiIdx(r, 4, 3, 10);
    idx[7] = 10;
    be.ffiForward(be.fromArray(r.floats(20), [2, 10]), be.fromArray(r.floats(12), [4, 3]), be.fromArray(idx, [4, 3]),
      be.fromArray(r.floats(4)), be.tensor('float32', [2, 4]));
    const err = await be.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as Error).message).toMatch(/^ffiForward: idx\[2, 1\] = 10 is not a valid source: it must be in \[0, I = 10\)/);
    await expect(be.sync()).resolves.toBeUndefined();
  });
});
