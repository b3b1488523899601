/**
 * Prediction files: one line per point, in point order,
 *
 *   label:score label:score ...
 *
 * 0-based label ids, best first (descending score; equal scores by smaller
 * label id). An empty (or blank) line is a point with no predictions. No
 * header. This is the text form of `TopK` (src/topk/topk.ts), and what
 * `xmc eval --predictions` reads.
 *
 * The reader streams: it yields TopK blocks of at most `blockRows` points and
 * holds one block in memory. It does not trust the order of a line: it ranks
 * the line's entries itself (same order as topk.ts), so a file in any order
 * reads the same as its sorted form. The writer is atomic: it writes a
 * temporary file next to the target and renames it into place.
 */
import { createReadStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DataFormatError } from '../errors.js';
import { createTopK, ranksBefore, type TopK } from '../topk/topk.js';

export interface ReadPredictionsOptions {
  /**
   * Keep the best k entries of each line. Without it, each block's k is the
   * longest line of the block (at least 1), so nothing is dropped.
   */
  k?: number;
  /** points per yielded block (default 4096) */
  blockRows?: number;
  /** when given, a label >= numLabels is a DataFormatError */
  numLabels?: number;
}

const MAX_LABEL = 0x7fffffff; // labels are Int32 in TopK

/**
 * Streams a prediction file as TopK blocks (rows in file order). Errors in
 * the file are DataFormatError naming the file, the line and the problem.
 */
export async function* readPredictions(path: string, options: ReadPredictionsOptions = {}): AsyncGenerator<TopK> {
  const { k, blockRows = 4096, numLabels } = options;
  if (k !== undefined && (!Number.isInteger(k) || k < 1)) throw new RangeError(`readPredictions: k must be a positive integer, got ${k}`);
  if (!Number.isInteger(blockRows) || blockRows < 1) throw new RangeError(`readPredictions: blockRows must be a positive integer, got ${blockRows}`);

  const parser = new LineParser(path, k, numLabels);
  const block = new BlockBuilder(k);
  let lineNo = 0;
  let rest = '';
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  for await (const chunk of stream as AsyncIterable<string>) {
    const text = rest + chunk;
    let start = 0;
    let nl: number;
    while ((nl = text.indexOf('\n', start)) >= 0) {
      lineNo++;
      block.addRow(parser.parse(text, start, nl, lineNo));
      start = nl + 1;
      if (block.rows === blockRows) yield block.take();
    }
    rest = text.slice(start);
  }
  if (rest.length > 0) {
    // last line without a trailing newline
    lineNo++;
    block.addRow(parser.parse(rest, 0, rest.length, lineNo));
  }
  if (block.rows > 0) yield block.take();
}

/** One parsed, ranked line: entries [0, length) of the parser's buffers. */
interface RankedLine {
  labels: Int32Array;
  scores: Float32Array;
  length: number;
}

class LineParser {
  private labels = new Int32Array(256);
  private scores = new Float32Array(256);
  private rankedLabels = new Int32Array(256);
  private rankedScores = new Float32Array(256);
  private order: number[] = [];

  constructor(private readonly file: string, private readonly k: number | undefined,
    private readonly numLabels: number | undefined) {}

  private fail(line: number, reason: string): never {
    throw new DataFormatError({ file: this.file, line }, reason);
  }

