import { describe, expect, it } from 'vitest';
import { Rng } from './ops-helpers.js';
import type { CsrMatrix } from '../src/data/types.js';
import { XmcEvaluator, type EvaluationResult } from '../src/metrics/evaluator.js';
import { createTopK, type TopK } from '../src/topk/topk.js';

function csr(cols: number, rows: number[][]): CsrMatrix {
  const indptr = new Uint32Array(rows.length + 1);
  rows.forEach((r, i) => { indptr[i + 1] = indptr[i] + r.length; });
  return { kind: 'csr', rows: rows.length, cols, indptr, indices: Uint32Array.from(rows.flat()), values: null };
}

function topk(k: number, rows: number[][]): TopK {
  const t = createTopK(rows.length, k);
  rows.forEach((r, i) => r.forEach((label, j) => {
    t.labels[i * k + j] = label;
    t.scores[i * k + j] = label < 0 ? -Infinity : 10 - j; // descending; the evaluator reads ranks only
  }));
  return t;
}

function at(result: EvaluationResult, k: number) {
  const m = result.atK.find((x) => x.k === k);
  if (!m) throw new Error(`no k=${k}`);
  return m;
}

// ---------------------------------------------------------------------------
// Hand example: 6 labels (0..5), 4 points, k = 1, 3, 5.
//   point 0: y = {0, 2}     ranking 2 1 0 3 4    hits at ranks 1 (label 2), 3 (label 0)
//   point 1: y = {3, 4, 5}  ranking 5 0 2 4 -1   hits at ranks 1 (label 5), 4 (label 4); 4 predictions only
//   point 2: y = {}         ranking 0 1 2        no labels: scores 0, counts in N
//   point 3: y = {3}        ranking 1            a single prediction, a miss
// Label 1 is in no true set: coverage's denominator is the 5 labels {0,2,3,4,5}.
// Discounts d_j = 1/log2(j+1): d1 = 1, d2 = 0.63093, d3 = 0.5, d4 = 0.43068, d5 = 0.38685.
// ---------------------------------------------------------------------------
const d = (j: number) => 1 / Math.log2(j + 1);
const truth = csr(6, [[0, 2], [3, 4, 5], [], [3]]);
const ranking = topk(5, [[2, 1, 0, 3, 4], [5, 0, 2, 4], [0, 1, 2], [1]]);
// Hand-picked inverse propensities per label 0..5.
const w = new Float64Array([2, 1, 3, 4, 5, 6]);

