/**
 * L2 row normalisation: every row x becomes x / ||x||_2, the norm summed in
 * double precision. Rows that are all zero stay zero (no division by zero,
 * no NaN). Works on dense and CSR features; returns a new matrix unless
 * `inPlace` is set. The CSR structure (indptr, indices) is shared, not copied.
 */
import type { CsrMatrix, DenseMatrix, FeatureMatrix } from './types.js';

export interface NormalizeOptions {
  /** overwrite the input's values instead of allocating new ones */
  inPlace?: boolean;
}

export function l2NormalizeRows<M extends FeatureMatrix>(m: M, options: NormalizeOptions = {}): M {
  return (m.kind === 'dense' ? normalizeDense(m, options) : normalizeCsr(m, options)) as M;
}

function normalizeDense(m: DenseMatrix, { inPlace = false }: NormalizeOptions): DenseMatrix {
  const out = inPlace ? m.data : new Float32Array(m.data);
  for (let r = 0; r < m.rows; r++) scaleToUnit(out, r * m.cols, (r + 1) * m.cols);
  return inPlace ? m : { kind: 'dense', rows: m.rows, cols: m.cols, data: out };
}

function normalizeCsr(m: CsrMatrix, { inPlace = false }: NormalizeOptions): CsrMatrix {
  // A binary matrix's implicit values are 1: materialise them, 1/sqrt(nnz).
  let values: Float32Array;
  if (m.values === null) {
    values = new Float32Array(m.indices.length).fill(1);
  } else {
    values = inPlace ? m.values : new Float32Array(m.values);
  }
  for (let r = 0; r < m.rows; r++) scaleToUnit(values, m.indptr[r], m.indptr[r + 1]);
  if (inPlace && m.values !== null) return m;
  return { kind: 'csr', rows: m.rows, cols: m.cols, indptr: m.indptr, indices: m.indices, values };
}

function scaleToUnit(v: Float32Array, start: number, end: number): void {
  let sum = 0;
  for (let i = start; i < end; i++) sum += v[i] * v[i];
  if (sum === 0) return;
  const scale = 1 / Math.sqrt(sum);
  for (let i = start; i < end; i++) v[i] *= scale;
}
