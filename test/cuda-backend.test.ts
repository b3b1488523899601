// The CUDA backend's execution model: availability (also checked where there
// is no GPU: a clean CudaUnavailableError, 'auto' falling back to the CPU),
// tensors, memory accounting, argument checks (the CPU backend's messages),
// run-time failures (skipping, the same messages as the CPU backend), a
// responsive JS thread, and process lifecycle in child processes.
import { describe, expect, it } from 'vitest';
import { createBackend } from '../src/native/index.js';
import type { Backend } from '../src/native/index.js';
import { CudaUnavailableError, NativeError } from '../src/errors.js';
import { SEED, randomFfiIdx, rng } from './ops-helpers.js';
import { CUDA_REASON, HAVE_CUDA, cpu, cuda } from './cuda-helpers.js';
import { CudaBackend } from '../src/native/cuda-backend.js';
import { runAddonScript } from './addon-process.js';

describe('cuda backend - availability', () => {
  it("createBackend('cuda') gives a CUDA backend with a GPU, else throws CudaUnavailableError saying why; 'auto' falls back to the CPU", () => {
    if (HAVE_CUDA) {
      const be = createBackend('cuda');
      expect(be.kind).toBe('cuda');
      expect(createBackend('auto').kind).toBe('cuda');
      const info = (be as CudaBackend).info();
      console.info(`[cuda] ${info.name}, compute capability ${info.computeCapability}, ${info.multiprocessors} SMs, cuBLAS ${info.cublas}, TF32 ${info.tf32}`);
    } else {
      expect(() => createBackend('cuda')).toThrow(CudaUnavailableError);
      expect(() => createBackend('cuda')).toThrow(/^CUDA backend unavailable: /);
      expect(createBackend('auto').kind).toBe('cpu');
      expect(CUDA_REASON).toBeTruthy();
    }
  });

  it('createBackend refuses an unknown kind', () => {
    expect(() => createBackend('tpu' as never)).toThrow(/option backend: must be 'cpu', 'cuda' or 'auto'/);
  });
});

describe.skipIf(!HAVE_CUDA)('cuda backend - tensors and memory', () => {
  it('fromArray and read round-trip every dtype; tensor() is poisoned; write, fill and copy happen in queue order', async () => {
    const be = cuda();
    const r = rng();
    const f = r.floats(12), i = Int32Array.from({ length: 6 }, () => r.int(2e9) - 1e9), u = Uint32Array.from([0, 1, 4294967295]);
    const tf = be.fromArray(f, [3, 4]), ti = be.fromArray(i, [2, 3]), tu = be.fromArray(u);
    expect([tf.dtype, tf.shape, tf.size]).toEqual(['float32', [3, 4], 12]);
    expect(Array.from(await tf.read())).toEqual(Array.from(f));
    expect(Array.from(await ti.read())).toEqual(Array.from(i));
    expect(Array.from(await tu.read())).toEqual(Array.from(u));
    expect((await be.fromArray(new Float32Array(0), [0, 5]).read()).length).toBe(0);
    expect(Array.from(await be.tensor('float32', [5]).read()).every(Number.isNaN)).toBe(true);
    expect(Array.from(await be.tensor('int32', [2, 2]).read())).toEqual([-1, -1, -1, -1]);
    const t = be.fromArray(Float32Array.from([1, 2, 3]));
    const snapshot = be.tensor('float32', [3]);
    be.copy(t, snapshot);
    t.write(Float32Array.from([4, 5, 6]));
    const readAfterWrite = t.read();
    be.fill(t, 7.5);
    expect(Array.from(await snapshot.read())).toEqual([1, 2, 3]);
    expect(Array.from(await readAfterWrite)).toEqual([4, 5, 6]);
    expect(Array.from(await t.read())).toEqual([7.5, 7.5, 7.5]);
  });

  it('memoryStats counts GPU tensors and op scratch; queued ops keep disposed tensors alive; deviceMemory reports the GPU', async () => {
    const be = new CudaBackend();
    expect(be.memoryStats()).toEqual({ currentBytes: 0, peakBytes: 0, liveAllocations: 0 });
    const a = be.tensor('float32', [1000]);
    expect(be.memoryStats().currentBytes).toBe(4032);
    const r = rng();
    const B = 9, I = 40, L = 333, k = 7;
    const x = r.floats(B * I), W = r.floats(L * k), idx = randomFfiIdx(r, L, k, I), b = r.floats(L);
    const tx = be.fromArray(x, [B, I]), tW = be.fromArray(W, [L, k]), tIdx = be.fromArray(idx, [L, k]), tb = be.fromArray(b);
    const out = be.tensor('float32', [B, L]);
    const before = be.memoryStats().currentBytes;
    be.ffiForward(tx, tW, tIdx, tb, out); // transposes x into scratch (B * I floats)
    for (const t of [tx, tW, tIdx, tb]) t.dispose();
    const ref = cpu.tensor('float32', [B, L]);
    cpu.ffiForward(cpu.fromArray(x, [B, I]), cpu.fromArray(W, [L, k]), cpu.fromArray(idx, [L, k]), cpu.fromArray(b), ref);
    const [got, want] = await Promise.all([out.read(), ref.read()]);
    for (let j = 0; j < got.length; j++) expect(Math.abs(got[j] - want[j])).toBeLessThan(1e-4 * (1 + Math.abs(want[j])));
    const bytes = (n: number) => Math.ceil((4 * n) / 64) * 64;
    expect(be.memoryStats().peakBytes).toBeGreaterThanOrEqual(before + 4 * B * I);
    expect(be.memoryStats().currentBytes).toBe(bytes(1000) + bytes(B * L));
    a.dispose();
    expect(be.memoryStats()).toMatchObject({ currentBytes: bytes(B * L), liveAllocations: 1 });
    be.resetPeakMemory();
    expect(be.memoryStats().peakBytes).toBe(bytes(B * L));
    const dm = be.deviceMemory();
    expect(dm.totalBytes).toBeGreaterThan(1e9);
    expect(dm.freeBytes).toBeLessThanOrEqual(dm.totalBytes);
  });
});

