/**
 * Model inputs: feature rows to the backend's dense [B, F] float32 input, and
 * label rows to the batch CSR the loss takes.
 *
 * Features are L2-normalised per row once, when a data set is prepared
 * (`prepareFeatures`): dense embeddings as they are otherwise, sparse
 * bag-of-words rows densified per batch into [B, F] float32. Densifying costs
 * B * F floats per batch, fine up to ~100k features (a batch of 32 rows of
 * 100k features is 12.8 MB); beyond that a sparse input layer would be
 * needed.
 */
import type { CsrMatrix, FeatureMatrix } from '../data/types.js';
import { l2NormalizeRows } from '../data/normalize.js';
import { DataFormatError } from '../errors.js';
import type { Backend, FloatTensor, IndexTensor } from '../native/backend.js';

/**
 * The features the model sees: rows L2-normalised (a copy; the input is not
 * changed). `inputDim` is the model's F: a dense matrix must have exactly F
 * columns, a sparse one at most F (missing trailing features are zeros).
 */
export function prepareFeatures(features: FeatureMatrix, inputDim: number, source: string): FeatureMatrix {
  if (features.kind === 'dense' ? features.cols !== inputDim : features.cols > inputDim) {
    throw new DataFormatError({ file: source },
      `has ${features.cols} features per row, the model takes ${inputDim}${features.kind === 'csr' ? ' (at most)' : ''}`);
  }
  return l2NormalizeRows(features);
}

/** The rows start..end-1 as an index array. */
export function rowRange(start: number, end: number): Uint32Array {
  const rows = new Uint32Array(end - start);
  for (let i = 0; i < rows.length; i++) rows[i] = start + i;
  return rows;
}

/** Writes batches of feature rows into cached backend tensors, one per batch size. */
export class InputWriter {
  private readonly tensors = new Map<number, { tensor: FloatTensor; host: Float32Array }>();

  constructor(private readonly backend: Backend, readonly inputDim: number) {}

  /**
   * The [rows.length, F] input tensor holding `rows` of `features`. The data
   * lands in queue order (see Tensor.write), so the tensor may be rewritten
   * for the next batch before the ops of this one have run.
   */
  write(features: FeatureMatrix, rows: Uint32Array): FloatTensor {
    const B = rows.length;
    const F = this.inputDim;
    let entry = this.tensors.get(B);
    if (!entry) {
      this.dispose(); // one batch size at a time (queued ops keep their own references)
      entry = { tensor: this.backend.tensor('float32', [B, F]), host: new Float32Array(B * F) };
      this.tensors.set(B, entry);
    }
    const host = entry.host;
    if (features.kind === 'dense') {
      for (let i = 0; i < B; i++) host.set(features.data.subarray(rows[i] * F, (rows[i] + 1) * F), i * F);
    } else {
      host.fill(0);
      const { indptr, indices, values } = features;
      for (let i = 0; i < B; i++) {
        const base = i * F;
        for (let e = indptr[rows[i]]; e < indptr[rows[i] + 1]; e++) host[base + indices[e]] = values ? values[e] : 1;
      }
    }
    entry.tensor.write(host);
    return entry.tensor;
  }

  dispose(): void {
    for (const { tensor } of this.tensors.values()) tensor.dispose();
    this.tensors.clear();
  }
}

/** The batch CSR of label rows `rows` (global label ids) as two new uint32 tensors. */
export function labelTensors(backend: Backend, labels: CsrMatrix, rows: Uint32Array): { ptr: IndexTensor; ids: IndexTensor } {
  const ptr = new Uint32Array(rows.length + 1);
  let nnz = 0;
  for (let i = 0; i < rows.length; i++) {
    nnz += labels.indptr[rows[i] + 1] - labels.indptr[rows[i]];
    ptr[i + 1] = nnz;
  }
  // An empty batch label list still needs a tensor: one unused id.
  const ids = new Uint32Array(Math.max(nnz, 1));
  for (let i = 0; i < rows.length; i++) ids.set(labels.indices.subarray(labels.indptr[rows[i]], labels.indptr[rows[i] + 1]), ptr[i]);
  return { ptr: backend.fromArray(ptr), ids: backend.fromArray(ids) };
}