describe('metrics - evaluator on a hand-worked example', () => {
  const result = (() => {
    const ev = new XmcEvaluator({ ks: [5, 1, 3], numLabels: 6, inversePropensities: w });
    ev.add(ranking, truth);
    return ev.result();
  })();

  it('counts points, points without labels and labels present in the truth', () => {
    expect(result.points).toBe(4);
    expect(result.pointsWithoutLabels).toBe(1);
    expect(result.labelsInTruth).toBe(5);
    expect(result.atK.map((m) => m.k)).toEqual([1, 3, 5]);
  });

  it('precision@k = (1/N) sum_i hits_i@k / k', () => {
    // hits@1 = 1,1,0,0   hits@3 = 2,1,0,0   hits@5 = 2,2,0,0
    expect(at(result, 1).precision).toBeCloseTo(2 / (1 * 4), 12); // 0.5
    expect(at(result, 3).precision).toBeCloseTo(3 / (3 * 4), 12); // 0.25
    expect(at(result, 5).precision).toBeCloseTo(4 / (5 * 4), 12); // 0.2
  });

  it('nDCG@k = (1/N) sum_i DCG_i@k / IDCG(min(k, |y_i|))', () => {
    // point 0 (|y|=2): DCG@1 = 1, DCG@3 = DCG@5 = d1 + d3 = 1.5; IDCG(1) = 1, IDCG(2) = 1 + d2
    // point 1 (|y|=3): DCG@1 = DCG@3 = 1, DCG@5 = 1 + d4;         IDCG(3) = 1 + d2 + d3
    expect(at(result, 1).ndcg).toBeCloseTo((1 + 1) / 4, 12);
    expect(at(result, 3).ndcg).toBeCloseTo((1.5 / (1 + d(2)) + 1 / (1 + d(2) + d(3))) / 4, 12); // 0.34725
    expect(at(result, 5).ndcg).toBeCloseTo((1.5 / (1 + d(2)) + (1 + d(4)) / (1 + d(2) + d(3))) / 4, 12);
    expect(at(result, 3).ndcg).toBeCloseTo(0.347250, 5); // (0.919721 + 0.469279) / 4
  });

  it('recall@k = (1/N) sum_i hits_i@k / |y_i|, a point without labels scoring 0', () => {
    expect(at(result, 1).recall).toBeCloseTo((1 / 2 + 1 / 3) / 4, 12); // 5/24
    expect(at(result, 3).recall).toBeCloseTo((2 / 2 + 1 / 3) / 4, 12); // 1/3
    expect(at(result, 5).recall).toBeCloseTo((2 / 2 + 2 / 3) / 4, 12); // 5/12
  });

  it('coverage@k = labels hit within the top k of some point / labels present in the truth', () => {
    // hits: label 2 @1, label 5 @1, label 0 @3, label 4 @4
    expect(at(result, 1).coverage).toBeCloseTo(2 / 5, 12);
    expect(at(result, 3).coverage).toBeCloseTo(3 / 5, 12);
    expect(at(result, 5).coverage).toBeCloseTo(4 / 5, 12);
  });

  it('PSP@k = sum of w over hits / sum of the best achievable (true labels by w, top min(k,|y|))', () => {
    // achieved: point 0: w2 = 3 @1, + w0 = 2 @3 -> 3, 5, 5;  point 1: w5 = 6 @1, + w4 = 5 @4 -> 6, 6, 11
    //   sums: @1 9, @3 11, @5 16
    // ideal: point 0 ws {3,2} -> 3, 5, 5; point 1 ws {6,5,4} -> 6, 15, 15; point 3 ws {4} -> 4, 4, 4
    //   sums: @1 13, @3 24, @5 24
    expect(at(result, 1).psPrecision).toBeCloseTo(9 / 13, 12);
    expect(at(result, 3).psPrecision).toBeCloseTo(11 / 24, 12);
    expect(at(result, 5).psPrecision).toBeCloseTo(16 / 24, 12);
  });

  it('PSnDCG@k = sum_i PSDCG_i@k / IDCG(min(k,|y_i|)) over the same for the ideal ranking', () => {
    // achieved / IDCG:  point 0: @1 3/1, @3 = @5 (3 d1 + 2 d3) / (1 + d2) = 4 / (1 + d2)
    //                   point 1: @1 6/1, @3 6 / (1 + d2 + d3), @5 (6 + 5 d4) / (1 + d2 + d3)
    // ideal / IDCG:     point 0: @1 3, @3 = @5 (3 + 2 d2) / (1 + d2)
    //                   point 1: @1 6, @3 = @5 (6 + 5 d2 + 4 d3) / (1 + d2 + d3)
    //                   point 3: 4 / IDCG(1) = 4 at every k
    const i2 = 1 + d(2), i3 = 1 + d(2) + d(3);
    const ideal3 = (3 + 2 * d(2)) / i2 + (6 + 5 * d(2) + 4 * d(3)) / i3 + 4;
    expect(at(result, 1).psNdcg).toBeCloseTo(9 / 13, 12);
    expect(at(result, 3).psNdcg).toBeCloseTo((4 / i2 + 6 / i3) / ideal3, 12);
    expect(at(result, 5).psNdcg).toBeCloseTo((4 / i2 + (6 + 5 * d(4)) / i3) / ideal3, 12);
  });

  it('omits PSP and PSnDCG without inverse propensities', () => {
    const ev = new XmcEvaluator({ ks: [1, 3], numLabels: 6 });
    ev.add(ranking, truth);
    const r = ev.result();
    expect(r.propensityScored).toBe(false);
    expect(r.atK[0].psPrecision).toBeUndefined();
    expect(r.atK[0].psNdcg).toBeUndefined();
    expect(r.atK[0].precision).toBeCloseTo(0.5, 12);
  });
});

