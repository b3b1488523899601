/**
 * Model configuration: the five setups of the paper, their defaults, the
 * split into label shards, and validation with errors that name the option.
 *
 * Setups (the paper's rows; F input features, L labels, H intermediate units):
 *
 *   dense         F -> L                     dense output layer
 *   bottleneck    F -> H (ReLU) -> L         H = 64 by default: a dense model of small memory
 *   ffi           F -> L                     sparse output layer, fixed fan-in k per label
 *   dense-ffi     F -> H (ReLU) -> FFI(k) -> L   the paper's method
 *   dense-sparse  F -> H (ReLU) -> sparse -> L   unstructured sparsity, L*k connections (same budget as FFI)
 *
 * Label shards: S contiguous label ranges, shard s holding labels
 * [floor(s L / S), floor((s+1) L / S)). Each shard is a complete sub-model
 * with its own intermediate layer of (about) H / S units (the same even
 * split) and its own output layer; no parameter is shared between shards.
 * With S = 1 this is the plain model.
 */
import { OptionError } from '../errors.js';

export const SETUPS = ['dense', 'bottleneck', 'ffi', 'dense-ffi', 'dense-sparse'] as const;
export type Setup = (typeof SETUPS)[number];

export interface ModelConfig {
  setup: Setup;
  /** F: features per input row */
  inputDim: number;
  /** L: labels (over all shards) */
  numLabels: number;
  /** H: intermediate units over all shards; 0 for the setups without one (dense, ffi) */
  intermediate: number;
  /** k: connections per label of the sparse output layer (mean per label for dense-sparse); 0 for dense outputs */
  fanIn: number;
  /** S: label shards */
  shards: number;
  /** seeds the initialisation (and, in the trainer, data order, dropout and rewiring) */
  seed: number;
}

export const DEFAULT_FAN_IN = 32;
export const DEFAULT_BOTTLENECK = 64;

/** Setups with an intermediate (hidden, ReLU) layer. */
export function hasIntermediate(setup: Setup): boolean {
  return setup === 'bottleneck' || setup === 'dense-ffi' || setup === 'dense-sparse';
}

/** Setups whose output layer is sparse (FFI or unstructured). */
export function hasSparseOutput(setup: Setup): boolean {
  return setup === 'ffi' || setup === 'dense-ffi' || setup === 'dense-sparse';
}

/**
 * Default intermediate size of dense-ffi / dense-sparse by label count: 4096
 * for small sets (the reference runs on bibtex / delicious), growing towards
 * the paper's 16384..131072 for its large ones.
 */
export function defaultIntermediate(setup: Setup, numLabels: number): number {
  if (setup === 'bottleneck') return DEFAULT_BOTTLENECK;
  if (!hasIntermediate(setup)) return 0;
  if (numLabels <= 100_000) return 4096;
  if (numLabels <= 1_000_000) return 16384;
  return 32768;
}

/** [start, end) of part `index` of `total` items split into `parts` contiguous ranges of near-equal size. */
export function evenSplit(total: number, parts: number, index: number): [number, number] {
  return [Math.floor((index * total) / parts), Math.floor(((index + 1) * total) / parts)];
}

export type LayerKind = 'dense' | 'ffi' | 'sparse';

/** One layer of a shard: what it computes and how it is initialised. */
export interface LayerPlan {
  kind: LayerKind;
  inputDim: number;
  outputDim: number;
  /** connections per output (ffi), mean connections per output (sparse); 0 for dense */
  fanIn: number;
  /** followed by a ReLU (intermediate layers) */
  relu: boolean;
}

export interface ShardPlan {
  index: number;
  count: number;
  /** global ids of this shard's labels: [labelStart, labelEnd) */
  labelStart: number;
  labelEnd: number;
  /** the intermediate layer, or null */
  intermediate: LayerPlan | null;
  output: LayerPlan;
}

