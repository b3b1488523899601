/**
 * Streaming XMC evaluator: P@k, nDCG@k, PSP@k, PSnDCG@k, recall@k and
 * coverage@k from top-k lists, one batch of points at a time.
 *
 * Definitions follow pyxclib (xclib.evaluation.xc_metrics), the reference
 * implementation of the Extreme Classification Repository; docs/METRICS.md
 * writes each one out. For point i with true label set y_i, ranked
 * predictions p_i1, p_i2, ... and hit h_ij = [p_ij in y_i]:
 *
 *   P@k      = (1/N) sum_i (1/k) sum_{j<=k} h_ij
 *   nDCG@k   = (1/N) sum_i DCG_i@k / IDCG(min(k, |y_i|)),
 *              DCG_i@k = sum_{j<=k} h_ij / log2(j+1), IDCG(m) = sum_{j<=m} 1/log2(j+1)
 *   PSP@k    = sum_i sum_{j<=k} w(p_ij) h_ij  /  sum_i sum_{j<=min(k,|y_i|)} w*_ij
 *              (w*_i1 >= w*_i2 >= ... the inverse propensities of y_i, sorted)
 *   PSnDCG@k = sum_i PSDCG_i@k / IDCG(min(k,|y_i|))  /  sum_i PSDCG*_i@k / IDCG(min(k,|y_i|))
 *              PSDCG_i@k = sum_{j<=k} w(p_ij) h_ij / log2(j+1), PSDCG* the same for w*
 *   R@k      = (1/N) sum_i (sum_{j<=k} h_ij) / max(|y_i|, 1)
 *   Cov@k    = |{l : l hit within the top k of some point}| / |{l : l in some y_i}|
 *
 * N counts every point, those without labels included (they score 0 on
 * P, nDCG, R and add 0 to both sides of the PS ratios), as pyxclib does.
 * Every result is a fraction in [0, 1] (pyxclib prints them x100).
 *
 * Memory: O(numLabels + K) whatever the number of points: per-k sums, a mark
 * per label for the current point, the first-hit rank per label (coverage),
 * and a scratch buffer for one point's propensities.
 */
import type { CsrMatrix } from '../data/types.js';
import type { TopK } from '../topk/topk.js';

export interface EvaluatorOptions {
  /** cutoffs, e.g. [1, 3, 5]; positive integers */
  ks: readonly number[];
  /** labels are 0 .. numLabels-1 */
  numLabels: number;
  /** w_l = 1/p_l per label (see propensity.ts); without it PSP/PSnDCG are not computed */
  inversePropensities?: Float64Array | Float32Array;
}

/** The metrics at one cutoff k, as fractions in [0, 1]. */
export interface MetricsAtK {
  k: number;
  precision: number;
  ndcg: number;
  /** absent without inverse propensities; NaN when no point has a label */
  psPrecision?: number;
  /** absent without inverse propensities; NaN when no point has a label */
  psNdcg?: number;
  recall: number;
  /** NaN when no point has a label */
  coverage: number;
}

export interface EvaluationResult {
  /** points added */
  points: number;
  /** points with an empty true label set */
  pointsWithoutLabels: number;
  /** distinct labels among the true labels (the denominator of coverage) */
  labelsInTruth: number;
  numLabels: number;
  propensityScored: boolean;
  /** one entry per requested k, in increasing k */
  atK: MetricsAtK[];
}

const MARK_TRUE = 1; // label in the current point's true set
const MARK_HIT = 2;  // ... and already predicted (a repeated prediction is not a second hit)

export class XmcEvaluator {
  readonly ks: readonly number[];
  readonly numLabels: number;
  private readonly maxK: number;
  private readonly w: Float64Array | Float32Array | null;

  /** 1 / log2(j + 1) for rank j = 1..maxK, at index j-1 */
  private readonly discount: Float64Array;
  /** IDCG(m) = sum_{j<=m} 1/log2(j+1) for m = 0..maxK */
  private readonly idcg: Float64Array;

  // Per-cutoff sums over points, index k-1 for k = 1..maxK.
  /** hits within the top k, summed over points (exact in a double up to 2^53) */
  private readonly sumHits: Float64Array;
  private readonly sumNdcg: Float64Array;
  private readonly sumRecall: Float64Array;
  private readonly sumPs: Float64Array;
  private readonly sumPsIdeal: Float64Array;
  private readonly sumPsNdcg: Float64Array;
  private readonly sumPsNdcgIdeal: Float64Array;