describe.skipIf(!HAVE_CUDA)('cuda backend - argument checks at enqueue time', () => {
  const msg = (f: (be: Backend) => void, be: Backend): string => {
    try {
      f(be);
    } catch (e) {
      return `${(e as Error).constructor.name}: ${(e as Error).message}`;
    }
    return 'no error';
  };
  it('shape, dtype and aliasing errors are those of the CPU backend, word for word', () => {
    const cases: ((be: Backend) => void)[] = [
      (be) => be.denseForward(be.tensor('float32', [3, 4]), be.tensor('float32', [5, 6]), be.tensor('float32', [5]), be.tensor('float32', [3, 5])),
      (be) => be.ffiForward(be.tensor('float32', [2, 9]), be.tensor('float32', [10, 7]), be.tensor('uint32', [10, 3]), be.tensor('float32', [10]), be.tensor('float32', [2, 10])),
      (be) => be.ffiForward(be.tensor('float32', [2, 9]), be.tensor('float32', [10, 7]), be.tensor('float32', [10, 7]) as never, be.tensor('float32', [10]), be.tensor('float32', [2, 10])),
      (be) => be.sparseBackward(be.tensor('float32', [2, 9]), be.tensor('uint32', [11]), be.tensor('uint32', [30]), be.tensor('float32', [30]), be.tensor('float32', [2, 10]), null, be.tensor('float32', [30]), be.tensor('float32', [10, 1])),
      (be) => be.lossForward(be.tensor('float32', [4, 10]), be.tensor('uint32', [4]), be.tensor('uint32', [3]), be.tensor('float32', [4, 10])),
      (be) => { const y = be.tensor('float32', [3, 3]); be.denseForward(y, be.tensor('float32', [3, 3]), be.tensor('float32', [3]), y); },
      (be) => be.dropout(be.tensor('float32', [3]), be.tensor('float32', [3]), 1, 0),
      (be) => be.adam(be.tensor('float32', [3]), be.tensor('float32', [3]), be.tensor('float32', [3]), be.tensor('float32', [3]), { lr: 1 } as never),
      (be) => be.rewireFfi(be.tensor('float32', [4, 5]), be.tensor('uint32', [4, 5]), be.tensor('float32', [4, 5]), be.tensor('float32', [4, 5]), { fraction: 0.5, inputDim: 3, seed: 1 }),
      (be) => void be.ffiTopK(be.tensor('float32', [2, 3]), be.tensor('float32', [5, 2]), be.tensor('uint32', [5, 2]), be.tensor('float32', [5]), 0),
      (be) => be.fill(be.tensor('uint32', [2]), -1),
    ];
    for (const f of cases) expect(msg(f, cuda())).toBe(msg(f, cpu));
    expect(msg((be) => be.reluForward(cpu.tensor('float32', [3]), be.tensor('float32', [3])), cuda())).toBe('TypeError: reluForward: argument x is a tensor of another backend');
  });
});

