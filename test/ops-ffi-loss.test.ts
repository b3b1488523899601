// ffiLossBackward, the FFI output layer fused with its loss, against the
// unfused ops it replaces (ffiForward, lossForward with the gradient,
// ffiBackward) on the CPU reference backend: the gradients must be the same
// bits, the loss value the same to float rounding (another summation order).
import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import type { Backend, LossKind } from '../src/native/index.js';
import { NativeError } from '../src/errors.js';
import { SEED, labelCsr, randomFfiIdx, randomLabels, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

interface FusedCase { B: number; I: number; L: number; k: number; kind: LossKind; offset: number; Ltotal: number }

async function runBoth(b: Backend, c: FusedCase, seedShift = 0) {
  const r = rng();
  for (let i = 0; i < seedShift; i++) r.next();
  const { B, I, L, k } = c;
  const x = r.floats(B * I), W = r.floats(L * k), bias = r.floats(L, 0.5), idx = randomFfiIdx(r, L, k, I);
  const { ptr, ids } = labelCsr(randomLabels(r, B, c.Ltotal));
  const tx = b.fromArray(x, [B, I]), tW = b.fromArray(W, [L, k]), tIdx = b.fromArray(idx, [L, k]), tb = b.fromArray(bias);
  const tp = b.fromArray(ptr), ti = b.fromArray(ids);
  const opts = { kind: c.kind, labelOffset: c.offset, normaliser: c.Ltotal };
  // unfused
  const scores = b.tensor('float32', [B, L]);
  const uX = b.tensor('float32', [B, I]), uW = b.tensor('float32', [L, k]), uB = b.tensor('float32', [L]);
  b.ffiForward(tx, tW, tIdx, tb, scores);
  const uLoss = b.lossForward(scores, tp, ti, scores, opts);
  b.ffiBackward(tx, tW, tIdx, scores, uX, uW, uB);
  // fused, with and without dX
  const fX = b.tensor('float32', [B, I]), fW = b.tensor('float32', [L, k]), fB = b.tensor('float32', [L]);
  const gW = b.tensor('float32', [L, k]), gB = b.tensor('float32', [L]);
  for (const t of [fX, fW, fB, gW, gB]) b.fill(t, Number.NaN);
  const fLoss = b.ffiLossBackward(tx, tW, tIdx, tb, tp, ti, fX, fW, fB, opts);
  const gLoss = b.ffiLossBackward(tx, tW, tIdx, tb, tp, ti, null, gW, gB, opts);
  const [ul, ux, uw, ub, fl, fx, fw, fb, gl, gw, gb] = await Promise.all([uLoss, uX, uW, uB, fLoss, fX, fW, fB, gLoss, gW, gB].map((t) => t.read()));
  return { ul, ux, uw, ub, fl, fx, fw, fb, gl, gw, gb };
}

describe('ops - ffiLossBackward (fused FFI layer and loss)', () => {
  const cases: FusedCase[] = [
    { B: 1, I: 15, L: 29, k: 7, kind: 'squared-hinge', offset: 0, Ltotal: 29 },
    { B: 6, I: 23, L: 137, k: 7, kind: 'bce', offset: 0, Ltotal: 137 },
    { B: 40, I: 64, L: 1003, k: 9, kind: 'squared-hinge', offset: 0, Ltotal: 1003 },
    { B: 33, I: 300, L: 700, k: 13, kind: 'squared-hinge', offset: 300, Ltotal: 1500 }, // a label shard
    { B: 17, I: 100, L: 257, k: 32, kind: 'bce', offset: 1000, Ltotal: 1257 },
  ];
  for (const c of cases) {
    it(`gradients equal ffiForward + lossForward + ffiBackward bit for bit (B=${c.B}, I=${c.I}, L=${c.L}, k=${c.k}, ${c.kind}, offset ${c.offset})`, async () => {
      const o = await runBoth(be, c);
      const same = (a: Float32Array, ref: Float32Array, what: string) => expect(Array.from(a), `${what}, seed ${SEED}`).toEqual(Array.from(ref));
      same(o.fx, o.ux, 'dX');
      same(o.fw, o.uw, 'dW');
      same(o.fb, o.ub, 'dB');
      same(o.gw, o.uw, 'dW (no dX)');
      same(o.gb, o.ub, 'dB (no dX)');
      expect(Math.abs(o.fl[0] - o.ul[0]), `loss, seed ${SEED}`).toBeLessThanOrEqual(1e-6 * Math.abs(o.ul[0]));
      expect(o.gl[0]).toBe(o.fl[0]);
    });
  }

  for (const B of [1, 7, 130]) {
    it(`inputRelu equals reluForward + ffiLossBackward + reluBackward bit for bit (B=${B}, zeros, -0 and NaN in x)`, async () => {
      const r = rng();
      const I = 300, L = 500, k = 9;
      const x = r.floats(B * I), W = r.floats(L * k), bias = r.floats(L, 0.5), idx = randomFfiIdx(r, L, k, I);
      for (let i = 0; i < x.length; i += 37) x[i] = i % 2 ? 0 : -0;
      x[5] = Number.NaN;
      const { ptr, ids } = labelCsr(randomLabels(r, B, L));
      const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W, [L, k]), tIdx = be.fromArray(idx, [L, k]), tb = be.fromArray(bias);
      const tp = be.fromArray(ptr), ti = be.fromArray(ids);
      // separate ops
      const h = be.tensor('float32', [B, I]), dH = be.tensor('float32', [B, I]), sW = be.tensor('float32', [L, k]), sB = be.tensor('float32', [L]);
      be.reluForward(tx, h);
      const sLoss = be.ffiLossBackward(h, tW, tIdx, tb, tp, ti, dH, sW, sB);
      be.reluBackward(h, dH, dH);
      // one op
      const dX = be.tensor('float32', [B, I]), fW = be.tensor('float32', [L, k]), fB = be.tensor('float32', [L]);
      for (const t of [dX, fW, fB]) be.fill(t, Number.NaN);
      const fLoss = be.ffiLossBackward(tx, tW, tIdx, tb, tp, ti, dX, fW, fB, { inputRelu: true });
      const [sl, sx, sw, sb, fl, fx, fw, fb] = await Promise.all([sLoss, dH, sW, sB, fLoss, dX, fW, fB].map((t) => t.read()));
      for (const [got, want, what] of [[fl, sl, 'loss'], [fx, sx, 'dX'], [fw, sw, 'dW'], [fb, sb, 'dB']] as const) {
        let first = -1;
        for (let i = 0; i < want.length && first < 0; i++) if (!Object.is(got[i], want[i])) first = i;
        expect(first, `${what}: first difference at ${first} (${got[first]} vs ${want[first]}), seed ${SEED}`).toBe(-1);
      }
      // x untouched: the ReLU is applied to a copy
      expect(Object.is((await tx.read())[5], Number.NaN)).toBe(true);
      expect(Math.min(...Array.from(await tx.read()).filter((v) => !Number.isNaN(v)))).toBeLessThan(0);
    });
  }

  it('a batch without rows writes zero gradients and a zero loss', async () => {
    const L = 10, k = 3, I = 5;
    const dW = be.tensor('float32', [L, k]), dB = be.tensor('float32', [L]);
    be.fill(dW, Number.NaN);
    be.fill(dB, Number.NaN);
    const loss = be.ffiLossBackward(be.tensor('float32', [0, I]), be.fromArray(new Float32Array(L * k), [L, k]),
      be.fromArray(randomFfiIdx(rng(), L, k, I), [L, k]), be.fromArray(new Float32Array(L)), be.fromArray(new Uint32Array([0])),
      be.fromArray(new Uint32Array(0)), null, dW, dB);
    expect(Array.from(await dW.read())).toEqual(new Array(L * k).fill(0));
    expect(Array.from(await dB.read())).toEqual(new Array(L).fill(0));
    expect((await loss.read())[0]).toBe(0);
  });

  it('rejects bad labels at run time and bad arguments at once, naming the op and what is wrong', async () => {
    const r = rng();
    const B = 2, I = 6, L = 8, k = 2;
    const args = () => ({
      x: be.fromArray(r.floats(B * I), [B, I]), W: be.fromArray(r.floats(L * k), [L, k]), idx: be.fromArray(randomFfiIdx(r, L, k, I), [L, k]),
      b: be.fromArray(r.floats(L)), dW: be.tensor('float32', [L, k]), dB: be.tensor('float32', [L]),
    });
    const a = args();
    be.ffiLossBackward(a.x, a.W, a.idx, a.b, be.fromArray(new Uint32Array([0, 3, 1])), be.fromArray(new Uint32Array([1, 2, 3])), null, a.dW, a.dB);
    const err = await be.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as Error).message).toMatch(/^ffiLossBackward: labelPtr is not non-decreasing at row 1/);
    const ptr = be.fromArray(new Uint32Array([0, 1, 2])), ids = be.fromArray(new Uint32Array([1, 2]));
    expect(() => be.ffiLossBackward(a.x, a.W, a.idx, a.b, ptr, ids, null, a.dW, a.W)).toThrow('ffiLossBackward: argument dB must have shape [L] = [8], got [8, 2]');
    expect(() => be.ffiLossBackward(a.x, a.W, a.idx, a.b, ptr, ids, null, a.W, a.dB)).toThrow('ffiLossBackward: arguments dW and W must be different tensors (no aliasing here)');
    expect(() => be.ffiLossBackward(a.x, a.W, a.idx, a.b, be.fromArray(new Uint32Array([0, 1])), ids, null, a.dW, a.dB)).toThrow('ffiLossBackward: argument labelPtr must have shape [B + 1] = [3], got [2]');
    expect(() => be.ffiLossBackward(a.x, a.W, a.idx, a.b, ptr, ids, null, a.dW, a.dB, { kind: 'hinge' as LossKind })).toThrow(/ffiLossBackward: .*kind/);
    expect(() => be.ffiLossBackward(a.x, a.W, a.idx, a.b, ptr, ids, null, a.dW, a.dB, { inputRelu: 1 as unknown as boolean })).toThrow('ffiLossBackward: option inputRelu must be a boolean, got 1');
  });
});
