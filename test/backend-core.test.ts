import { describe, expect, it } from 'vitest';
import { backendInfo, createBackend } from '../src/native/index.js';
import type { Backend } from '../src/native/index.js';
import { CudaUnavailableError, NativeError } from '../src/errors.js';
import { SEED, ffiRef, expectClose, randomFfiIdx, rng } from './ops-helpers.js';

const be = createBackend('cpu', { threads: 2 });

describe('backend - tensors', () => {
  it('fromArray and read round-trip every dtype and shape', async () => {
    const r = rng();
    const f = r.floats(12), i = Int32Array.from({ length: 6 }, () => r.int(2e9) - 1e9), u = Uint32Array.from([0, 1, 4294967295]);
    const tf = be.fromArray(f, [3, 4]), ti = be.fromArray(i, [2, 3]), tu = be.fromArray(u);
    expect([tf.dtype, tf.shape, tf.size]).toEqual(['float32', [3, 4], 12]);
    expect([ti.dtype, ti.shape, tu.dtype, tu.shape]).toEqual(['int32', [2, 3], 'uint32', [3]]);
    expect(Array.from(await tf.read())).toEqual(Array.from(f));
    expect(Array.from(await ti.read())).toEqual(Array.from(i));
    expect(Array.from(await tu.read())).toEqual(Array.from(u));
    const empty = be.fromArray(new Float32Array(0), [0, 5]);
    expect((await empty.read()).length).toBe(0);
  });

  it('tensor() contents are poisoned (NaN, -1, 0xFFFFFFFF), not zero', async () => {
    expect(Array.from(await be.tensor('float32', [5]).read()).every(Number.isNaN)).toBe(true);
    expect(Array.from(await be.tensor('int32', [2, 2]).read())).toEqual([-1, -1, -1, -1]);
    expect(Array.from(await be.tensor('uint32', [2]).read())).toEqual([4294967295, 4294967295]);
  });

  it('write, fill and copy happen in queue order', async () => {
    const t = be.fromArray(Float32Array.from([1, 2, 3]));
    const snapshot = be.tensor('float32', [3]);
    be.copy(t, snapshot); // enqueued before the write: sees 1, 2, 3
    t.write(Float32Array.from([4, 5, 6]));
    const readAfterWrite = t.read();
    be.fill(t, 7.5);
    expect(Array.from(await snapshot.read())).toEqual([1, 2, 3]);
    expect(Array.from(await readAfterWrite)).toEqual([4, 5, 6]);
    expect(Array.from(await t.read())).toEqual([7.5, 7.5, 7.5]);
    const ints = be.tensor('uint32', [2]);
    be.fill(ints, 42);
    expect(Array.from(await ints.read())).toEqual([42, 42]);
    expect(() => be.fill(ints, -1)).toThrow(/^fill: value must be an integer in the range of uint32/);
  });

  it('queued ops keep their tensors alive after the handles are disposed', async () => {
    const r = rng();
    const local = createBackend('cpu', { threads: 2 });
    const B = 9, I = 40, L = 333, k = 7;
    const x = r.floats(B * I), W = r.floats(L * k), idx = randomFfiIdx(r, L, k, I), b = r.floats(L);
    const tx = local.fromArray(x, [B, I]), tW = local.fromArray(W, [L, k]), tIdx = local.fromArray(idx, [L, k]), tb = local.fromArray(b);
    const out = local.tensor('float32', [B, L]);
    local.ffiForward(tx, tW, tIdx, tb, out);
    for (const t of [tx, tW, tIdx, tb]) t.dispose();
    expect(tx.disposed).toBe(true);
    expectClose(await out.read(), ffiRef(x, W, idx, b, B, I, L, k));
    // only `out` is left once the queue has let go of the others
    await local.sync();
    const bytes = (n: number) => Math.ceil((4 * n) / 64) * 64;
    expect(local.memoryStats().currentBytes).toBe(bytes(B * L));
    expect(local.memoryStats().liveAllocations).toBe(1);
    expect(() => local.reluForward(tx, out)).toThrow(/^reluForward: argument x was disposed/);
  });

  it('memoryStats counts tensors and op scratch, current and peak', async () => {
    const local = createBackend('cpu', { threads: 2 });
    expect(local.memoryStats()).toEqual({ currentBytes: 0, peakBytes: 0, liveAllocations: 0 });
    const a = local.tensor('float32', [1000]); // 4000 bytes -> 4032 in 64-byte blocks
    expect(local.memoryStats().currentBytes).toBe(4032);
    const B = 16, I = 256, L = 64, k = 4;
    const x = local.fromArray(new Float32Array(B * I), [B, I]);
    const W = local.fromArray(new Float32Array(L * k), [L, k]), idx = local.fromArray(new Uint32Array(L * k), [L, k]);
    const b = local.fromArray(new Float32Array(L)), out = local.tensor('float32', [B, L]);
    const tensors = local.memoryStats().currentBytes;
    local.ffiForward(x, W, idx, b, out); // uses a transposed copy of x (B*I floats) as scratch
    await local.sync();
    const s = local.memoryStats();
    expect(s.currentBytes).toBe(tensors);
    expect(s.peakBytes).toBeGreaterThanOrEqual(tensors + 4 * B * I);
    a.dispose();
    expect(local.memoryStats().currentBytes).toBe(tensors - 4032);
    local.resetPeakMemory();
    expect(local.memoryStats().peakBytes).toBe(tensors - 4032);
  });
});

