/**
 * The synthetic model and batches of bench/gpu-bench.mjs (which imports the compiled
 * dist/bench/bench-data.js): an FFI model of random weights and random sources, and
 * training batches of random features and labels, all from one seeded xoshiro128**
 * stream (src/data/random.ts), so that every run of the benchmark times the same data.
 *
 * Why a module of its own: the benchmark once drew these from a hand-written generator
 * whose period was 8,190 draws, which left most intermediate units unused as sources
 * and the gathered rows in L2; test/bench-data.test.ts checks that the data cover
 * their ranges (every unit a source, every row of W1 distinct).
 */
import { Xoshiro128 } from '../src/data/random.js';

/** The shape of the benchmark's model: input -> hidden (ReLU) -> FFI fan-in -> labels. */
export interface BenchShape {
  input: number;
  hidden: number;
  labels: number;
  fanin: number;
}

/** Host copies of the parameters (row-major): W1 [hidden, input], W2 and idx [labels, fanin]. */
export interface BenchModel {
  W1: Float32Array;
  W2: Float32Array;
  idx: Uint32Array;
}

/** One training batch: features [B, input], labels in CSR form (ptr [B + 1], ids). */
export interface BenchBatch {
  x: Float32Array;
  ptr: Uint32Array;
  ids: Uint32Array;
}

export class BenchData {
  private readonly rng: Xoshiro128;

  constructor(seed: number = 0x9e3779b9) {
    this.rng = new Xoshiro128(seed);
  }

  /** Uniform in [0, 1). */
  uniform(): number {
    return this.rng.nextFloat();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    return Math.sqrt(-2 * Math.log(1 - this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
  }

  /** n values uniform in [-scale, scale). */
  floats(n: number, scale: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = (this.uniform() * 2 - 1) * scale;
    return a;
  }

  /**
   * The FFI model: each label's fanin sources distinct and uniform over the hidden units, W1 uniform
   * with bound sqrt(6 / input), W2 uniform with bound sqrt(3 / fanin).
   */
  ffiModel(shape: BenchShape): BenchModel {
    const { input: D, hidden: H, labels: L, fanin: K } = shape;
    if (K > H) throw new RangeError(`bench data: fan-in ${K} exceeds the ${H} hidden units (sources of a label are distinct)`);
    const idx = new Uint32Array(L * K);
    for (let l = 0; l < L; l++) {
      const row = idx.subarray(l * K, (l + 1) * K);
      for (let j = 0; j < K; j++) {
        let s: number;
        do s = Math.floor(this.uniform() * H);
        while (row.subarray(0, j).includes(s));
        row[j] = s;
      }
    }
    return { W1: this.floats(H * D, Math.sqrt(6 / D)), W2: this.floats(L * K, Math.sqrt(3 / K)), idx };
  }

  /** A training batch of B rows: features normal / sqrt(input), labelsPerRow uniform labels a row. */
  batch(B: number, input: number, labels: number, labelsPerRow: number): BenchBatch {
    const ptr = new Uint32Array(B + 1), ids = new Uint32Array(B * labelsPerRow);
    for (let b = 0; b < B; b++) {
      ptr[b + 1] = ptr[b] + labelsPerRow;
      for (let j = 0; j < labelsPerRow; j++) ids[b * labelsPerRow + j] = Math.floor(this.uniform() * labels);
    }
    const x = new Float32Array(B * input);
    for (let i = 0; i < x.length; i++) x[i] = this.normal() / Math.sqrt(input);
    return { x, ptr, ids };
  }
}

/** How many of the `hidden` units feed some label. */
export function distinctSources(idx: Uint32Array, hidden: number): number {
  const used = new Uint8Array(Math.max(1, hidden));
  let n = 0;
  for (const s of idx) {
    if (!used[s]) {
      used[s] = 1;
      n++;
    }
  }
  return n;
}
