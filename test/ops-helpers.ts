/**
 * Shared by the test/ops-*.test.ts and test/backend-*.test.ts files: a seeded
 * RNG whose seed changes every run (printed, and settable with
 * XMC_TEST_SEED=<n> to replay a failure), random layer structures, and plain
 * float64 TypeScript references of every op.
 */
import { expect } from 'vitest';

export const SEED = Number(process.env.XMC_TEST_SEED ?? (Date.now() ^ (process.pid << 10)) >>> 0);
console.info(`[xmc tests] random seed ${SEED} (replay with XMC_TEST_SEED=${SEED})`);

/** mulberry32: small, fast, good enough for test data. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  normal(): number {
    const u = 1 - this.next(), v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  floats(n: number, scale = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * scale;
    return a;
  }
  /** k distinct values of [0, n), in random order. */
  distinct(k: number, n: number): number[] {
    const picked = new Set<number>();
    const out: number[] = [];
    while (out.length < k) {
      const v = this.int(n);
      if (!picked.has(v)) {
        picked.add(v);
        out.push(v);
      }
    }
    return out;
  }
}

let streams = 0;
/** A fresh generator for one test, derived from the run's seed. */
export function rng(): Rng {
  return new Rng((SEED + Math.imul(++streams, 0x9e3779b1)) >>> 0);
}

/** Random FFI sources: L rows of k distinct inputs < I. */
export function randomFfiIdx(r: Rng, L: number, k: number, I: number): Uint32Array {
  const idx = new Uint32Array(L * k);
  for (let l = 0; l < L; l++) idx.set(r.distinct(k, I), l * k);
  return idx;
}

export interface Csr {
  rowPtr: Uint32Array;
  col: Uint32Array;
  L: number;
  I: number;
}

/** nnz distinct uniformly random cells of L x I, CSR by row, columns sorted within rows. */
export function randomCsr(r: Rng, L: number, I: number, nnz: number): Csr {
  const cells = r.distinct(nnz, L * I).sort((a, b) => a - b);
  const rowPtr = new Uint32Array(L + 1);
  const col = new Uint32Array(nnz);
  cells.forEach((c, e) => {
    rowPtr[Math.floor(c / I) + 1]++;
    col[e] = c % I;
  });
  for (let l = 0; l < L; l++) rowPtr[l + 1] += rowPtr[l];
  return { rowPtr, col, L, I };
}

/** ||a - ref|| / ||ref|| in float64. */
export function relErr(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  expect(a.length).toBe(ref.length);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

export function countNaN(a: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (Number.isNaN(a[i])) n++;
  return n;
}

/** Every element written (no poison left) and close to the reference. */
export function expectClose(a: ArrayLike<number>, ref: ArrayLike<number>, tol = 1e-5, what = 'output'): void {
  expect(countNaN(a), `${what}: NaN (unwritten) elements, seed ${SEED}`).toBe(0);
  expect(relErr(a, ref), `${what}: relative error, seed ${SEED}`).toBeLessThan(tol);
}

// ---------------------------------------------------------------------------
// float64 references (row-major, same contracts as the backend ops)

export function denseRef(x: ArrayLike<number>, W: ArrayLike<number>, b: ArrayLike<number>, B: number, I: number, O: number): Float64Array {
  const out = new Float64Array(B * O);
  for (let r = 0; r < B; r++)
    for (let o = 0; o < O; o++) {
      let s = b[o];
      for (let i = 0; i < I; i++) s += x[r * I + i] * W[o * I + i];
      out[r * O + o] = s;
    }
  return out;
}

/** Row-sparse forward: rows given by begin/end offsets (FFI: l*k; CSR: rowPtr). */
export function rowSparseRef(
  x: ArrayLike<number>, W: ArrayLike<number>, src: ArrayLike<number>, b: ArrayLike<number>,
  B: number, I: number, L: number, begin: (l: number) => number, end: (l: number) => number,
): Float64Array {
  const out = new Float64Array(B * L);
  for (let r = 0; r < B; r++)
    for (let l = 0; l < L; l++) {
      let s = b[l];
      for (let e = begin(l); e < end(l); e++) s += W[e] * x[r * I + src[e]];
      out[r * L + l] = s;
    }
  return out;
}

export function ffiRef(x: ArrayLike<number>, W: ArrayLike<number>, idx: ArrayLike<number>, b: ArrayLike<number>, B: number, I: number, L: number, k: number): Float64Array {
  return rowSparseRef(x, W, idx, b, B, I, L, (l) => l * k, (l) => (l + 1) * k);
}

export function csrRef(x: ArrayLike<number>, csr: Csr, W: ArrayLike<number>, b: ArrayLike<number>, B: number): Float64Array {
  return rowSparseRef(x, W, csr.col, b, B, csr.I, csr.L, (l) => csr.rowPtr[l], (l) => csr.rowPtr[l + 1]);
}

export type LossKindRef = 'squared-hinge' | 'bce';

/** Mean loss over B * normaliser of the labels [offset, offset + L) of each row's list. */
export function lossRef(
  scores: ArrayLike<number>, B: number, L: number, labels: number[][], kind: LossKindRef, offset = 0, normaliser = L,
): number {
  let total = 0;
  for (let r = 0; r < B; r++) {
    const pos = new Set(labels[r]);
    for (let l = 0; l < L; l++) {
      const s = scores[r * L + l];
      const y = pos.has(l + offset) ? 1 : 0;
      if (kind === 'squared-hinge') total += Math.max(0, 1 - (2 * y - 1) * s) ** 2;
      else total += Math.max(s, 0) - y * s + Math.log1p(Math.exp(-Math.abs(s)));
    }
  }
  return total / (B * normaliser);
}

/** Batch label lists as CSR (labelPtr, labelIds). */
export function labelCsr(labels: number[][]): { ptr: Uint32Array; ids: Uint32Array } {
  const ptr = new Uint32Array(labels.length + 1);
  labels.forEach((row, r) => (ptr[r + 1] = ptr[r] + row.length));
  const ids = new Uint32Array(ptr[labels.length]);
  labels.forEach((row, r) => ids.set(row, ptr[r]));
  return { ptr, ids };
}

/**
 * Central finite differences of f (float64) with respect to every entry of
 * `params` (modified in place and restored).
 */
export function finiteDiff(params: Float64Array, f: () => number, eps = 1e-4): Float64Array {
  const g = new Float64Array(params.length);
  for (let i = 0; i < params.length; i++) {
    const keep = params[i];
    params[i] = keep + eps;
    const up = f();
    params[i] = keep - eps;
    const down = f();
    params[i] = keep;
    g[i] = (up - down) / (2 * eps);
  }
  return g;
}

/** sum(out * R): the scalar whose gradient w.r.t. out is R (the dOut of a backward test). */
export function dotWith(out: ArrayLike<number>, R: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < out.length; i++) s += out[i] * R[i];
  return s;
}

export const f64 = (a: ArrayLike<number>): Float64Array => Float64Array.from(a);

/** Random label lists of global ids < Ltotal: some rows empty, some duplicates, some ids of other shards. */
export function randomLabels(r: Rng, B: number, Ltotal: number): number[][] {
  return Array.from({ length: B }, () => {
    const n = r.int(8);
    const row = Array.from({ length: n }, () => r.int(Ltotal));
    if (n > 0 && r.next() < 0.3) row.push(row[0]);
    return row;
  });
}
