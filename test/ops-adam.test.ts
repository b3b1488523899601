import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import { SEED, expectClose, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 3 });

/** torch.optim.Adam, one step, in float64. */
function adamRef(p: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, lr: number, b1: number, b2: number, eps: number, step: number) {
  const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
  for (let i = 0; i < p.length; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    p[i] -= (lr / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
  }
}

describe('ops - adam', () => {
  for (const opts of [{ lr: 1e-2 }, { lr: 3e-3, beta1: 0.8, beta2: 0.99, eps: 1e-6 }]) {
    it(`adam matches a float64 PyTorch-semantics reference over several steps (${JSON.stringify(opts)})`, async () => {
      const r = rng();
      const n = 1000 + r.int(70000); // several parallel chunks
      const p0 = r.floats(n);
      const p = Float64Array.from(p0), m = new Float64Array(n), v = new Float64Array(n);
      const tp = be.fromArray(p0, [n]), tm = be.fromArray(new Float32Array(n)), tv = be.fromArray(new Float32Array(n));
      const b1 = opts.beta1 ?? 0.9, b2 = opts.beta2 ?? 0.999, eps = opts.eps ?? 1e-8;
      for (let step = 1; step <= 5; step++) {
        const g = r.floats(n, 0.1 * step);
        adamRef(p, g, m, v, opts.lr, b1, b2, eps, step);
        be.adam(tp, be.fromArray(g), tm, tv, { ...opts, step });
      }
      expectClose(await tm.read(), m, 1e-5, 'm');
      expectClose(await tv.read(), v, 1e-5, 'v');
      expectClose(await tp.read(), p, 1e-5, 'param');
      // the update itself (p - p0) is what must be right, not just p
      const got = await tp.read();
      expectClose(Array.from(got, (x, i) => x - p0[i]), Array.from(p, (x, i) => x - p0[i]), 1e-4, `update, seed ${SEED}`);
    });
  }

  it('adam checks shapes and requires lr and step', () => {
    const a = be.tensor('float32', [4]), b = be.tensor('float32', [4]), c = be.tensor('float32', [4]), d = be.tensor('float32', [5]);
    expect(() => be.adam(a, b, c, d, { lr: 1, step: 1 })).toThrow(/^adam: argument v must have the shape of param \[4\], got \[5\]/);
    expect(() => be.adam(a, b, c, be.tensor('float32', [4]), { lr: 1, step: 0 })).toThrow(RangeError);
    expect(() => be.adam(a, b, c, be.tensor('float32', [4]), { step: 1 } as never)).toThrow(/adam: option lr is required/);
  });
});