describe('metrics - evaluator streaming and edge cases', () => {
  it('gives the same result for one batch, row-by-row batches, and a TopK shorter than max k', () => {
    const whole = new XmcEvaluator({ ks: [1, 3, 5], numLabels: 6, inversePropensities: w });
    whole.add(ranking, truth);
    const rowwise = new XmcEvaluator({ ks: [1, 3, 5], numLabels: 6, inversePropensities: w });
    const rows = [[2, 1, 0, 3, 4], [5, 0, 2, 4], [0, 1, 2], [1]];
    rows.forEach((r, i) => rowwise.add(topk(5, [r]), truth, i));
    expect(rowwise.result()).toEqual(whole.result());

    // A TopK of width 2 evaluated at k = 5: the missing slots are misses, as if padded.
    const short = new XmcEvaluator({ ks: [1, 3, 5], numLabels: 6 });
    short.add(topk(2, [[2, 1], [5, 0], [0, 1], [1]]), truth);
    const padded = new XmcEvaluator({ ks: [1, 3, 5], numLabels: 6 });
    padded.add(topk(5, [[2, 1], [5, 0], [0, 1], [1]]), truth);
    expect(short.result()).toEqual(padded.result());
    // hits@5 = 1, 1, 0, 0  ->  P@5 = 2 / 20
    expect(at(short.result(), 5).precision).toBeCloseTo(2 / 20, 12);
  });

  it('only points without labels: P, nDCG, R are 0; coverage and PS ratios are NaN (0/0)', () => {
    const ev = new XmcEvaluator({ ks: [1], numLabels: 3, inversePropensities: new Float64Array(3).fill(2) });
    ev.add(topk(1, [[0], [1]]), csr(3, [[], []]));
    const m = ev.result().atK[0];
    expect(m.precision).toBe(0);
    expect(m.ndcg).toBe(0);
    expect(m.recall).toBe(0);
    expect(m.coverage).toBeNaN();
    expect(m.psPrecision).toBeNaN();
    expect(m.psNdcg).toBeNaN();
  });

  it('a label predicted twice in one row is one hit', () => {
    const ev = new XmcEvaluator({ ks: [2], numLabels: 3 });
    ev.add(topk(2, [[1, 1]]), csr(3, [[1, 2]]));
    expect(ev.result().atK[0].precision).toBeCloseTo(1 / 2, 12);
  });

  it('rejects label ids >= numLabels and batches outside the truth matrix, leaving its sums untouched', () => {
    const ev = new XmcEvaluator({ ks: [1], numLabels: 3 });
    expect(() => ev.add(topk(1, [[3]]), csr(3, [[0]]))).toThrow(/predicted label 3 in row 0 is >= numLabels 3/);
    expect(() => ev.add(topk(1, [[0]]), csr(4, [[3]]))).toThrow(/a true label 3 in truth rows 0..0 is >= numLabels 3/);
    expect(() => ev.add(topk(1, [[0], [1]]), csr(3, [[0]]))).toThrow(/outside the 1 rows/);
    // a rejected batch leaves no trace
    expect(ev.result().points).toBe(0);
    ev.add(topk(1, [[0]]), csr(3, [[0]]));
    expect(ev.result().atK[0].precision).toBe(1);
    expect(() => new XmcEvaluator({ ks: [0], numLabels: 3 })).toThrow(/positive integer/);
    expect(() => new XmcEvaluator({ ks: [1], numLabels: 3, inversePropensities: new Float64Array(2) })).toThrow(/2 inverse propensities for 3 labels/);
  });
});