describe.skipIf(!HAVE_CUDA)('cuda backend - run-time failures', () => {
  /** Runs `fail` then a fill that must be skipped; returns the message of the rejected sync and whether the fill ran. */
  async function failure(be: Backend, fail: (be: Backend) => void) {
    const t = be.tensor('float32', [3]);
    fail(be);
    be.fill(t, 1);
    const err = await be.sync().catch((e: unknown) => e);
    const skipped = Array.from(await t.read()).every(Number.isNaN);
    be.fill(t, 2);
    const recovered = Array.from(await t.read()).every((v) => v === 2);
    return { err, message: (err as Error).message, skipped, recovered };
  }

  const cases: [string, (be: Backend) => void][] = [
    ['ffiForward source out of range', (be) => be.ffiForward(be.fromArray(new Float32Array(5), [1, 5]), be.fromArray(new Float32Array(4), [2, 2]), be.fromArray(Uint32Array.from([0, 1, 2, 99]), [2, 2]), be.fromArray(new Float32Array(2)), be.tensor('float32', [1, 2]))],
    ['ffiBackward negative int32 source', (be) => be.ffiBackward(be.fromArray(new Float32Array(10), [2, 5]), be.fromArray(new Float32Array(4), [2, 2]), be.fromArray(Int32Array.from([0, -3, 2, 1]), [2, 2]), be.fromArray(new Float32Array(4), [2, 2]), be.tensor('float32', [2, 5]), be.tensor('float32', [2, 2]), be.tensor('float32', [2]))],
    ['sparseForward rowPtr[0]', (be) => be.sparseForward(be.fromArray(new Float32Array(4), [1, 4]), be.fromArray(Uint32Array.from([1, 2, 3])), be.fromArray(Uint32Array.from([0, 1, 2])), be.fromArray(new Float32Array(3)), be.fromArray(new Float32Array(2)), be.tensor('float32', [1, 2]))],
    ['sparseForward decreasing rowPtr', (be) => be.sparseForward(be.fromArray(new Float32Array(4), [1, 4]), be.fromArray(Uint32Array.from([0, 3, 2, 3])), be.fromArray(Uint32Array.from([0, 1, 2])), be.fromArray(new Float32Array(3)), be.fromArray(new Float32Array(3)), be.tensor('float32', [1, 3]))],
    ['sparseBackward rowPtr[L] != nnz', (be) => be.sparseBackward(be.fromArray(new Float32Array(4), [1, 4]), be.fromArray(Uint32Array.from([0, 1, 2])), be.fromArray(Uint32Array.from([0, 1, 2])), be.fromArray(new Float32Array(3)), be.fromArray(new Float32Array(2), [1, 2]), null, be.tensor('float32', [3]), be.tensor('float32', [2]))],
    ['sparseForward col out of range', (be) => be.sparseForward(be.fromArray(new Float32Array(4), [1, 4]), be.fromArray(Uint32Array.from([0, 2, 3])), be.fromArray(Uint32Array.from([0, 7, 2])), be.fromArray(new Float32Array(3)), be.fromArray(new Float32Array(2)), be.tensor('float32', [1, 2]))],
    ['lossForward labelPtr[B] > nnz', (be) => be.lossForward(be.fromArray(new Float32Array(2), [1, 2]), be.fromArray(Uint32Array.from([0, 5])), be.fromArray(Uint32Array.from([0])), null)],
    ['lossForward decreasing labelPtr', (be) => be.lossForward(be.fromArray(new Float32Array(4), [2, 2]), be.fromArray(Uint32Array.from([0, 2, 1])), be.fromArray(Uint32Array.from([0, 1])), null)],
    ['rewireFfi source out of range', (be) => be.rewireFfi(be.fromArray(Float32Array.from([1, 2, 3, 4]), [2, 2]), be.fromArray(Uint32Array.from([0, 1, 9, 2]), [2, 2]), be.fromArray(new Float32Array(4), [2, 2]), be.fromArray(new Float32Array(4), [2, 2]), { fraction: 0.5, inputDim: 5, seed: 3 })],
    ['rewireSparse col out of range', (be) => be.rewireSparse(be.fromArray(Uint32Array.from([0, 1, 2])), be.fromArray(Uint32Array.from([0, 8])), be.fromArray(Float32Array.from([1, 2])), be.fromArray(new Float32Array(2)), be.fromArray(new Float32Array(2)), { fraction: 0.5, inputDim: 4, seed: 3 })],
  ];
  for (const [what, fail] of cases) {
    it(`${what}: the next sync rejects with the CPU backend's message, the ops in between are skipped, then it recovers`, async () => {
      const [c, g] = await Promise.all([failure(cpu, fail), failure(cuda(), fail)]);
      expect(g.err).toBeInstanceOf(NativeError);
      expect(g.message).toBe(c.message);
      expect(g.skipped).toBe(true);
      expect(g.recovered).toBe(true);
    });
  }

  it("a top-k op's own failure rejects it without the 'reported by' suffix, like the CPU backend", async () => {
    const run = (be: Backend) => be.ffiTopK(be.fromArray(new Float32Array(5), [1, 5]), be.fromArray(new Float32Array(4), [2, 2]), be.fromArray(Uint32Array.from([0, 1, 2, 99]), [2, 2]), be.fromArray(new Float32Array(2)), 1).then(() => 'resolved', (e: Error) => e.message);
    const [c, g] = await Promise.all([run(cpu), run(cuda())]);
    expect(g).toBe(c);
    expect(g).toMatch(/^ffiTopK: idx\[1, 1\] = 99 is not a valid source/);
  });
});

