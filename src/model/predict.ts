/**
 * Top-k predictions of a model for every row of a feature matrix, in row
 * order, as TopK blocks of at most `batchRows` rows. Each block comes from the
 * backend's chunked layer top-k ops merged over shards: no [N, L] (or even
 * [B, L]) score matrix is ever built. The next block's ops are enqueued
 * before the previous block is awaited, so the host-side densifying overlaps
 * the backend's work.
 */
import type { FeatureMatrix } from '../data/types.js';
import type { Backend } from '../native/backend.js';
import type { TopK } from '../topk/topk.js';
import { InputWriter, rowRange } from './inputs.js';
import type { Model } from './model.js';

export interface PredictOptions {
  k: number;
  batchRows: number;
}

export async function* predictBlocks(backend: Backend, model: Model, features: FeatureMatrix, options: PredictOptions): AsyncGenerator<TopK> {
  const { k, batchRows } = options;
  const writer = new InputWriter(backend, model.config.inputDim);
  try {
    let previous: Promise<TopK> | null = null;
    for (let start = 0; start < features.rows; start += batchRows) {
      const x = writer.write(features, rowRange(start, Math.min(features.rows, start + batchRows)));
      const next = model.topK(x, k);
      next.catch(() => undefined); // awaited below; keeps an early failure from being reported as unhandled
      if (previous) yield await previous;
      previous = next;
    }
    if (previous) yield await previous;
  } finally {
    writer.dispose();
  }
}
