/**
 * Shape and label statistics of data files, computed in one streaming pass:
 * labels need only per-label counts, features only per-row nonzero counts,
 * so memory is O(labels), not O(file).
 *
 * Quantiles use linear interpolation between order statistics (numpy's
 * default): q-quantile of sorted a[0..n-1] = a[i] + (a[i+1] - a[i]) * f
 * where i + f = q * (n - 1).
 */
import { stat } from 'node:fs/promises';
import { DataFormatError } from '../errors.js';
import { headerIntegers, readHeaderLine } from '../io/header.js';
import { openNpy } from '../io/npy.js';
import { scanSparseText } from '../io/sparse-text.js';
import { scanXcText } from '../io/xc-text.js';
import { isNpyFile } from './load.js';

export type StatsFormat = 'xc-text' | 'sparse-text-labels' | 'sparse-text-features' | 'npy';

export interface Summary {
  mean: number;
  min: number;
  max: number;
}

export interface LabelStats {
  labelsPerPoint: Summary;
  pointsWithoutLabels: number;
  pointsPerLabel: Summary & { labelsWithoutPoints: number };
  /** points per label, over all labels (those with no point count as 0) */
  labelFrequencyQuantiles: { min: number; p25: number; p50: number; p75: number; p90: number; p99: number; max: number };
}

export interface FileStats {
  file: string;
  format: StatsFormat;
  points: number;
  /** feature dimension; null for a label-only file */
  features: number | null;
  /** number of labels; null for a feature-only file */
  labels: number | null;
  /** for .npy */
  dtype?: 'float32' | 'float16';
  /** file size */
  bytes?: number;
  /** stored (sparse) or nonzero (dense) features per point */
  featuresPerPoint?: Summary;
  labelStats?: LabelStats;
}

/** Per-label counts and per-point label counts, fed row by row. */
export class LabelCounter {
  readonly perLabel: Float64Array;
  points = 0;
  private total = 0;
  private min = Infinity;
  private max = 0;
  private empty = 0;

  constructor(labels: number) {
    this.perLabel = new Float64Array(labels);
  }

  add(ids: ArrayLike<number>): void {
    const n = ids.length;
    for (let i = 0; i < n; i++) this.perLabel[ids[i]]++;
    this.points++;
    this.total += n;
    if (n < this.min) this.min = n;
    if (n > this.max) this.max = n;
    if (n === 0) this.empty++;
  }

  /** Adds another counter's counts (same number of labels). */
  merge(other: LabelCounter): void {
    for (let j = 0; j < this.perLabel.length; j++) this.perLabel[j] += other.perLabel[j];
    this.points += other.points;
    this.total += other.total;
    this.min = Math.min(this.min, other.min);
    this.max = Math.max(this.max, other.max);
    this.empty += other.empty;
  }

  result(): LabelStats {
    const L = this.perLabel.length;
    const sorted = Float64Array.from(this.perLabel).sort();
    let labelsWithoutPoints = 0;
    for (let j = 0; j < L; j++) if (this.perLabel[j] === 0) labelsWithoutPoints++;
    return {
      labelsPerPoint: { mean: this.points ? this.total / this.points : 0, min: this.points ? this.min : 0, max: this.max },
      pointsWithoutLabels: this.empty,
      pointsPerLabel: { mean: L ? this.total / L : 0, min: L ? sorted[0] : 0, max: L ? sorted[L - 1] : 0, labelsWithoutPoints },
      labelFrequencyQuantiles: {
        min: quantile(sorted, 0), p25: quantile(sorted, 0.25), p50: quantile(sorted, 0.5), p75: quantile(sorted, 0.75),
        p90: quantile(sorted, 0.9), p99: quantile(sorted, 0.99), max: quantile(sorted, 1),
      },
    };
  }
}

/** Mean / min / max of a per-row count. */
export class CountSummary {
  private n = 0;
  private sum = 0;
  private min = Infinity;
  private max = 0;