  /** Parses text[start, end) (one line, no '\n'); the result is valid until the next call. */
  parse(text: string, start: number, end: number, line: number): RankedLine {
    if (end > start && text.charCodeAt(end - 1) === 13 /* \r */) end--;
    let n = 0;
    let pos = start;
    while (pos < end) {
      let c = text.charCodeAt(pos);
      if (c === 32 || c === 9) { pos++; continue; }
      const tokStart = pos;
      // Fast path: digits, ':', then the score up to the next blank.
      let label = 0;
      while (pos < end && (c = text.charCodeAt(pos)) >= 48 && c <= 57) {
        label = label * 10 + (c - 48);
        pos++;
      }
      let tokEnd = pos;
      while (tokEnd < end && (c = text.charCodeAt(tokEnd)) !== 32 && c !== 9) tokEnd++;
      if (pos === tokStart || pos === tokEnd || text.charCodeAt(pos) !== 58 /* : */ || label > MAX_LABEL) {
        this.badToken(text.slice(tokStart, tokEnd), line); // says what is wrong, throws
      }
      const score = Number(text.slice(pos + 1, tokEnd));
      if (Number.isNaN(score) || pos + 1 === tokEnd) this.badToken(text.slice(tokStart, tokEnd), line);
      if (this.numLabels !== undefined && label >= this.numLabels) {
        this.fail(line, `label ${label} in '${text.slice(tokStart, tokEnd)}' is >= the number of labels ${this.numLabels}`);
      }
      pos = tokEnd;
      if (n === this.labels.length) this.grow(2 * n);
      this.labels[n] = label;
      this.scores[n] = score;
      n++;
    }
    this.checkDistinct(n, line);
    return this.rank(n);
  }

  /** Explains why a token is not `label:score` (the fast path only knows that it is not). */
  private badToken(token: string, line: number): never {
    const colon = token.indexOf(':');
    if (colon < 0) this.fail(line, `malformed token '${token}': expected label:score`);
    const labelText = token.slice(0, colon);
    const scoreText = token.slice(colon + 1);
    if (!/^\d+$/.test(labelText)) {
      if (/^-\d+$/.test(labelText)) this.fail(line, `negative label ${labelText} in '${token}'`);
      this.fail(line, `malformed token '${token}': label '${labelText}' is not a non-negative integer`);
    }
    if (Number(labelText) > MAX_LABEL) this.fail(line, `label ${labelText} in '${token}' is larger than ${MAX_LABEL}`);
    if (scoreText === '') this.fail(line, `malformed token '${token}': missing score`);
    if (/^[+-]?nan$/i.test(scoreText)) this.fail(line, `NaN score in '${token}'`);
    this.fail(line, `malformed token '${token}': score '${scoreText}' is not a number`);
  }

  /** A label may appear once per line: a quadratic scan for short lines, a sort for long ones. */
  private checkDistinct(n: number, line: number): void {
    const labels = this.labels;
    if (n <= 32) {
      for (let i = 1; i < n; i++) {
        for (let j = 0; j < i; j++) {
          if (labels[i] === labels[j]) this.fail(line, `label ${labels[i]} appears more than once`);
        }
      }
      return;
    }
    const sorted = this.rankedLabels.subarray(0, n); // free until rank() runs
    sorted.set(labels.subarray(0, n));
    sorted.sort();
    for (let i = 1; i < n; i++) {
      if (sorted[i] === sorted[i - 1]) this.fail(line, `label ${sorted[i]} appears more than once`);
    }
  }

  private grow(capacity: number): void {
    const labels = new Int32Array(capacity); labels.set(this.labels); this.labels = labels;
    const scores = new Float32Array(capacity); scores.set(this.scores); this.scores = scores;
    this.rankedLabels = new Int32Array(capacity);
    this.rankedScores = new Float32Array(capacity);
  }

  /** The best min(n, k) entries, ranked; a line already in order is copied as is. */
  private rank(n: number): RankedLine {
    const keep = this.k === undefined ? n : Math.min(n, this.k);
    const { labels, scores } = this;
    let sorted = true;
    for (let i = 1; i < n && sorted; i++) {
      sorted = ranksBefore(scores[i - 1], labels[i - 1], scores[i], labels[i]);
    }
    if (sorted) return { labels, scores, length: keep };
    const order = this.order;
    order.length = n;
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => (ranksBefore(scores[a], labels[a], scores[b], labels[b]) ? -1 : 1));
    for (let i = 0; i < keep; i++) {
      this.rankedLabels[i] = labels[order[i]];
      this.rankedScores[i] = scores[order[i]];
    }
    return { labels: this.rankedLabels, scores: this.rankedScores, length: keep };
  }
}

