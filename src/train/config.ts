/**
 * Training configuration: every option with the paper's default, resolved
 * against the data (feature and label counts) and validated with errors that
 * name the command-line option. docs/TRAINING.md lists them.
 */
import { OptionError } from '../errors.js';
import type { LossKind } from '../native/backend.js';
import { PROPENSITY_PRESETS, type PropensityModel } from '../metrics/propensity.js';
import {
  DEFAULT_FAN_IN, SETUPS, defaultIntermediate, hasIntermediate, hasSparseOutput, planShard, validateModelConfig,
  type ModelConfig, type Setup,
} from '../model/config.js';

export const LOSSES: readonly LossKind[] = ['squared-hinge', 'bce'];

/** What a caller may set; everything left out takes the default. */
export interface TrainOptions {
  setup?: Setup;
  fanIn?: number;
  intermediate?: number;
  shards?: number;
  seed?: number;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  dropout?: number;
  loss?: LossKind;
  rewireInterval?: number;
  rewireFraction?: number;
  lrFactor?: number;
  lrPatience?: number;
  minLr?: number;
  earlyStopPatience?: number;
  propensity?: PropensityModel;
  /** rows per evaluation batch; default from the layer widths */
  evalBatchSize?: number;
}

/** The resolved configuration of a run (stored in its checkpoints). */
export interface TrainConfig {
  model: ModelConfig;
  loss: LossKind;
  /** at most this many epochs (early stopping may end sooner) */
  epochs: number;
  batchSize: number;
  /** initial Adam learning rate */
  lr: number;
  /** input dropout probability */
  dropout: number;
  /** rewire the sparse output layer every this many steps (0: never) */
  rewireInterval: number;
  /** fraction of its connections pruned and regrown each time */
  rewireFraction: number;
  /** reduce-on-plateau of test P@3: lr *= factor after more than `patience` epochs without improvement, not below minLr */
  lrFactor: number;
  lrPatience: number;
  minLr: number;
  /** stop after this many epochs without a better test P@3 (the best weights are kept) */
  earlyStopPatience: number;
  propensity: PropensityModel;
  evalBatchSize: number;
}

export const TRAIN_DEFAULTS = {
  setup: 'dense-ffi' as Setup,
  fanIn: DEFAULT_FAN_IN,
  shards: 1,
  seed: 0,
  epochs: 100,
  batchSize: 32,
  lr: 1e-3,
  dropout: 0.1,
  loss: 'squared-hinge' as LossKind,
  rewireInterval: 1000,
  rewireFraction: 0.1,
  lrFactor: 0.5,
  lrPatience: 2,
  minLr: 1e-4,
  earlyStopPatience: 4,
  propensity: PROPENSITY_PRESETS.default as PropensityModel,
};

function integer(option: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new OptionError(option, `must be an integer in [${min}, ${max}], got ${value}`);
  }
  return value;
}

function real(option: string, value: number, check: (v: number) => boolean, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !check(value)) throw new OptionError(option, `must be ${what}, got ${value}`);
  return value;
}

/**
 * Rows per evaluation batch: about 4M floats for the widest layer input
 * (F or a shard's H), between 64 and 1024 rows, a multiple of 32.
 */
export function defaultEvalBatchSize(model: ModelConfig): number {
  let widest = model.inputDim;
  for (let s = 0; s < model.shards; s++) widest = Math.max(widest, planShard(model, s).intermediate?.outputDim ?? 0);
  const rows = Math.floor((1 << 22) / widest / 32) * 32;
  return Math.min(1024, Math.max(64, rows));
}

/** Fills the defaults in and validates everything; `dims` come from the training data. */
export function resolveTrainConfig(options: TrainOptions, dims: { inputDim: number; numLabels: number }): TrainConfig {
  const d = TRAIN_DEFAULTS;
  const setup = options.setup ?? d.setup;
  if (!(SETUPS as readonly string[]).includes(setup)) throw new OptionError('--setup', `unknown setup '${setup}': one of ${SETUPS.join(', ')}`);
  const model: ModelConfig = {
    setup,
    inputDim: dims.inputDim,
    numLabels: dims.numLabels,
    intermediate: options.intermediate ?? defaultIntermediate(setup, dims.numLabels),
    fanIn: options.fanIn ?? (hasSparseOutput(setup) ? d.fanIn : 0),
    shards: options.shards ?? d.shards,
    seed: options.seed ?? d.seed,
  };
  if (options.intermediate !== undefined && !hasIntermediate(setup)) {
    throw new OptionError('--intermediate', `setup ${setup} has no intermediate layer`);
  }
  if (options.fanIn !== undefined && !hasSparseOutput(setup)) {
    throw new OptionError('--fan-in', `setup ${setup} has a dense output layer (no fan-in)`);
  }
  validateModelConfig(model);
  const loss = options.loss ?? d.loss;
  if (!LOSSES.includes(loss)) throw new OptionError('--loss', `unknown loss '${loss}': one of ${LOSSES.join(', ')}`);
  const lr = real('--lr', options.lr ?? d.lr, (v) => v > 0, 'a positive number');
  const config: TrainConfig = {
    model,
    loss,
    epochs: integer('--epochs', options.epochs ?? d.epochs, 1, 100_000),
    batchSize: integer('--batch-size', options.batchSize ?? d.batchSize, 1, 1 << 20),
    lr,
    dropout: real('--dropout', options.dropout ?? d.dropout, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    rewireInterval: integer('--rewire-interval', options.rewireInterval ?? d.rewireInterval, 0),
    rewireFraction: real('--rewire-fraction', options.rewireFraction ?? d.rewireFraction, (v) => v >= 0 && v < 1, 'in [0, 1)'),
    lrFactor: real('--lr-factor', options.lrFactor ?? d.lrFactor, (v) => v > 0 && v <= 1, 'in (0, 1]'),
    lrPatience: integer('--lr-patience', options.lrPatience ?? d.lrPatience, 0),
    minLr: real('--min-lr', options.minLr ?? Math.min(d.minLr, lr), (v) => v > 0 && v <= lr, `a positive number not above --lr (${lr})`),
    earlyStopPatience: integer('--early-stop', options.earlyStopPatience ?? d.earlyStopPatience, 1),
    propensity: options.propensity ?? d.propensity,
    evalBatchSize: 0,
  };
  config.evalBatchSize = integer('--eval-batch-size', options.evalBatchSize ?? defaultEvalBatchSize(model), 1, 1 << 20);
  return config;
}