  add(v: number): void {
    this.n++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  merge(o: CountSummary): void {
    this.n += o.n;
    this.sum += o.sum;
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
  }

  result(): Summary {
    return { mean: this.n ? this.sum / this.n : 0, min: this.n ? this.min : 0, max: this.max };
  }
}

/** q-quantile of an ascending array, linear interpolation; 0 for an empty array. */
export function quantile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const pos = q * (n - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < n ? sorted[i] + (sorted[i + 1] - sorted[i]) * f : sorted[n - 1];
}

/** Stats of one file together with the counters they came from (for combining files). */
export interface FileStatsResult {
  stats: FileStats;
  labelCounter?: LabelCounter;
  featureCounter?: CountSummary;
}

export interface StatsOptions {
  /** how to read a sparse text file (`ROWS COLS` header): as labels (default) or features */
  sparseAs?: 'labels' | 'features';
}

/** Detects the format of `path` and computes its statistics in one streaming pass. */
export async function fileStats(path: string, options: StatsOptions = {}): Promise<FileStatsResult> {
  const result = await statsByFormat(path, options);
  result.stats.bytes = (await stat(path)).size;
  return result;
}

async function statsByFormat(path: string, options: StatsOptions): Promise<FileStatsResult> {
  if (await isNpyFile(path)) return npyStats(path);
  const ints = headerIntegers(await readHeaderLine(path));
  if (ints?.length === 3) return xcStats(path);
  if (ints?.length === 2) return sparseStats(path, options.sparseAs ?? 'labels');
  throw new DataFormatError({ file: path, line: 1 },
    "unknown format: expected a .npy file, an XC text file ('N F L' header) or a sparse text file ('ROWS COLS' header)");
}

async function xcStats(path: string): Promise<FileStatsResult> {
  let labelCounter: LabelCounter | null = null;
  const featureCounter = new CountSummary();
  const header = await scanXcText(path, {
    header(h) { labelCounter = new LabelCounter(h.labels); },
    row(r) {
      labelCounter!.add(r.labels);
      featureCounter.add(r.featureIds.length);
    },
  });
  const lc = labelCounter as unknown as LabelCounter;
  return {
    stats: {
      file: path, format: 'xc-text', points: header.points, features: header.features, labels: header.labels,
      featuresPerPoint: featureCounter.result(), labelStats: lc.result(),
    },
    labelCounter: lc,
    featureCounter,
  };
}

async function sparseStats(path: string, as: 'labels' | 'features'): Promise<FileStatsResult> {
  let labelCounter: LabelCounter | null = null;
  const featureCounter = new CountSummary();
  const binary = as === 'labels';
  const header = await scanSparseText(path, { binary },
    (h) => { if (binary) labelCounter = new LabelCounter(h.cols); },
    (row) => { if (binary) labelCounter!.add(row.ids); else featureCounter.add(row.ids.length); });
  if (binary) {
    const lc = labelCounter as unknown as LabelCounter;
    return {
      stats: { file: path, format: 'sparse-text-labels', points: header.rows, features: null, labels: header.cols, labelStats: lc.result() },
      labelCounter: lc,
    };
  }
  return {
    stats: { file: path, format: 'sparse-text-features', points: header.rows, features: header.cols, labels: null, featuresPerPoint: featureCounter.result() },
    featureCounter,
  };
}

async function npyStats(path: string): Promise<FileStatsResult> {
  const reader = await openNpy(path);
  const featureCounter = new CountSummary();
  try {
    const blockRows = Math.max(1, Math.floor((16 << 20) / Math.max(1, reader.cols * 4)));
    for (let r = 0; r < reader.rows; r += blockRows) {
      const n = Math.min(blockRows, reader.rows - r);
      const block = await reader.readRows(r, n); // also rejects NaN/Inf
      for (let i = 0; i < n; i++) {
        let nz = 0;
        for (let c = i * reader.cols, end = c + reader.cols; c < end; c++) if (block[c] !== 0) nz++;
        featureCounter.add(nz);
      }
    }
  } finally {
    await reader.close();
  }
  return {
    stats: {
      file: path, format: 'npy', points: reader.rows, features: reader.cols, labels: null,
      dtype: reader.dtype === 'f4' ? 'float32' : 'float16', featuresPerPoint: featureCounter.result(),
    },
    featureCounter,
  };
}

/**
 * Statistics of several files taken together (e.g. a train and a test split),
 * or null when they cannot be combined (different label or feature counts,
 * or not all of them have labels).
 */
export function combineStats(results: FileStatsResult[]): FileStats | null {
  if (results.length < 2) return null;
  const first = results[0].stats;
  if (!results.every((r) => r.labelCounter && r.stats.labels === first.labels && r.stats.features === first.features)) return null;
  const labels = new LabelCounter(first.labels!);
  const haveFeatures = results.every((r) => r.featureCounter);
  const features = new CountSummary();
  for (const r of results) {
    labels.merge(r.labelCounter!);
    if (haveFeatures) features.merge(r.featureCounter!);
  }
  return {
    file: `all ${results.length} files`,
    format: first.format,
    points: labels.points,
    features: first.features,
    labels: first.labels,
    ...(haveFeatures ? { featuresPerPoint: features.result() } : {}),
    labelStats: labels.result(),
  };
}
