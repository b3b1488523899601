/**
 * The top-k representation shared by every part of the system: the trainer's
 * evaluation, the label-shard workers, the serving coordinator, prediction
 * files and the evaluator all speak `TopK`.
 *
 * Layout: two row-major arrays of `rows x k`. Row r's ranked answer is
 * `labels[r*k .. r*k+k)` with matching `scores`, best first. A row with fewer
 * than k answers is padded at its end with label -1 (score -Infinity); the
 * label, not the score, says whether a slot is a pad.
 *
 * Ranking order (used by every function here, so that the results agree
 * bit for bit however the labels were split):
 *   1. a higher score ranks first;
 *   2. equal scores: the smaller label id ranks first;
 *   3. NaN never ranks above a number: NaN scores come after every number
 *      (-Infinity included), among themselves by label id.
 */

export interface TopK {
  rows: number;
  k: number;
  /** [rows, k] label ids, -1 pads rows with fewer than k answers */
  labels: Int32Array;
  /** [rows, k] scores, descending per row in the ranking order above */
  scores: Float32Array;
}

/** Score stored in a pad slot (label -1). */
export const PAD_SCORE = -Infinity;

/** An all-pad TopK of `rows x k`. */
export function createTopK(rows: number, k: number): TopK {
  checkShape('createTopK', rows, k);
  const labels = new Int32Array(rows * k).fill(-1);
  const scores = new Float32Array(rows * k).fill(PAD_SCORE);
  return { rows, k, labels, scores };
}

/**
 * True when (scoreA, labelA) ranks strictly before (scoreB, labelB).
 * Labels are never equal for two entries of one row.
 */
export function ranksBefore(scoreA: number, labelA: number, scoreB: number, labelB: number): boolean {
  if (scoreA > scoreB) return true;
  if (scoreA < scoreB) return false;
  // Equal, or at least one NaN.
  const aNaN = scoreA !== scoreA;
  const bNaN = scoreB !== scoreB;
  if (aNaN !== bNaN) return bNaN; // the number ranks before the NaN
  return labelA < labelB;
}

/** Number of real (non-pad) answers in row r. */
export function rowLength(topk: TopK, r: number): number {
  const base = r * topk.k;
  let n = 0;
  while (n < topk.k && topk.labels[base + n] >= 0) n++;
  return n;
}

/**
 * Inserts (score, label) into the ranked buffer `labels/scores[base .. base+k)`
 * holding `filled` entries; returns the new fill count. Entries that do not
 * make the top k are dropped. Candidates may arrive in any order: ties are
 * settled by `ranksBefore`, so the result does not depend on arrival order.
 * Used by topKOfScores and by the prediction file reader.
 */
export function insertRanked(labels: Int32Array, scores: Float32Array, base: number, k: number,
  filled: number, score: number, label: number): number {
  let pos: number;
  if (filled < k) {
    pos = filled;
    filled++;
  } else {
    const last = base + k - 1;
    if (!ranksBefore(score, label, scores[last], labels[last])) return filled;
    pos = k - 1;
  }
  // Shift worse entries down one slot until the candidate's place is found.
  while (pos > 0 && ranksBefore(score, label, scores[base + pos - 1], labels[base + pos - 1])) {
    labels[base + pos] = labels[base + pos - 1];
    scores[base + pos] = scores[base + pos - 1];
    pos--;
  }
  labels[base + pos] = label;
  scores[base + pos] = score;
  return filled;
}

/**
 * Reference top-k of a dense row-major score block `[rows, cols]`: column c
 * is label `labelOffset + c`. Rows with fewer than k columns are padded.
 * Cost O(rows * cols) comparisons plus O(k) per accepted candidate.
 */
export function topKOfScores(scores: Float32Array, rows: number, cols: number, k: number,
  labelOffset = 0): TopK {
  checkShape('topKOfScores', rows, k);
  if (!Number.isInteger(cols) || cols < 0) throw new RangeError(`topKOfScores: cols must be a non-negative integer, got ${cols}`);
  if (scores.length !== rows * cols) {
    throw new RangeError(`topKOfScores: scores has ${scores.length} entries, expected rows*cols = ${rows}*${cols}`);
  }
  if (!Number.isInteger(labelOffset) || labelOffset < 0 || labelOffset + cols - 1 > 0x7fffffff) {
    throw new RangeError(`topKOfScores: label ids ${labelOffset}..${labelOffset + cols - 1} do not fit an Int32 label`);
  }
  const out = createTopK(rows, k);
  const { labels: outLabels, scores: outScores } = out;
  for (let r = 0; r < rows; r++) {
    const base = r * k;
    const rowBase = r * cols;
    let filled = 0;
    for (let c = 0; c < cols; c++) {
      filled = insertRanked(outLabels, outScores, base, k, filled, scores[rowBase + c], labelOffset + c);
    }
  }
  return out;
}

/**
 * Merges, per row, the top-k lists of label shards into the top-k of their
 * union. Each part holds global label ids, is ranked in the order above, and
 * the parts' label sets are disjoint (S label-shard workers' answers); parts
 * may have different k. The result is what topKOfScores would give on the
 * full score matrix, pads included. Cost O(rows * k * S).
 */
export function mergeTopK(parts: readonly TopK[], k: number): TopK {
  if (parts.length === 0) throw new RangeError('mergeTopK: no parts to merge');
  const rows = parts[0].rows;
  checkShape('mergeTopK', rows, k);
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p];
    if (part.rows !== rows) throw new RangeError(`mergeTopK: part ${p} has ${part.rows} rows, part 0 has ${rows}`);
    if (part.labels.length !== part.rows * part.k || part.scores.length !== part.rows * part.k) {
      throw new RangeError(`mergeTopK: part ${p} arrays do not hold rows*k = ${part.rows}*${part.k} entries`);
    }
  }
  const out = createTopK(rows, k);
  const S = parts.length;
  const cursor = new Int32Array(S); // next unread slot of each part in the current row
  for (let r = 0; r < rows; r++) {
    cursor.fill(0);
    const outBase = r * k;
    for (let slot = 0; slot < k; slot++) {
      let best = -1;
      let bestScore = 0;
      let bestLabel = 0;
      for (let p = 0; p < S; p++) {
        const part = parts[p];
        const c = cursor[p];
        if (c >= part.k) continue;
        const label = part.labels[r * part.k + c];
        if (label < 0) continue; // pads only follow: this part's row is used up
        const score = part.scores[r * part.k + c];
        if (best < 0 || ranksBefore(score, label, bestScore, bestLabel)) {
          best = p; bestScore = score; bestLabel = label;
        }
      }
      if (best < 0) break; // every part used up: the rest stays padded
      out.labels[outBase + slot] = bestLabel;
      out.scores[outBase + slot] = bestScore;
      cursor[best]++;
    }
  }
  return out;
}

function checkShape(fn: string, rows: number, k: number): void {
  if (!Number.isInteger(rows) || rows < 0) throw new RangeError(`${fn}: rows must be a non-negative integer, got ${rows}`);
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`${fn}: k must be a positive integer, got ${k}`);
}
