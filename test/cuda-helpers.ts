/**
 * Shared by the test/cuda-*.test.ts files: whether a GPU can be used (the
 * CUDA tests are skipped with a printed reason where it cannot, as on CI), the
 * two backends being compared, and comparison helpers. Inputs come from the
 * seeded generator of ops-helpers.ts (XMC_TEST_SEED replays a run).
 */
import { expect } from 'vitest';
import { createBackend } from '../src/native/index.js';
import type { Backend, Tensor } from '../src/native/index.js';
import { CudaBackend, cudaUnavailableReason } from '../src/native/cuda-backend.js';
import { SEED, countNaN, relErr } from './ops-helpers.js';

export const CUDA_REASON = cudaUnavailableReason();
export const HAVE_CUDA = CUDA_REASON === null;
if (!HAVE_CUDA) console.warn(`[cuda tests] skipped: ${CUDA_REASON}`);

/** The CPU reference backend and the CUDA backend (null without a GPU). */
export const cpu: Backend = createBackend('cpu', { threads: 4 });
export const gpu: CudaBackend | null = HAVE_CUDA ? new CudaBackend() : null;
export const cuda = (): CudaBackend => {
  if (!gpu) throw new Error('no GPU');
  return gpu;
};

/**
 * Relative error bound for dense products: FP32 unless the backend lets cuBLAS
 * use TF32 (then about 1e-3 is expected).
 */
export const denseTol = (): number => (gpu?.info().tf32 ? 2e-3 : 1e-4);

/** A tensor of `shape` filled with NaN (poison) on `be`: an output that an op must overwrite entirely. */
export function poisoned(be: Backend, shape: number[]): Tensor<'float32'> {
  const t = be.tensor('float32', shape);
  be.fill(t, Number.NaN);
  return t;
}

/** Same length, no NaN left (poison written over), ||a - ref|| / ||ref|| < tol. */
export function expectNear(a: ArrayLike<number>, ref: ArrayLike<number>, tol: number, what: string): void {
  expect(a.length, what).toBe(ref.length);
  expect(countNaN(a), `${what}: NaN (unwritten) elements, seed ${SEED}`).toBe(0);
  expect(relErr(a, ref), `${what}: relative error vs the CPU backend, seed ${SEED}`).toBeLessThan(tol);
}

/** Exactly equal arrays (bitwise for floats, NaN equal to NaN). */
export function expectSame(a: ArrayLike<number>, ref: ArrayLike<number>, what: string): void {
  expect(a.length, what).toBe(ref.length);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (!Object.is(a[i], ref[i]) && !(a[i] === 0 && ref[i] === 0)) first = i;
  expect(first, `${what}: first difference at ${first} (${a[first]} vs ${ref[first]}), seed ${SEED}`).toBe(-1);
}