  /** per-label mark of the current point's true labels (cleared after each point) */
  private readonly mark: Uint8Array;
  /** per label: 1 when it is a true label of some point */
  private readonly inTruth: Uint8Array;
  /** per label: best rank (1-based) at which it was a hit for some point; 0 = never */
  private readonly firstHitRank: Uint32Array;
  /** inverse propensities of one point's true labels, for the ideal ranking */
  private psScratch: Float64Array;

  private points = 0;
  private pointsWithoutLabels = 0;

  constructor(options: EvaluatorOptions) {
    const { ks, numLabels, inversePropensities } = options;
    if (!Number.isInteger(numLabels) || numLabels < 1) {
      throw new RangeError(`XmcEvaluator: numLabels must be a positive integer, got ${numLabels}`);
    }
    if (ks.length === 0) throw new RangeError('XmcEvaluator: ks is empty');
    for (const k of ks) {
      if (!Number.isInteger(k) || k < 1) throw new RangeError(`XmcEvaluator: k must be a positive integer, got ${k}`);
    }
    if (inversePropensities && inversePropensities.length !== numLabels) {
      throw new RangeError(`XmcEvaluator: ${inversePropensities.length} inverse propensities for ${numLabels} labels`);
    }
    this.ks = [...new Set(ks)].sort((a, b) => a - b);
    this.numLabels = numLabels;
    this.maxK = this.ks[this.ks.length - 1];
    this.w = inversePropensities ?? null;

    const K = this.maxK;
    this.discount = new Float64Array(K);
    this.idcg = new Float64Array(K + 1);
    for (let j = 1; j <= K; j++) {
      this.discount[j - 1] = 1 / Math.log2(j + 1);
      this.idcg[j] = this.idcg[j - 1] + this.discount[j - 1];
    }
    this.sumHits = new Float64Array(K);
    this.sumNdcg = new Float64Array(K);
    this.sumRecall = new Float64Array(K);
    this.sumPs = new Float64Array(K);
    this.sumPsIdeal = new Float64Array(K);
    this.sumPsNdcg = new Float64Array(K);
    this.sumPsNdcgIdeal = new Float64Array(K);
    this.mark = new Uint8Array(numLabels);
    this.inTruth = new Uint8Array(numLabels);
    this.firstHitRank = new Uint32Array(numLabels);
    this.psScratch = new Float64Array(Math.min(64, numLabels));
  }

  /**
   * Adds a batch: row r of `topk` is the ranked prediction for the point
   * whose true labels are row `truthRowOffset + r` of `truth`. Only the first
   * max(ks) slots of each row are used; -1 pads and lists shorter than k are
   * misses. Label ids must be < numLabels (RangeError otherwise).
   */
  add(topk: TopK, truth: CsrMatrix, truthRowOffset = 0): void {
    if (!Number.isInteger(truthRowOffset) || truthRowOffset < 0 || truthRowOffset + topk.rows > truth.rows) {
      throw new RangeError(`XmcEvaluator.add: rows ${truthRowOffset}..${truthRowOffset + topk.rows - 1} are outside the ${truth.rows} rows of the truth matrix`);
    }
    if (topk.labels.length !== topk.rows * topk.k) {
      throw new RangeError(`XmcEvaluator.add: topk.labels has ${topk.labels.length} entries, expected rows*k = ${topk.rows}*${topk.k}`);
    }
    const K = this.maxK;
    const used = Math.min(K, topk.k);
    const { mark, discount, idcg, w } = this;
    const { indptr, indices } = truth;
    const predLabels = topk.labels;
    const numLabels = this.numLabels;

    // Validate the whole batch first, so that a bad batch leaves the sums untouched.
    for (let e = indptr[truthRowOffset]; e < indptr[truthRowOffset + topk.rows]; e++) {
      if (indices[e] >= numLabels) {
        throw new RangeError(`XmcEvaluator.add: a true label ${indices[e]} in truth rows ${truthRowOffset}..${truthRowOffset + topk.rows - 1} is >= numLabels ${numLabels}`);
      }
    }
    for (let r = 0; r < topk.rows; r++) {
      for (let j = 0; j < used; j++) {
        const l = predLabels[r * topk.k + j];
        if (l >= numLabels) throw new RangeError(`XmcEvaluator.add: predicted label ${l} in row ${r} is >= numLabels ${numLabels}`);
      }
    }

    for (let r = 0; r < topk.rows; r++) {
      const t = truthRowOffset + r;
      const start = indptr[t];
      const end = indptr[t + 1];
      const nTrue = end - start;
      this.points++;

      // Mark the true labels of this point.
      for (let e = start; e < end; e++) {
        const l = indices[e];
        mark[l] = MARK_TRUE;
        this.inTruth[l] = 1;
      }

      // Walk the ranking once, accumulating per-rank prefix sums.
      const base = r * topk.k;
      let hits = 0;
      let dcg = 0;
      let ps = 0;
      let psDcg = 0;
      // 1 / IDCG(min(K, |y|)): the normaliser of every k >= |y|
      const idcgInvAll = nTrue > 0 ? 1 / idcg[Math.min(K, nTrue)] : 0;
      for (let j = 0; j < K; j++) {
        if (j < used) {
          const l = predLabels[base + j];
          if (l >= 0) {
            if (mark[l] === MARK_TRUE) {
              mark[l] = MARK_HIT;
              hits++;
              dcg += discount[j];
              const rank = this.firstHitRank[l];
              if (rank === 0 || rank > j + 1) this.firstHitRank[l] = j + 1;
              if (w) {
                ps += w[l];
                psDcg += w[l] * discount[j];
              }
            }
          }
        }
        if (nTrue > 0) {
          const k = j + 1;
          this.sumHits[j] += hits;
          // IDCG(min(k, |y|)): for k >= |y| it stays IDCG(|y|).
          const idcgInv = k < nTrue ? 1 / idcg[k] : idcgInvAll;
          this.sumNdcg[j] += dcg * idcgInv;
          this.sumRecall[j] += hits / nTrue;
          if (w) {
            this.sumPs[j] += ps;
            this.sumPsNdcg[j] += psDcg * idcgInv;
          }
        }
      }

      if (nTrue === 0) {
        this.pointsWithoutLabels++;
        continue;
      }
      if (w) this.addIdealPropensityRanking(indices, start, end, K, idcgInvAll);
      for (let e = start; e < end; e++) mark[indices[e]] = 0;
    }
  }

