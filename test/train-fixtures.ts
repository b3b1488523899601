/**
 * Tiny synthetic multi-label problems for the model and trainer tests, with
 * a fixed seed (the same data every run): label l has a random prototype
 * direction; a point holds 1-3 labels and its features are the sum of their
 * prototypes plus noise, so the labels are learnable from the features.
 */
import { writeFileSync } from 'node:fs';
import { Xoshiro128 } from '../src/data/random.js';
import type { CsrMatrix, Dataset, DenseMatrix, FeatureMatrix } from '../src/data/types.js';

export interface SyntheticOptions {
  n: number;
  features: number;
  labels: number;
  seed?: number;
  /** CSR features (only the largest quarter of each row's entries kept) instead of dense */
  sparse?: boolean;
  /** the prototypes' generator seed: train and test sets of one problem share it */
  problemSeed?: number;
}

function gaussian(rng: Xoshiro128): number {
  const u = 1 - rng.nextFloat();
  const v = rng.nextFloat();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

export function syntheticDataset(o: SyntheticOptions): Dataset {
  const { n, features: F, labels: L } = o;
  const proto = new Float32Array(L * F);
  const prng = new Xoshiro128(o.problemSeed ?? 12345);
  for (let i = 0; i < proto.length; i++) proto[i] = gaussian(prng);
  const rng = new Xoshiro128(o.seed ?? 1);
  const x = new Float32Array(n * F);
  const indptr = new Uint32Array(n + 1);
  const ids: number[] = [];
  for (let r = 0; r < n; r++) {
    const count = 1 + rng.below(3);
    const set = new Set<number>();
    while (set.size < count) set.add(rng.below(L));
    const labels = [...set].sort((a, b) => a - b);
    ids.push(...labels);
    indptr[r + 1] = ids.length;
    for (let f = 0; f < F; f++) {
      let v = 0.3 * gaussian(rng);
      for (const l of labels) v += proto[l * F + f];
      x[r * F + f] = v;
    }
  }
  const labels: CsrMatrix = { kind: 'csr', rows: n, cols: L, indptr, indices: Uint32Array.from(ids), values: null };
  let features: FeatureMatrix = { kind: 'dense', rows: n, cols: F, data: x } satisfies DenseMatrix;
  if (o.sparse) features = sparsify(features as DenseMatrix);
  return { features, labels, source: `synthetic(${n}x${F}, ${L} labels)` };
}

/** Keeps the positive entries of each row (about half): a bag-of-words-like CSR matrix. */
function sparsify(m: DenseMatrix): CsrMatrix {
  const indptr = new Uint32Array(m.rows + 1);
  const idx: number[] = [];
  const vals: number[] = [];
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < m.cols; c++) {
      const v = m.data[r * m.cols + c];
      if (v > 0) { idx.push(c); vals.push(v); }
    }
    indptr[r + 1] = idx.length;
  }
  return { kind: 'csr', rows: m.rows, cols: m.cols, indptr, indices: Uint32Array.from(idx), values: Float32Array.from(vals) };
}

/** Writes a data set as an XC text file ('N F L' header, 'labels f:v ...' lines). */
export function writeXcText(path: string, d: Dataset): void {
  const f = d.features;
  const lines = [`${f.rows} ${f.cols} ${d.labels.cols}`];
  for (let r = 0; r < f.rows; r++) {
    const labels = Array.from(d.labels.indices.subarray(d.labels.indptr[r], d.labels.indptr[r + 1])).join(',');
    const feats: string[] = [];
    if (f.kind === 'dense') {
      for (let c = 0; c < f.cols; c++) feats.push(`${c}:${f.data[r * f.cols + c]}`);
    } else {
      for (let e = f.indptr[r]; e < f.indptr[r + 1]; e++) feats.push(`${f.indices[e]}:${f.values ? f.values[e] : 1}`);
    }
    lines.push(`${labels} ${feats.join(' ')}`);
  }
  writeFileSync(path, lines.join('\n') + '\n');
}