/** Collects ranked rows and packs them into a TopK. */
class BlockBuilder {
  rows = 0;
  private rowStart: number[] = [0];
  private labels = new Int32Array(1 << 16);
  private scores = new Float32Array(1 << 16);
  private longest = 0;

  constructor(private readonly k: number | undefined) {}

  addRow(line: RankedLine): void {
    const at = this.rowStart[this.rows];
    if (at + line.length > this.labels.length) {
      const cap = Math.max(2 * this.labels.length, at + line.length);
      const labels = new Int32Array(cap); labels.set(this.labels.subarray(0, at)); this.labels = labels;
      const scores = new Float32Array(cap); scores.set(this.scores.subarray(0, at)); this.scores = scores;
    }
    this.labels.set(line.labels.subarray(0, line.length), at);
    this.scores.set(line.scores.subarray(0, line.length), at);
    this.rows++;
    this.rowStart[this.rows] = at + line.length;
    if (line.length > this.longest) this.longest = line.length;
  }

  take(): TopK {
    const k = this.k ?? Math.max(1, this.longest);
    const out = createTopK(this.rows, k);
    for (let r = 0; r < this.rows; r++) {
      const from = this.rowStart[r];
      const to = this.rowStart[r + 1];
      out.labels.set(this.labels.subarray(from, to), r * k);
      out.scores.set(this.scores.subarray(from, to), r * k);
    }
    this.rows = 0;
    this.rowStart = [0];
    this.longest = 0;
    return out;
  }
}

/**
 * Decimal text that reads back as the same float32, so a written-then-read
 * file holds bit-identical scores: the first of 7, 8 or 9 significant digits
 * that round-trips (9 always does), trailing zeros dropped. Values that came
 * from short decimals stay short (0.9, not 0.899999976).
 */
export function formatScore(score: number): string {
  const p7 = Number(score.toPrecision(7));
  if (Math.fround(p7) === score) return String(p7);
  const p8 = Number(score.toPrecision(8));
  if (Math.fround(p8) === score) return String(p8);
  return String(Number(score.toPrecision(9)));
}

/**
 * Writes TopK blocks (in point order) as a prediction file, atomically: the
 * target appears complete or not at all. Pads (label -1) are not written.
 * Resolves to the number of points written. A NaN score is a RangeError
 * (the format has no NaN).
 */
export async function writePredictions(path: string,
  blocks: TopK | Iterable<TopK> | AsyncIterable<TopK>): Promise<number> {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const handle = await open(temp, 'w');
  let rows = 0;
  try {
    let buffer = '';
    const source: Iterable<TopK> | AsyncIterable<TopK> = isTopK(blocks) ? [blocks] : blocks;
    for await (const block of source) {
      const { k, labels, scores } = block;
      for (let r = 0; r < block.rows; r++) {
        const base = r * k;
        for (let j = 0; j < k; j++) {
          const label = labels[base + j];
          if (label < 0) break;
          const score = scores[base + j];
          if (Number.isNaN(score)) throw new RangeError(`writePredictions: NaN score for label ${label} of point ${rows}`);
          if (j > 0) buffer += ' ';
          buffer += `${label}:${formatScore(score)}`;
        }
        buffer += '\n';
        rows++;
        if (buffer.length >= 1 << 20) {
          await handle.write(buffer);
          buffer = '';
        }
      }
    }
    if (buffer.length > 0) await handle.write(buffer);
    await handle.sync();
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => {});
    await unlink(temp).catch(() => {});
    throw err;
  }
  try {
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => {});
    throw err;
  }
  return rows;
}

function isTopK(x: TopK | Iterable<TopK> | AsyncIterable<TopK>): x is TopK {
  return (x as TopK).labels instanceof Int32Array && typeof (x as TopK).k === 'number';
}
