/**
 * In-memory data layout shared by readers, the trainer and the workers.
 *
 * - Dense features: row-major Float32Array, `rows x cols`.
 * - Sparse features (bag-of-words) and labels: CSR. Row r's entries are
 *   `indices[indptr[r] .. indptr[r+1])` with matching `values` (labels have
 *   no values: every stored entry is a positive label). Column ids within a
 *   row are strictly increasing after `sortCsrRows` / every reader.
 * indptr is a Uint32Array: one matrix holds at most 2^32 - 1 entries, and
 * builders throw a clear error past that.
 */

export interface DenseMatrix {
  readonly kind: 'dense';
  readonly rows: number;
  readonly cols: number;
  /** row-major, length rows * cols */
  readonly data: Float32Array;
}

export interface CsrMatrix {
  readonly kind: 'csr';
  readonly rows: number;
  readonly cols: number;
  /** length rows + 1, indptr[0] = 0, non-decreasing */
  readonly indptr: Uint32Array;
  /** column ids, length indptr[rows] */
  readonly indices: Uint32Array;
  /** values, length indptr[rows]; null for a binary (label) matrix */
  readonly values: Float32Array | null;
}

export type FeatureMatrix = DenseMatrix | CsrMatrix;

/** A labelled data set: one row of `features` and one row of `labels` per point. */
export interface Dataset {
  readonly features: FeatureMatrix;
  /** binary CSR, cols = number of labels */
  readonly labels: CsrMatrix;
  /** where it came from, for messages */
  readonly source: string;
}
