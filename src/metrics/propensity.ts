/**
 * Label propensities of Jain, Prabhu & Varma, "Extreme Multi-label Loss
 * Functions for Recommendation, Tagging, Ranking & Other Missing Label
 * Applications", KDD 2016 (the model used by the Extreme Classification
 * Repository and pyxclib's compute_inv_propesity):
 *
 *   p_l   = 1 / (1 + C (n_l + B)^-A),   C = (ln N - 1) (B + 1)^A
 *   w_l   = 1 / p_l = 1 + C (n_l + B)^-A
 *
 * n_l is the number of training points that have label l, N the number of
 * training points; A, B are fitted per data-set family (presets below).
 * Rare labels get a large inverse propensity w_l, so propensity-scored
 * metrics reward getting tail labels right.
 */
import type { CsrMatrix } from '../data/types.js';
import { OptionError } from '../errors.js';

export interface PropensityModel {
  A: number;
  B: number;
}

/** The presets of Jain et al. 2016. */
export const PROPENSITY_PRESETS = {
  default: { A: 0.55, B: 1.5 },
  amazon: { A: 0.6, B: 2.6 },
  wikipedia: { A: 0.5, B: 0.4 },
} as const satisfies Record<string, PropensityModel>;

export type PropensityPreset = keyof typeof PROPENSITY_PRESETS;

/**
 * Parses `default`, `amazon`, `wikipedia` or a custom `A,B` (e.g. `0.55,1.5`).
 * `option` names the command-line option in errors.
 */
export function parsePropensityModel(text: string, option = '--propensity'): PropensityModel {
  if (Object.hasOwn(PROPENSITY_PRESETS, text)) return { ...PROPENSITY_PRESETS[text as PropensityPreset] };
  const parts = text.split(',');
  if (parts.length !== 2) {
    throw new OptionError(option, `'${text}' is neither a preset (${Object.keys(PROPENSITY_PRESETS).join(', ')}) nor 'A,B'`);
  }
  const [A, B] = parts.map((p) => (p.trim() === '' ? NaN : Number(p)));
  if (!Number.isFinite(A) || A <= 0) throw new OptionError(option, `A in '${text}' must be a positive number`);
  // B > -1 keeps (B + 1)^A real, and n_l + B > 0 for every n_l >= 0 needs B > 0.
  if (!Number.isFinite(B) || B <= 0) throw new OptionError(option, `B in '${text}' must be a positive number`);
  return { A, B };
}

/** n_l for every label: the number of rows of a binary label matrix that hold label l. */
export function labelCounts(labels: CsrMatrix): Uint32Array {
  const counts = new Uint32Array(labels.cols);
  const { indices, indptr } = labels;
  const nnz = indptr[labels.rows];
  for (let i = 0; i < nnz; i++) counts[indices[i]]++;
  return counts;
}

/**
 * Inverse propensities w_l = 1 + C (n_l + B)^-A for every label, from the
 * training label counts (an array of n_l, or the training label matrix
 * itself) and N, the number of training points (defaults to the matrix's
 * rows; required with a counts array).
 */
export function inversePropensities(train: CsrMatrix | ArrayLike<number>, model: PropensityModel,
  numTrainPoints?: number): Float64Array {
  let counts: ArrayLike<number>;
  let N: number;
  if (isCsr(train)) {
    counts = labelCounts(train);
    N = numTrainPoints ?? train.rows;
  } else {
    if (numTrainPoints === undefined) throw new RangeError('inversePropensities: numTrainPoints is required with a counts array');
    counts = train;
    N = numTrainPoints;
  }
  const { A, B } = model;
  if (!(A > 0) || !(B > 0)) throw new RangeError(`inversePropensities: A and B must be positive, got A=${A}, B=${B}`);
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`inversePropensities: N must be a positive integer, got ${N}`);
  const C = (Math.log(N) - 1) * Math.pow(B + 1, A);
  const w = new Float64Array(counts.length);
  for (let l = 0; l < counts.length; l++) {
    const n = counts[l];
    if (!(n >= 0)) throw new RangeError(`inversePropensities: count of label ${l} is ${n}`);
    w[l] = 1 + C * Math.pow(n + B, -A);
  }
  return w;
}

function isCsr(x: CsrMatrix | ArrayLike<number>): x is CsrMatrix {
  return (x as CsrMatrix).kind === 'csr';
}
