import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import type { LossKind } from '../src/native/index.js';
import { SEED, expectClose, f64, finiteDiff, labelCsr, lossRef, rng } from './ops-helpers.js';
import type { Rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });
const KINDS: LossKind[] = ['squared-hinge', 'bce'];

/** Random label lists of global ids < Ltotal: some rows empty, some with duplicates. */
function randomLabels(r: Rng, B: number, Ltotal: number): number[][] {
  return Array.from({ length: B }, () => {
    const n = r.int(6);
    const row = Array.from({ length: n }, () => r.int(Ltotal));
    if (n > 0 && r.next() < 0.3) row.push(row[0]); // a duplicate counts once
    return row;
  });
}

async function runLoss(scores: Float32Array, B: number, L: number, labels: number[][], kind: LossKind, labelOffset = 0, normaliser?: number) {
  const { ptr, ids } = labelCsr(labels);
  const d = be.tensor('float32', [B, L]);
  const loss = be.lossForward(be.fromArray(scores, [B, L]), be.fromArray(ptr), be.fromArray(ids), d, { kind, labelOffset, normaliser });
  return { loss: (await loss.read())[0], grad: await d.read() };
}

describe('ops - losses', () => {
  for (const kind of KINDS) {
    for (const [B, L] of [[5, 37], [1, 23]]) {
      it(`lossForward ${kind} value matches a float64 reference and its gradient finite differences (B=${B}, L=${L})`, async () => {
        const r = rng();
        const scores = r.floats(B * L, 1.5);
        const labels = randomLabels(r, B, L);
        const { loss, grad } = await runLoss(scores, B, L, labels, kind);
        const s = f64(scores);
        const ref = lossRef(s, B, L, labels, kind);
        expect(Math.abs(loss - ref) / Math.abs(ref), `seed ${SEED}`).toBeLessThan(1e-5);
        expectClose(grad, finiteDiff(s, () => lossRef(s, B, L, labels, kind), 1e-5), 1e-5, 'dScores');
      });
    }

    it(`lossForward ${kind}: sharded with labelOffset and normaliser equals unsharded`, async () => {
      const r = rng();
      const B = 1 + r.int(9), L = 50 + r.int(100);
      const scores = r.floats(B * L);
      const labels = randomLabels(r, B, L);
      const full = await runLoss(scores, B, L, labels, kind);
      const cuts = [0, 1 + r.int(L / 3), Math.floor(L / 2) + r.int(L / 4), L]; // 3 unequal shards
      let total = 0;
      for (let s = 0; s < 3; s++) {
        const lo = cuts[s], Ls = cuts[s + 1] - lo;
        const part = new Float32Array(B * Ls);
        for (let b = 0; b < B; b++) part.set(scores.subarray(b * L + lo, b * L + lo + Ls), b * Ls);
        const shard = await runLoss(part, B, Ls, labels, kind, lo, L);
        total += shard.loss;
        for (let b = 0; b < B; b++)
          expect(Array.from(shard.grad.subarray(b * Ls, (b + 1) * Ls)), `shard ${s} row ${b}, seed ${SEED}`)
            .toEqual(Array.from(full.grad.subarray(b * L + lo, b * L + lo + Ls)));
      }
      expect(Math.abs(total - full.loss) / full.loss).toBeLessThan(1e-5);
    });

    it(`lossForward ${kind} works in place (dScores = scores) and without a gradient`, async () => {
      const r = rng();
      const B = 4, L = 29;
      const scores = r.floats(B * L);
      const labels = randomLabels(r, B, L);
      const ref = await runLoss(scores, B, L, labels, kind);
      const { ptr, ids } = labelCsr(labels);
      const t = be.fromArray(scores, [B, L]);
      const loss = be.lossForward(t, be.fromArray(ptr), be.fromArray(ids), t, { kind });
      expect(Array.from(await t.read())).toEqual(Array.from(ref.grad));
      expect((await loss.read())[0]).toBe(ref.loss);
      const out = be.tensor('float32', [1]);
      const same = be.lossForward(be.fromArray(scores, [B, L]), be.fromArray(ptr), be.fromArray(ids), null, { kind, out });
      expect(same).toBe(out);
      expect((await out.read())[0]).toBe(ref.loss);
    });
  }

  it('lossForward bce is numerically stable for large scores', async () => {
    const B = 2, L = 4;
    const scores = Float32Array.from([100, -100, 80, -80, -100, 100, 0, 30]);
    const labels = [[0, 2], [0]];
    const { loss, grad } = await runLoss(scores, B, L, labels, 'bce');
    expect(Number.isFinite(loss)).toBe(true);
    expect(Math.abs(loss - lossRef(f64(scores), B, L, labels, 'bce')) / loss).toBeLessThan(1e-5);
    // s = 100 with y = 1: gradient ~ 0; s = -100 with y = 1: gradient ~ -1/(B*L)
    expect(grad[0]).toBeCloseTo(0, 12);
    expect(grad[4]).toBeCloseTo(-1 / (B * L), 7);
    expect(Array.from(grad).every(Number.isFinite)).toBe(true);
  });

  it('lossForward rejects a malformed label list at run time and bad options at once', async () => {
    const scores = be.fromArray(new Float32Array(6), [2, 3]);
    const d = be.tensor('float32', [2, 3]);
    be.lossForward(scores, be.fromArray(new Uint32Array([0, 3, 1])), be.fromArray(new Uint32Array([0, 1, 2])), d);
    await expect(be.sync()).rejects.toThrow(/^lossForward: labelPtr is not non-decreasing at row 1/);
    const ptr = be.fromArray(new Uint32Array([0, 1, 2])), ids = be.fromArray(new Uint32Array([0, 1]));
    expect(() => be.lossForward(scores, ptr, ids, d, { kind: 'hinge' as LossKind })).toThrow(TypeError);
    expect(() => be.lossForward(scores, ptr, ids, d, { kind: 'hinge' as LossKind })).toThrow(/lossForward: option kind must be one of/);
    expect(() => be.lossForward(scores, ptr, ids, d, { normaliser: 0 })).toThrow(RangeError);
  });
});