/** The layers of shard `index` (no validation: call validateModelConfig first). */
export function planShard(config: ModelConfig, index: number): ShardPlan {
  const { setup, inputDim, numLabels, shards, fanIn } = config;
  const [labelStart, labelEnd] = evenSplit(numLabels, shards, index);
  const L = labelEnd - labelStart;
  let intermediate: LayerPlan | null = null;
  let outIn = inputDim;
  if (hasIntermediate(setup)) {
    const [h0, h1] = evenSplit(config.intermediate, shards, index);
    intermediate = { kind: 'dense', inputDim, outputDim: h1 - h0, fanIn: 0, relu: true };
    outIn = h1 - h0;
  }
  const kind: LayerKind = setup === 'ffi' || setup === 'dense-ffi' ? 'ffi' : setup === 'dense-sparse' ? 'sparse' : 'dense';
  const output: LayerPlan = { kind, inputDim: outIn, outputDim: L, fanIn: kind === 'dense' ? 0 : fanIn, relu: false };
  return { index, count: shards, labelStart, labelEnd, intermediate, output };
}

function positiveInteger(option: string, value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 1) throw new OptionError(option, `${what} must be a positive integer, got ${value}`);
}

/** Throws OptionError (naming the command-line option) when the configuration cannot be built. */
export function validateModelConfig(config: ModelConfig): void {
  const { setup, inputDim, numLabels, intermediate, fanIn, shards, seed } = config;
  if (!(SETUPS as readonly string[]).includes(setup)) {
    throw new OptionError('--setup', `unknown setup '${String(setup)}': one of ${SETUPS.join(', ')}`);
  }
  positiveInteger('--train', inputDim, 'the number of input features');
  positiveInteger('--train', numLabels, 'the number of labels');
  positiveInteger('--shards', shards, 'the number of shards');
  if (shards > numLabels) throw new OptionError('--shards', `${shards} shards for ${numLabels} labels: every shard needs at least one label`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new OptionError('--seed', `must be a non-negative integer, got ${seed}`);
  if (hasIntermediate(setup)) {
    positiveInteger('--intermediate', intermediate, 'the intermediate size');
    if (intermediate < shards) {
      throw new OptionError('--intermediate', `${intermediate} units cannot be split over ${shards} shards (each needs at least one)`);
    }
  } else if (intermediate !== 0) {
    throw new OptionError('--intermediate', `setup ${setup} has no intermediate layer`);
  }
  if (hasSparseOutput(setup)) {
    positiveInteger('--fan-in', fanIn, 'the fan-in');
    // The smallest shard input decides: with an intermediate layer, floor(H / S) units.
    const layerInput = hasIntermediate(setup) ? Math.floor(intermediate / shards) : inputDim;
    const where = hasIntermediate(setup)
      ? `the input of the ${setup === 'dense-ffi' ? 'FFI' : 'sparse'} layer (${shards > 1 ? `intermediate ${intermediate} / ${shards} shards = ` : 'intermediate '}${layerInput} units)`
      : `the input dimension (${inputDim} features)`;
    if (fanIn > layerInput) throw new OptionError('--fan-in', `${fanIn} exceeds ${where}: a label cannot have more distinct inputs than that`);
  } else if (fanIn !== 0) {
    throw new OptionError('--fan-in', `setup ${setup} has a dense output layer (no fan-in)`);
  }
}

/** A short description such as "dense-ffi: 1836 -> 4096 (ReLU) -> FFI k=32 -> 159, 2 shards". */
export function describeModel(config: ModelConfig): string {
  const { setup, inputDim: F, numLabels: L, intermediate: H, fanIn: k, shards } = config;
  const out = setup === 'ffi' || setup === 'dense-ffi' ? `FFI k=${k} -> ${L}` : setup === 'dense-sparse' ? `sparse ${L}x${k} connections -> ${L}` : `${L}`;
  const middle = hasIntermediate(setup) ? `${H} (ReLU) -> ` : '';
  return `${setup}: ${F} -> ${middle}${out}${shards > 1 ? `, ${shards} label shards` : ''}`;
}
