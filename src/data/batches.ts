/**
 * Mini-batches: which rows go together (a seeded permutation per epoch) and
 * gathering those rows into compact arrays a trainer can hand to native code.
 *
 * Order: with `shuffle`, epoch e visits the rows in the order
 * randomPermutation(n, new Xoshiro128(deriveSeed(seed, e))), the same on
 * every machine; without it, in file order. Batches are consecutive slices
 * of that order, `batchSize` rows each; the last one is shorter unless
 * `dropLast` drops it.
 *
 * A gathered batch has B = indices.length rows:
 * - features: dense [B, F] row-major Float32Array, or CSR whose values are
 *   always present (1 for a binary input), rows in batch order;
 * - labels: binary CSR (values null), rows in batch order.
 */
import { OptionError, XmcError } from '../errors.js';
import { Xoshiro128, deriveSeed, randomPermutation } from './random.js';
import type { CsrMatrix, Dataset, DenseMatrix, FeatureMatrix } from './types.js';

export interface BatchOptions {
  batchSize: number;
  seed: number | bigint;
  epoch: number;
  /** default true */
  shuffle?: boolean;
  /** drop a last batch smaller than batchSize; default false */
  dropLast?: boolean;
}

export interface Batch {
  /** the dataset rows of this batch, in batch order */
  readonly indices: Uint32Array;
  readonly features: FeatureMatrix;
  readonly labels: CsrMatrix;
}

/** The order in which epoch `epoch` visits rows 0..n-1. */
export function epochOrder(n: number, seed: number | bigint, epoch: number, shuffle = true): Uint32Array {
  if (!shuffle) {
    const order = new Uint32Array(n);
    for (let i = 0; i < n; i++) order[i] = i;
    return order;
  }
  return randomPermutation(n, new Xoshiro128(deriveSeed(seed, epoch)));
}

/** Number of batches an epoch of n rows has. */
export function batchCount(n: number, batchSize: number, dropLast = false): number {
  return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
}

/** Row indices of each batch of one epoch (views of one order array). */
export function* batchIndices(n: number, options: BatchOptions): Generator<Uint32Array> {
  const { batchSize, seed, epoch, shuffle = true, dropLast = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new OptionError('batchSize', `must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(epoch) || epoch < 0) throw new OptionError('epoch', `must be a non-negative integer, got ${epoch}`);
  const order = epochOrder(n, seed, epoch, shuffle);
  const count = batchCount(n, batchSize, dropLast);
  for (let b = 0; b < count; b++) yield order.subarray(b * batchSize, Math.min(n, (b + 1) * batchSize));
}

/** Rows `rows` of a dense matrix, as a new [rows.length, cols] matrix. */
export function gatherDenseRows(m: DenseMatrix, rows: Uint32Array): DenseMatrix {
  const cols = m.cols;
  const data = new Float32Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) {
    const r = checkRow(rows[i], m.rows);
    data.set(m.data.subarray(r * cols, (r + 1) * cols), i * cols);
  }
  return { kind: 'dense', rows: rows.length, cols, data };
}

/**
 * Rows `rows` of a CSR matrix as a new CSR matrix. `values`: 'keep' copies
 * the input's (null stays null), 'materialize' gives 1 for a binary input.
 */
export function gatherCsrRows(m: CsrMatrix, rows: Uint32Array, values: 'keep' | 'materialize' = 'keep'): CsrMatrix {
  const indptr = new Uint32Array(rows.length + 1);
  let nnz = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = checkRow(rows[i], m.rows);
    nnz += m.indptr[r + 1] - m.indptr[r];
    indptr[i + 1] = nnz;
  }
  const indices = new Uint32Array(nnz);
  const withValues = m.values !== null || values === 'materialize';
  const outValues = withValues ? new Float32Array(nnz) : null;
  if (outValues && m.values === null) outValues.fill(1);
  for (let i = 0; i < rows.length; i++) {
    const a = m.indptr[rows[i]];
    const b = m.indptr[rows[i] + 1];
    indices.set(m.indices.subarray(a, b), indptr[i]);
    if (outValues && m.values) outValues.set(m.values.subarray(a, b), indptr[i]);
  }
  return { kind: 'csr', rows: rows.length, cols: m.cols, indptr, indices, values: outValues };
}

/** Features (values always present) and labels of the given rows. */
export function gatherBatch(dataset: Dataset, rows: Uint32Array): Batch {
  const f = dataset.features;
  return {
    indices: rows,
    features: f.kind === 'dense' ? gatherDenseRows(f, rows) : gatherCsrRows(f, rows, 'materialize'),
    labels: gatherCsrRows(dataset.labels, rows, 'keep'),
  };
}

/** The gathered batches of one epoch. */
export function* batches(dataset: Dataset, options: BatchOptions): Generator<Batch> {
  for (const rows of batchIndices(dataset.features.rows, options)) yield gatherBatch(dataset, rows);
}

function checkRow(r: number, rows: number): number {
  if (r >= rows) throw new XmcError(`batch row ${r} out of range: the matrix has ${rows} rows`);
  return r;
}
