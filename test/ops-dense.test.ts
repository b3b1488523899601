import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import { SEED, denseRef, dotWith, expectClose, f64, finiteDiff, relErr, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

describe('ops - dense layer', () => {
  for (const [B, I, O] of [[5, 13, 37], [1, 9, 21], [33, 70, 130]]) {
    it(`denseForward matches a float64 reference (B=${B}, I=${I}, O=${O})`, async () => {
      const r = rng();
      const x = r.floats(B * I), W = r.floats(O * I), b = r.floats(O);
      const out = be.tensor('float32', [B, O]);
      be.denseForward(be.fromArray(x, [B, I]), be.fromArray(W, [O, I]), be.fromArray(b), out);
      expectClose(await out.read(), denseRef(x, W, b, B, I, O));
    });
  }

  for (const [B, I, O] of [[4, 7, 11], [1, 5, 9]]) {
    it(`denseBackward matches finite differences (B=${B}, I=${I}, O=${O})`, async () => {
      const r = rng();
      const x = f64(r.floats(B * I)), W = f64(r.floats(O * I)), b = f64(r.floats(O)), R = f64(r.floats(B * O));
      const J = () => dotWith(denseRef(x, W, b, B, I, O), R);
      const tx = be.fromArray(Float32Array.from(x), [B, I]), tW = be.fromArray(Float32Array.from(W), [O, I]);
      const dX = be.tensor('float32', [B, I]), dW = be.tensor('float32', [O, I]), dB = be.tensor('float32', [O]);
      be.denseBackward(tx, tW, be.fromArray(Float32Array.from(R), [B, O]), dX, dW, dB);
      expectClose(await dX.read(), finiteDiff(x, J), 1e-5, 'dX');
      expectClose(await dW.read(), finiteDiff(W, J), 1e-5, 'dW');
      expectClose(await dB.read(), finiteDiff(b, J), 1e-5, 'dB');
      // First layer: no dX, same dW / dB.
      const dW2 = be.tensor('float32', [O, I]), dB2 = be.tensor('float32', [O]);
      be.denseBackward(tx, tW, be.fromArray(Float32Array.from(R), [B, O]), null, dW2, dB2);
      expect(Array.from(await dW2.read())).toEqual(Array.from(await dW.read()));
      expect(Array.from(await dB2.read())).toEqual(Array.from(await dB.read()));
    });
  }
});

describe('ops - relu', () => {
  it('reluForward and reluBackward match their definitions, in place too', async () => {
    const r = rng();
    const n = 1000 + r.int(500);
    const x = r.floats(n), g = r.floats(n);
    const tx = be.fromArray(x), out = be.tensor('float32', [n]);
    be.reluForward(tx, out);
    const y = await out.read();
    expectClose(y, Array.from(x, (v) => Math.max(v, 0)));
    const dX = be.tensor('float32', [n]);
    be.reluBackward(out, be.fromArray(g), dX);
    expectClose(await dX.read(), Array.from(g, (v, i) => (x[i] > 0 ? v : 0)), 1e-12, 'dX');
    // gradient check of relu through finite differences (away from the kink)
    const xs = f64(x), R = f64(g);
    const fd = finiteDiff(xs, () => dotWith(Array.from(xs, (v) => Math.max(v, 0)), R), 1e-6);
    expect(relErr(await dX.read(), fd)).toBeLessThan(1e-5);
    be.reluForward(tx, tx); // in place
    expect(Array.from(await tx.read())).toEqual(Array.from(y));
    const dOut = be.fromArray(g);
    be.reluBackward(out, dOut, dOut); // dX may alias dOut
    expect(Array.from(await dOut.read())).toEqual(Array.from(await dX.read()));
  });
});

// The dropout mask, bit for bit as documented in native/cpu/dense.cc (a CUDA backend must match it).
const MASK64 = (1n << 64n) - 1n;
function mix64(z: bigint): bigint {
  z = (z + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}
function keepProbe(seed: number, i: number): number {
  return Number(mix64((BigInt(seed) + BigInt(i) * 0x9e3779b97f4a7c15n) & MASK64) >> 40n) / 2 ** 24;
}

describe('ops - dropout', () => {
  it('dropout matches the documented counter-based mask and rate, and is its own backward', async () => {
    const r = rng();
    const n = 4000, p = 0.1 + 0.5 * r.next(), seed = r.int(2 ** 31) * 1024 + r.int(1024);
    const x = r.floats(n);
    const out = be.tensor('float32', [n]);
    be.dropout(be.fromArray(x), out, p, seed);
    const y = await out.read();
    const pf = Math.fround(p), scale = Math.fround(1 / Math.fround(1 - pf));
    const ref = Array.from(x, (v, i) => (keepProbe(seed, i) >= pf ? Math.fround(v * scale) : 0));
    expectClose(y, ref, 1e-6);
    let zeros = 0;
    for (let i = 0; i < n; i++) if (y[i] === 0) zeros++;
    expect(Math.abs(zeros / n - p), `drop rate vs p=${p}, seed ${SEED}`).toBeLessThan(0.05);
    // Same seed -> same mask: the backward of dropout is dropout of dOut.
    const g = r.floats(n), dX = be.tensor('float32', [n]);
    be.dropout(be.fromArray(g), dX, p, seed);
    const d = await dX.read();
    expectClose(d, Array.from(g, (v, i) => (keepProbe(seed, i) >= pf ? Math.fround(v * scale) : 0)), 1e-6, 'dX');
    for (let i = 0; i < n; i++) if (y[i] === 0 && x[i] !== 0) expect(d[i]).toBe(0);
    // A different seed gives a different mask; p = 0 is the identity.
    const other = be.tensor('float32', [n]);
    be.dropout(be.fromArray(x), other, p, seed + 1);
    expect(Array.from(await other.read())).not.toEqual(Array.from(y));
    const same = be.fromArray(x);
    be.dropout(same, same, 0, seed);
    expect(Array.from(await same.read())).toEqual(Array.from(x));
  });
});
