/**
 * Seeds and initialisation of the model's parameters (host side, then copied
 * to the backend once).
 *
 * Seeds: every random stream of a run is derived from the run's seed and a
 * path of integers, so it depends on nothing else (not on the thread count,
 * not on how many steps ran before a resume):
 *
 *   init      streamSeed(seed, INIT, shard, layer, tensor)
 *   dropout   streamSeed(seed, DROPOUT, step)             (the same for every shard)
 *   rewiring  streamSeed(seed, REWIRE, shard, layer, step)
 *   data      epochOrder(n, seed, epoch)                  (src/data/batches.ts)
 *
 * Initialisation:
 *   intermediate dense layer (ReLU after it): Kaiming/He uniform,
 *       W ~ U(-sqrt(6 / fanIn), +sqrt(6 / fanIn)), b = 0
 *   dense output layer: Glorot/Xavier uniform,
 *       W ~ U(-sqrt(6 / (fanIn + fanOut)), +...), b = 0
 *   FFI output layer: each label's k sources distinct, uniform over the
 *       layer's inputs (sorted ascending within the row, for locality);
 *       W ~ U(-sqrt(3 / k), +sqrt(3 / k)) (variance 1 / k: weights scaled by 1/sqrt(k)), b = 0
 *   unstructured sparse output layer: L * k distinct cells drawn uniformly
 *       from the L x I matrix (rows of different sizes), weights as FFI, b = 0
 */
import { Xoshiro128, deriveSeed } from '../data/random.js';

export const STREAM_INIT = 0x7f000001;
export const STREAM_DROPOUT = 0x7f000002;
export const STREAM_REWIRE = 0x7f000003;

/** A 64-bit seed for the stream at `path` under `seed` (nested splitmix64 derivations). */
export function streamSeed(seed: number | bigint, ...path: number[]): bigint {
  let s: bigint = typeof seed === 'bigint' ? seed : BigInt(seed);
  for (const p of path) s = deriveSeed(s, p);
  return s;
}

/** A stream seed as a number below 2^53 (what the backend's seeded ops take). */
export function opSeed(seed: number | bigint, ...path: number[]): number {
  return Number(streamSeed(seed, ...path) & 0x1fffffffffffffn);
}

/** A generator for the stream at `path`. */
export function streamRng(seed: number | bigint, ...path: number[]): Xoshiro128 {
  return new Xoshiro128(streamSeed(seed, ...path));
}

/** n values uniform in [-bound, bound). */
export function uniform(n: number, bound: number, rng: Xoshiro128): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (2 * rng.nextFloat() - 1) * bound;
  return out;
}

export const kaimingBound = (fanIn: number): number => Math.sqrt(6 / fanIn);
export const glorotBound = (fanIn: number, fanOut: number): number => Math.sqrt(6 / (fanIn + fanOut));
export const sparseBound = (k: number): number => Math.sqrt(3 / k);

/**
 * FFI sources: `rows` rows of k distinct values in [0, inputs), each row
 * sorted ascending. Rejection sampling with a stamp per input when k is at
 * most half the inputs, otherwise a partial Fisher-Yates shuffle.
 */
export function ffiSources(rows: number, k: number, inputs: number, rng: Xoshiro128): Uint32Array {
  if (k > inputs) throw new RangeError(`ffiSources: fan-in ${k} exceeds ${inputs} inputs`);
  const idx = new Uint32Array(rows * k);
  if (2 * k <= inputs) {
    const stamp = new Uint32Array(inputs); // stamp[i] = row + 1 when row holds i
    for (let r = 0; r < rows; r++) {
      const row = idx.subarray(r * k, (r + 1) * k);
      let n = 0;
      while (n < k) {
        const i = rng.below(inputs);
        if (stamp[i] === r + 1) continue;
        stamp[i] = r + 1;
        row[n++] = i;
      }
      row.sort();
    }
  } else {
    const perm = new Uint32Array(inputs);
    for (let r = 0; r < rows; r++) {
      for (let i = 0; i < inputs; i++) perm[i] = i;
      for (let j = 0; j < k; j++) {
        const t = j + rng.below(inputs - j);
        const v = perm[t]; perm[t] = perm[j]; perm[j] = v;
      }
      const row = idx.subarray(r * k, (r + 1) * k);
      row.set(perm.subarray(0, k));
      row.sort();
    }
  }
  return idx;
}

/**
 * An unstructured sparse layer's CSR structure: nnz distinct cells of the
 * rows x inputs matrix, uniformly at random (rejection of repeated cells),
 * rows sorted by column. Cost O(nnz * mean row length) for the repeat checks.
 */
export function sparseStructure(rows: number, inputs: number, nnz: number, rng: Xoshiro128): { rowPtr: Uint32Array; col: Uint32Array } {
  if (nnz > rows * inputs) throw new RangeError(`sparseStructure: ${nnz} connections do not fit a ${rows} x ${inputs} matrix`);
  const cols: number[][] = Array.from({ length: rows }, () => []);
  let placed = 0;
  if (2 * nnz <= rows * inputs) {
    while (placed < nnz) {
      const r = rng.below(rows);
      const c = rng.below(inputs);
      const row = cols[r];
      if (row.includes(c)) continue;
      row.push(c);
      placed++;
    }
  } else {
    // Dense enough that rejection would crawl: shuffle all cells, keep the first nnz.
    const cells = new Float64Array(rows * inputs);
    for (let i = 0; i < cells.length; i++) cells[i] = i;
    for (let j = 0; j < nnz; j++) {
      const t = j + rng.below(cells.length - j);
      const v = cells[t]; cells[t] = cells[j]; cells[j] = v;
      cols[Math.floor(cells[j] / inputs)].push(cells[j] % inputs);
    }
  }
  const rowPtr = new Uint32Array(rows + 1);
  const col = new Uint32Array(nnz);
  let e = 0;
  for (let r = 0; r < rows; r++) {
    const row = cols[r].sort((a, b) => a - b);
    for (const c of row) col[e++] = c;
    rowPtr[r + 1] = e;
  }
  return { rowPtr, col };
}