describe('backend - argument checks at enqueue time', () => {
  const f = (shape: number[]) => be.tensor('float32', shape);
  const u = (shape: number[]) => be.tensor('uint32', shape);

  it('shape errors are RangeErrors naming the op, the argument, expected and actual shapes', () => {
    expect(() => be.denseForward(f([3, 4]), f([5, 6]), f([5]), f([3, 5]))).toThrow(RangeError);
    expect(() => be.denseForward(f([3, 4]), f([5, 6]), f([5]), f([3, 5]))).toThrow('denseForward: argument W must have shape [O, I] = [*, 4], got [5, 6]');
    expect(() => be.ffiForward(f([2, 9]), f([10, 7]), u([10, 7]), f([10]), f([2, 11]))).toThrow('ffiForward: argument out must have shape [B, L] = [2, 10], got [2, 11]');
    expect(() => be.ffiBackward(f([2, 9]), f([10, 7]), u([10, 7]), f([2, 10]), null, f([10, 6]), f([10]))).toThrow('ffiBackward: argument dW must have shape [L, k] = [10, 7], got [10, 6]');
    expect(() => be.ffiForward(f([2, 9]), f([10, 7]), u([10, 3]), f([10]), f([2, 10]))).toThrow('ffiForward: argument idx must have shape [L, k] = [10, 7], got [10, 3]');
    expect(() => be.sparseForward(f([2, 9]), u([10]), u([30]), f([30]), f([10]), f([2, 10]))).toThrow('sparseForward: argument rowPtr must have shape [L + 1] = [11], got [10]');
    expect(() => be.sparseBackward(f([2, 9]), u([11]), u([30]), f([30]), f([2, 10]), null, f([30]), f([10, 1]))).toThrow('sparseBackward: argument dB must have shape [L] = [*], got [10, 1]');
    expect(() => be.lossForward(f([4, 10]), u([4]), u([3]), f([4, 10]))).toThrow('lossForward: argument labelPtr must have shape [B + 1] = [5], got [4]');
    expect(() => be.reluBackward(f([3]), f([3]), f([4]))).toThrow('reluBackward: argument dX must have the shape of out [3], got [4]');
    expect(() => be.denseTopK(f([2, 3]), f([5, 4]), f([5]), 2)).toThrow('denseTopK: argument W must have shape [L, I] = [*, 3], got [5, 4]');
  });

  it('dtype and argument-kind errors are TypeErrors naming the op and the argument', () => {
    expect(() => be.ffiForward(f([2, 9]), f([10, 7]), f([10, 7]) as never, f([10]), f([2, 10]))).toThrow(TypeError);
    expect(() => be.ffiForward(f([2, 9]), f([10, 7]), f([10, 7]) as never, f([10]), f([2, 10]))).toThrow('ffiForward: argument idx must be an index tensor (uint32 or int32), got float32');
    expect(() => be.denseForward(u([3, 4]) as never, f([5, 4]), f([5]), f([3, 5]))).toThrow('denseForward: argument x must be float32, got uint32');
    expect(() => be.denseForward(f([3, 4]), f([5, 4]), null as never, f([3, 5]))).toThrow('denseForward: argument b must be a tensor, got null');
    const other = createBackend('cpu', { threads: 1 });
    expect(() => be.reluForward(other.tensor('float32', [3]), f([3]))).toThrow('reluForward: argument x is a tensor of another backend');
    expect(() => be.dropout(f([3]), f([3]), 1, 0)).toThrow(/^dropout: argument p must be a number in \[0, /);
  });

  it('aliasing that would corrupt results is refused', () => {
    const y = f([3, 3]);
    expect(() => be.denseForward(y, f([3, 3]), f([3]), y)).toThrow('denseForward: arguments out and x must be different tensors (no aliasing here)');
  });

  it('tensor creation checks dtype and shape', () => {
    expect(() => be.tensor('float64' as never, [2])).toThrow(TypeError);
    expect(() => be.tensor('float32', [2, -1])).toThrow(/backend.tensor: shape\[1\] must be an integer/);
    expect(() => be.fromArray(new Float32Array(6), [4, 2])).toThrow('backend.fromArray: shape [4, 2] holds 8 elements but the array has 6');
    expect(() => be.tensor('float32', [3]).write(new Float32Array(2) as never)).toThrow(/tensor.write: the array has 2 elements/);
  });

  it('cuda without a usable GPU is a clean CudaUnavailableError; auto falls back to the CPU', () => {
    const { cuda } = backendInfo();
    if (cuda.compiled && cuda.deviceCount > 0 && !cuda.error) {
      expect(createBackend('auto').kind).toBe('cuda');
      return;
    }
    expect(() => createBackend('cuda')).toThrow(CudaUnavailableError);
    expect(createBackend('auto').kind).toBe('cpu');
  });
});

describe('backend - run-time failures', () => {
  it('a failing op rejects the next sync with a NativeError naming it; ops in between are skipped; then it recovers', async () => {
    const local = createBackend('cpu', { threads: 2 });
    const idx = local.fromArray(Uint32Array.from([0, 1, 2, 99]), [2, 2]);
    const t = local.tensor('float32', [3]); // poisoned
    local.ffiForward(local.fromArray(new Float32Array(5), [1, 5]), local.fromArray(new Float32Array(4), [2, 2]), idx, local.fromArray(new Float32Array(2)), local.tensor('float32', [1, 2]));
    local.fill(t, 1); // skipped: enqueued after the failure
    const err = await local.sync().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeError);
    expect((err as Error).message).toMatch(/^ffiForward: idx\[1, 1\] = 99 is not a valid source: it must be in \[0, I = 5\) \(reported by sync/);
    expect(Array.from(await t.read()).every(Number.isNaN)).toBe(true);
    local.fill(t, 2);
    expect(Array.from(await t.read())).toEqual([2, 2, 2]);
    // a read can be the one that reports it
    local.lossForward(local.fromArray(new Float32Array(2), [1, 2]), local.fromArray(Uint32Array.from([0, 5])), local.fromArray(Uint32Array.from([0])), null);
    await expect(t.read()).rejects.toThrow(/^lossForward: labelPtr\[B\] = 5 exceeds the 1 labelIds \(reported by read/);
    await expect(local.sync()).resolves.toBeUndefined();
  });
});

/** A chain of FFI forward passes taking about `targetMs` in total. */
async function calibrateChain(local: Backend, targetMs: number) {
  const r = rng();
  const B = 64, I = 512, L = 16384, k = 32;
  const x = local.fromArray(r.floats(B * I), [B, I]), W = local.fromArray(r.floats(L * k), [L, k]);
  const idx = local.fromArray(randomFfiIdx(r, L, k, I), [L, k]), b = local.fromArray(r.floats(L)), out = local.tensor('float32', [B, L]);
  const op = () => local.ffiForward(x, W, idx, b, out);
  const t0 = performance.now();
  for (let i = 0; i < 3; i++) op();
  await local.sync();
  const perOp = (performance.now() - t0) / 3;
  return { op, count: Math.max(5, Math.min(500, Math.ceil(targetMs / perOp))), perOp };
}

describe('backend - responsiveness', () => {
  it('the JS thread keeps running timers while a long op chain runs', async () => {
    const local = createBackend('cpu', { threads: 2 });
    const { op, count, perOp } = await calibrateChain(local, 500);
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const t0 = performance.now();
    let enqueueMs = 0, ops = 0, pendingAfterTimeout = false;
    // Chains of `count` ops until at least a second has passed (the calibration may be off on a busy machine).
    while (performance.now() - t0 < 1000 && ops < 50 * count) {
      const e0 = performance.now();
      for (let i = 0; i < count; i++) op();
      enqueueMs += performance.now() - e0;
      ops += count;
      let settled = false;
      const done = local.sync().then(() => { settled = true; });
      if (ops === count) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        pendingAfterTimeout = !settled; // a timer ran while the chain was still running
      }
      await done;
    }
    const totalMs = performance.now() - t0;
    clearInterval(timer);
    const gaps = ticks.slice(1).map((t, i) => t - ticks[i]);
    const maxGap = Math.max(...gaps);
    const info = `${ops} ops (${perOp.toFixed(1)} ms each when calibrated): enqueue ${enqueueMs.toFixed(1)} ms, total ${totalMs.toFixed(0)} ms, ${ticks.length} ticks, max gap ${maxGap.toFixed(1)} ms, seed ${SEED}`;
    console.info(`[responsiveness] ${info}`);
    expect(totalMs, info).toBeGreaterThanOrEqual(1000);
    expect(enqueueMs, info).toBeLessThan(totalMs / 10); // ops return at once
    expect(pendingAfterTimeout, info).toBe(true);
    expect(ticks.length, info).toBeGreaterThan(totalMs / 5 / 4);
    expect(maxGap, info).toBeLessThan(250);
  });
});
