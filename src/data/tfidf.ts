/**
 * TF-IDF weighting of sparse (bag-of-words) features.
 *
 * Fit on the training split only, apply to every split:
 *   df_j  = number of training rows with a nonzero value in column j
 *   idf_j = ln((1 + N) / (1 + df_j)) + 1        (N = training rows)
 *   x'_ij = tf_ij * idf_j                          (tf = the stored value)
 * This is the "smooth" idf of scikit-learn's TfidfTransformer: the +1 inside
 * acts as one extra document holding every term (no division by zero for a
 * column never seen in training), the +1 outside keeps such common terms from
 * being zeroed out. A binary matrix has tf = 1. Normalise rows afterwards
 * (l2NormalizeRows) for the usual tf-idf + L2 pipeline.
 */
import { XmcError } from '../errors.js';
import type { CsrMatrix } from './types.js';

/** idf of every column of `train` (length train.cols). */
export function fitIdf(train: CsrMatrix): Float32Array {
  const df = new Float64Array(train.cols);
  const nnz = train.indptr[train.rows];
  for (let k = 0; k < nnz; k++) {
    if (train.values === null || train.values[k] !== 0) df[train.indices[k]]++;
  }
  const idf = new Float32Array(train.cols);
  const n = train.rows;
  for (let j = 0; j < train.cols; j++) idf[j] = Math.log((1 + n) / (1 + df[j])) + 1;
  return idf;
}

/** A new matrix with every stored value multiplied by its column's idf (structure shared). */
export function applyIdf(m: CsrMatrix, idf: Float32Array): CsrMatrix {
  if (idf.length !== m.cols) {
    throw new XmcError(`tf-idf: the idf has ${idf.length} columns but the matrix has ${m.cols}`);
  }
  const nnz = m.indptr[m.rows];
  const values = new Float32Array(nnz);
  for (let k = 0; k < nnz; k++) values[k] = (m.values === null ? 1 : m.values[k]) * idf[m.indices[k]];
  return { kind: 'csr', rows: m.rows, cols: m.cols, indptr: m.indptr, indices: m.indices, values };
}