describe.skipIf(!HAVE_CUDA)('cuda backend - responsiveness', () => {
  it('ops return at once and timers keep firing while the GPU works', async () => {
    const be = cuda();
    const r = rng();
    const B = 128, I = 4096, L = 200_000, k = 32;
    const x = be.fromArray(r.floats(B * I), [B, I]), W = be.fromArray(r.floats(L * k), [L, k]);
    const idx = be.fromArray(randomFfiIdx(r, L, k, I), [L, k]), b = be.fromArray(r.floats(L)), out = be.tensor('float32', [B, L]);
    await be.sync();
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 2);
    const t0 = performance.now();
    let ops = 0;
    for (; ops < 400 && performance.now() - t0 < 20; ops++) be.ffiForward(x, W, idx, b, out);
    const enqueueMs = performance.now() - t0;
    await be.sync();
    const totalMs = performance.now() - t0;
    clearInterval(timer);
    const info = `${ops} ops: enqueue ${enqueueMs.toFixed(1)} ms, total ${totalMs.toFixed(1)} ms, ${ticks.length} ticks, seed ${SEED}`;
    console.info(`[cuda responsiveness] ${info}`);
    expect(enqueueMs, info).toBeLessThan(totalMs);
    if (totalMs > 50) expect(ticks.length, info).toBeGreaterThan(3);
  });
});

const runNode = (script: string, args: string[] = []) => runAddonScript('a.cuda', script, args);

describe.skipIf(!HAVE_CUDA)('cuda backend - process lifecycle', () => {
  it('a process exits cleanly with ops still queued and nothing awaited', () => {
    const r = runNode(`const be = new a.CudaBackend({}); chain(be, 200); console.log('enqueued');`);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe('enqueued');
  });

  it('a pending promise keeps the process alive until it settles, even if the backend is garbage-collected', () => {
    const r = runNode(`
      let pending;
      (() => {
        const be = new a.CudaBackend({});
        const out = chain(be, 20);
        pending = out.read();
      })();
      global.gc();
      pending.then((v) => console.log('resolved', v.length, Math.abs(v[0] - 0.5 * 0.1 * 32) < 1e-4));
    `, ['--expose-gc']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toBe(`resolved ${64 * 16384} true`);
  });
});