// ---------------------------------------------------------------------------
// Random cross-check against a direct, non-streaming transcription of the
// pyxclib formulas (dense per-point flags; ratios of means for PS metrics).
// ---------------------------------------------------------------------------
/** A fixed-seed stream of [0, 1) numbers (the ops tests' mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function referenceMetrics(rankings: number[][], trueSets: number[][], wts: Float64Array, k: number) {
  const N = rankings.length;
  const dcgOf = (flags: number[]) => flags.reduce((s, f, j) => s + f / Math.log2(j + 2), 0);
  const idcg = (m: number) => dcgOf(new Array(m).fill(1));
  let p = 0, n = 0, r = 0, ps = 0, psIdeal = 0, psn = 0, psnIdeal = 0;
  const covered = new Set<number>();
  const present = new Set(trueSets.flat());
  for (let i = 0; i < N; i++) {
    const y = new Set(trueSets[i]);
    const top = rankings[i].slice(0, k);
    const flags: number[] = Array.from({ length: k }, (_, j) => (top[j] !== undefined && y.has(top[j]) ? 1 : 0));
    for (const l of top) if (y.has(l)) covered.add(l);
    const hits = flags.reduce((a, b) => a + b, 0);
    p += hits / k;
    r += hits / Math.max(y.size, 1);
    const norm = y.size > 0 ? idcg(Math.min(k, y.size)) : 1;
    n += dcgOf(flags) / norm;
    const wflags = flags.map((f, j) => (f ? wts[top[j]] : 0));
    const best = [...y].map((l) => wts[l]).sort((a, b) => b - a).slice(0, k);
    ps += wflags.reduce((a, b) => a + b, 0);
    psIdeal += best.reduce((a, b) => a + b, 0);
    psn += dcgOf(wflags) / norm;
    psnIdeal += dcgOf(best) / norm;
  }
  return {
    precision: p / N, ndcg: n / N, recall: r / N,
    psPrecision: ps / psIdeal, psNdcg: psn / psnIdeal,
    coverage: covered.size / present.size,
  };
}

describe('metrics - evaluator against a direct transcription of the formulas', () => {
  it('matches on random data (varying |y|, short lists, empty points, batches)', () => {
    const rand = rng(123);
    const L = 40, N = 300, K = 7;
    const wts = new Float64Array(L).map(() => 1 + 5 * rand());
    const trueSets: number[][] = [];
    const rankings: number[][] = [];
    for (let i = 0; i < N; i++) {
      const ny = rand() < 0.1 ? 0 : 1 + Math.floor(rand() * 10);
      const y = new Set<number>();
      while (y.size < ny) y.add(Math.floor(rand() * L));
      trueSets.push([...y].sort((a, b) => a - b));
      const np = Math.floor(rand() * (K + 1)); // 0..K predictions
      const pred = new Set<number>();
      while (pred.size < np) pred.add(rand() < 0.5 && ny > 0 ? [...y][Math.floor(rand() * ny)] : Math.floor(rand() * L));
      rankings.push([...pred]);
    }
    const ks = [1, 2, 3, 5, 7];
    const ev = new XmcEvaluator({ ks, numLabels: L, inversePropensities: wts });
    const truthAll = csr(L, trueSets);
    for (let start = 0; start < N; start += 64) {
      const rows = rankings.slice(start, start + 64);
      ev.add(topk(K, rows), truthAll, start);
    }
    const result = ev.result();
    for (const k of ks) {
      const ref = referenceMetrics(rankings, trueSets, wts, k);
      const m = at(result, k);
      expect(m.precision).toBeCloseTo(ref.precision, 10);
      expect(m.ndcg).toBeCloseTo(ref.ndcg, 10);
      expect(m.recall).toBeCloseTo(ref.recall, 10);
      expect(m.psPrecision!).toBeCloseTo(ref.psPrecision, 10);
      expect(m.psNdcg!).toBeCloseTo(ref.psNdcg, 10);
      expect(m.coverage).toBeCloseTo(ref.coverage, 10);
    }
  });
});