  /**
   * The best achievable propensity-scored values of one point: its true
   * labels ranked by inverse propensity, highest first (pyxclib's ps_indices).
   */
  private addIdealPropensityRanking(indices: Uint32Array, start: number, end: number, K: number,
    idcgInvAll: number): void {
    const w = this.w!;
    const n = end - start;
    if (this.psScratch.length < n) this.psScratch = new Float64Array(Math.max(n, 2 * this.psScratch.length));
    const scratch = this.psScratch.subarray(0, n);
    for (let e = 0; e < n; e++) scratch[e] = w[indices[start + e]];
    scratch.sort(); // ascending; read from the end for the largest
    let ideal = 0;
    let idealDcg = 0;
    for (let j = 0; j < K; j++) {
      if (j < n) {
        const v = scratch[n - 1 - j];
        ideal += v;
        idealDcg += v * this.discount[j];
      }
      const k = j + 1;
      const idcgInv = k < n ? 1 / this.idcg[k] : idcgInvAll;
      this.sumPsIdeal[j] += ideal;
      this.sumPsNdcgIdeal[j] += idealDcg * idcgInv;
    }
  }

  /** The metrics of every point added so far, as fractions. */
  result(): EvaluationResult {
    const N = this.points;
    let labelsInTruth = 0;
    const covered = new Float64Array(this.maxK + 1); // covered[k]: labels whose first hit is at rank k
    for (let l = 0; l < this.numLabels; l++) {
      if (this.inTruth[l]) {
        labelsInTruth++;
        const rank = this.firstHitRank[l];
        if (rank > 0) covered[rank]++;
      }
    }
    for (let k = 1; k <= this.maxK; k++) covered[k] += covered[k - 1];
    const mean = (sum: number) => (N > 0 ? sum / N : NaN);
    const atK: MetricsAtK[] = this.ks.map((k) => {
      const j = k - 1;
      const m: MetricsAtK = {
        k,
        precision: mean(this.sumHits[j] / k),
        ndcg: mean(this.sumNdcg[j]),
        recall: mean(this.sumRecall[j]),
        coverage: labelsInTruth > 0 ? covered[k] / labelsInTruth : NaN,
      };
      if (this.w) {
        m.psPrecision = this.sumPsIdeal[j] > 0 ? this.sumPs[j] / this.sumPsIdeal[j] : NaN;
        m.psNdcg = this.sumPsNdcgIdeal[j] > 0 ? this.sumPsNdcg[j] / this.sumPsNdcgIdeal[j] : NaN;
      }
      return m;
    });
    return {
      points: N,
      pointsWithoutLabels: this.pointsWithoutLabels,
      labelsInTruth,
      numLabels: this.numLabels,
      propensityScored: this.w !== null,
      atK,
    };
  }
}
