import { describe, expect, it } from 'vitest';
import { Rng } from './ops-helpers.js';
import { createTopK, mergeTopK, ranksBefore, rowLength, topKOfScores, type TopK } from '../src/topk/topk.js';

/** A fixed-seed stream of [0, 1) numbers (the ops tests' mulberry32), so failures reproduce. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

/** Scores from a tiny value set, so ties are frequent; some NaN and infinities. */
function randomScores(rand: () => number, n: number): Float32Array {
  const s = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rand();
    s[i] = u < 0.05 ? NaN : u < 0.08 ? -Infinity : u < 0.1 ? Infinity : Math.floor(rand() * 6) / 4 - 0.5;
  }
  return s;
}

/** Brute force: sort every (label, score) of a row by the documented order. */
function bruteTopK(scores: Float32Array, rows: number, cols: number, k: number): TopK {
  const out = createTopK(rows, k);
  for (let r = 0; r < rows; r++) {
    const entries = Array.from({ length: cols }, (_, c) => ({ label: c, score: scores[r * cols + c] }));
    entries.sort((a, b) => {
      const an = Number.isNaN(a.score), bn = Number.isNaN(b.score);
      if (an !== bn) return an ? 1 : -1;
      if (!an && a.score !== b.score) return b.score - a.score;
      return a.label - b.label;
    });
    for (let j = 0; j < Math.min(k, cols); j++) {
      out.labels[r * k + j] = entries[j].label;
      out.scores[r * k + j] = entries[j].score;
    }
  }
  return out;
}

/** Columns [from, to) of a row-major block. */
function sliceColumns(scores: Float32Array, rows: number, cols: number, from: number, to: number): Float32Array {
  const w = to - from;
  const out = new Float32Array(rows * w);
  for (let r = 0; r < rows; r++) out.set(scores.subarray(r * cols + from, r * cols + to), r * w);
  return out;
}

function expectSameTopK(actual: TopK, expected: TopK): void {
  expect(actual.rows).toBe(expected.rows);
  expect(actual.k).toBe(expected.k);
  expect(Array.from(actual.labels)).toEqual(Array.from(expected.labels));
  // Object.is semantics: NaN equals NaN, bit patterns of pads match.
  expect(Array.from(actual.scores)).toEqual(Array.from(expected.scores));
}

describe('topk - ranking order', () => {
  it('ranks higher scores first, ties by smaller label, NaN after every number', () => {
    expect(ranksBefore(2, 9, 1, 0)).toBe(true);
    expect(ranksBefore(1, 0, 2, 9)).toBe(false);
    expect(ranksBefore(1, 3, 1, 4)).toBe(true);
    expect(ranksBefore(1, 4, 1, 3)).toBe(false);
    expect(ranksBefore(-Infinity, 7, NaN, 0)).toBe(true);
    expect(ranksBefore(NaN, 0, -Infinity, 7)).toBe(false);
    expect(ranksBefore(NaN, 2, NaN, 5)).toBe(true);
  });

  it('topKOfScores of a hand example: ties, NaN, padding when k > cols', () => {
    // row 0: scores by label 0..3 = [0.5, 0.9, 0.5, NaN] -> 1 (0.9), 0 (0.5, smaller id), 2 (0.5), 3 (NaN), pad
    // row 1: [NaN, -1, -Inf, -1] -> 1, 3 (tie -1: smaller id first), 2 (-Inf), 0 (NaN), pad
    const scores = new Float32Array([0.5, 0.9, 0.5, NaN, NaN, -1, -Infinity, -1]);
    const t = topKOfScores(scores, 2, 4, 5, 10);
    expect(Array.from(t.labels)).toEqual([11, 10, 12, 13, -1, 11, 13, 12, 10, -1]);
    expect(rowLength(t, 0)).toBe(4);
    expect(t.scores[4]).toBe(-Infinity);
  });

  it('topKOfScores equals a brute-force sort on random blocks', () => {
    const rand = rng(7);
    for (let trial = 0; trial < 30; trial++) {
      const rows = 1 + Math.floor(rand() * 6);
      const cols = 1 + Math.floor(rand() * 40);
      const k = 1 + Math.floor(rand() * 12);
      const scores = randomScores(rand, rows * cols);
      expectSameTopK(topKOfScores(scores, rows, cols, k), bruteTopK(scores, rows, cols, k));
    }
  });
});

describe('topk - merging label shards', () => {
  it('mergeTopK of S contiguous label shards equals topKOfScores of the full matrix (S = 1..5, uneven, ties)', () => {
    const rand = rng(42);
    let checked = 0;
    for (let S = 1; S <= 5; S++) {
      for (let trial = 0; trial < 20; trial++) {
        const rows = 1 + Math.floor(rand() * 8);
        const cols = S + Math.floor(rand() * 60);
        const k = 1 + Math.floor(rand() * 10);
        const scores = randomScores(rand, rows * cols);
        // S-1 distinct random cut points: uneven shard sizes (a shard may be a single label).
        const cuts = new Set<number>();
        while (cuts.size < S - 1) cuts.add(1 + Math.floor(rand() * (cols - 1)));
        const bounds = [0, ...[...cuts].sort((a, b) => a - b), cols];
        const parts: TopK[] = [];
        for (let s = 0; s < S; s++) {
          const from = bounds[s], to = bounds[s + 1];
          // shards may answer with their own k (here: a different one per shard, >= k)
          const shardK = k + (s % 2);
          parts.push(topKOfScores(sliceColumns(scores, rows, cols, from, to), rows, to - from, shardK, from));
        }
        const full = topKOfScores(scores, rows, cols, k);
        expectSameTopK(mergeTopK(parts, k), full);
        // order of parts does not matter
        expectSameTopK(mergeTopK([...parts].reverse(), k), full);
        checked++;
      }
    }
    expect(checked).toBe(100);
  });

  it('mergeTopK pads when the shards together hold fewer than k labels', () => {
    const a = topKOfScores(new Float32Array([3, 1]), 1, 2, 4, 0);   // labels 0,1
    const b = topKOfScores(new Float32Array([2]), 1, 1, 4, 2);      // label 2
    const m = mergeTopK([a, b], 5);
    expect(Array.from(m.labels)).toEqual([0, 2, 1, -1, -1]);
    expect(Array.from(m.scores)).toEqual([3, 2, 1, -Infinity, -Infinity]);
  });

  it('mergeTopK rejects parts with different row counts', () => {
    expect(() => mergeTopK([createTopK(2, 3), createTopK(3, 3)], 3)).toThrow(/part 1 has 3 rows, part 0 has 2/);
    expect(() => mergeTopK([], 3)).toThrow(/no parts/);
  });
});
