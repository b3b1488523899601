/**
 * Test-set evaluation of a model: chunked top-5 per shard, merged, streamed
 * into XmcEvaluator. The metrics a run records (fractions in [0, 1]):
 * P@1, P@3, P@5, nDCG@3, nDCG@5, PSP@3, PSP@5 (propensities from the
 * training labels).
 */
import type { CsrMatrix, FeatureMatrix } from '../data/types.js';
import { XmcEvaluator } from '../metrics/evaluator.js';
import type { Backend } from '../native/backend.js';
import type { Model } from '../model/model.js';
import { predictBlocks } from '../model/predict.js';
import type { TopK } from '../topk/topk.js';

export const METRIC_NAMES = ['P@1', 'P@3', 'P@5', 'nDCG@3', 'nDCG@5', 'PSP@3', 'PSP@5'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type Metrics = Record<MetricName, number>;

/** The metric that drives the schedule, early stopping and "best". */
export const SELECTION_METRIC: MetricName = 'P@3';

export interface EvaluateOptions {
  batchRows: number;
  inversePropensities: Float64Array;
}

export async function evaluateModel(backend: Backend, model: Model, features: FeatureMatrix, labels: CsrMatrix, options: EvaluateOptions): Promise<Metrics> {
  return evaluateTopKBlocks(predictBlocks(backend, model, features, { k: 5, batchRows: options.batchRows }), labels, model.config.numLabels, options.inversePropensities);
}

/**
 * The metrics of top-5 lists given as blocks of consecutive test rows (from
 * row 0): what evaluateModel computes from a model in this process, and what
 * the distributed coordinator computes from its workers' merged lists.
 */
export async function evaluateTopKBlocks(blocks: AsyncIterable<TopK>, labels: CsrMatrix, numLabels: number, inversePropensities: Float64Array): Promise<Metrics> {
  const evaluator = new XmcEvaluator({ ks: [1, 3, 5], numLabels, inversePropensities });
  let row = 0;
  for await (const block of blocks) {
    evaluator.add(block, labels, row);
    row += block.rows;
  }
  const at = new Map(evaluator.result().atK.map((m) => [m.k, m]));
  const get = (k: number) => at.get(k)!;
  return {
    'P@1': get(1).precision,
    'P@3': get(3).precision,
    'P@5': get(5).precision,
    'nDCG@3': get(3).ndcg,
    'nDCG@5': get(5).ndcg,
    'PSP@3': get(3).psPrecision ?? NaN,
    'PSP@5': get(5).psPrecision ?? NaN,
  };
}
