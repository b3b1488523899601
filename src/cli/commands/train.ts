/**
 * `xmc train`: trains one of the paper's setups in this process (CPU or one
 * GPU), with label shards if asked; docs/TRAINING.md has the details.
 */
import type { Command } from '../command.js';
import { parseByteSize } from '../../train/memory-limit.js';
import { choiceOption, numberOption, parseOptions } from '../command.js';
import { OptionError } from '../../errors.js';
import type { DatasetSpec } from '../../data/load.js';
import { parsePropensityModel } from '../../metrics/propensity.js';
import { SETUPS, type Setup } from '../../model/config.js';
import { LOSSES, TRAIN_DEFAULTS, type TrainOptions } from '../../train/config.js';
import { ConsoleReporter } from '../../train/progress.js';
import { runTraining, type Device } from '../../train/run.js';
import { RUN_FILES } from '../../train/trainer.js';
import type { LossKind } from '../../native/backend.js';

const D = TRAIN_DEFAULTS;

const HELP = `usage: xmc train --train FILE --test FILE --out RUN_DIR [options]

Trains a model and evaluates it on the test set after every epoch (P@1/3/5,
nDCG@3/5, PSP@3/5); keeps the best epoch's weights (by test P@3).

data:
  --train FILE              training data: XC text file, or labels (sparse text / XC) with --train-features
  --test FILE               test data, the same way (with --test-features)
  --train-features FILE     features of --train: .npy (dense) or sparse text
  --test-features FILE      features of --test
  --propensity MODEL        PSP propensities: default | amazon | wikipedia | A,B (default: default)

model:
  --setup NAME              ${SETUPS.join(' | ')} (default ${D.setup})
  --fan-in K                connections per label of the sparse output layer (default ${D.fanIn})
  --intermediate H          intermediate units over all shards (default: 4096 up to 100k labels,
                            16384 up to 1M, 32768 beyond; bottleneck: 64)
  --shards S                label shards, each a complete sub-model with H/S units (default 1)
  --seed N                  seeds initialisation, data order, dropout and rewiring (default ${D.seed})

training:
  --epochs N                at most N epochs (default ${D.epochs}; early stopping may end sooner)
  --batch-size B            (default ${D.batchSize})
  --lr LR                   Adam learning rate (default ${D.lr})
  --dropout P               input dropout (default ${D.dropout})
  --loss NAME               ${LOSSES.join(' | ')} (default ${D.loss})
  --rewire-interval N       rewire the sparse layer every N steps, 0 = never (default ${D.rewireInterval})
  --rewire-fraction F       fraction of connections pruned and regrown (default ${D.rewireFraction})
  --lr-factor F             reduce-on-plateau of test P@3: factor (default ${D.lrFactor})
  --lr-patience N           ... after more than N epochs without improvement (default ${D.lrPatience})
  --min-lr LR               ... not below (default ${D.minLr})
  --early-stop N            stop after N epochs without a better test P@3 (default ${D.earlyStopPatience})
  --eval-batch-size N       rows per evaluation batch (default: from the layer widths)

run:
  --out RUN_DIR             run directory: ${Object.values(RUN_FILES).join(', ')}
  --resume                  continue the run in RUN_DIR from its last checkpoint (data and options
                            default to the run's; only --epochs may change)
  --device cpu|cuda|auto    (default auto: cuda when available, else cpu)
  --threads T               CPU threads (default: all)
  --gpu-memory-limit SIZE   GPU memory the run may use, e.g. 4GiB (CUDA backend): a configuration that
                            needs more is refused before anything is allocated, saying what would fit
  --tf32                    CUDA: dense products on TF32 tensor cores (faster; about 1e-3 relative error)
  --bf16-gathers            CUDA: the fused FFI kernels read the layer input as bfloat16 (about 4e-3
                            relative error in the scores)`;

const OPTIONS = {
  train: { type: 'string' },
  test: { type: 'string' },
  'train-features': { type: 'string' },
  'test-features': { type: 'string' },
  propensity: { type: 'string' },
  setup: { type: 'string' },
  'fan-in': { type: 'string' },
  intermediate: { type: 'string' },
  shards: { type: 'string' },
  seed: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  lr: { type: 'string' },
  dropout: { type: 'string' },
  loss: { type: 'string' },
  'rewire-interval': { type: 'string' },
  'rewire-fraction': { type: 'string' },
  'lr-factor': { type: 'string' },
  'lr-patience': { type: 'string' },
  'min-lr': { type: 'string' },
  'early-stop': { type: 'string' },
  'eval-batch-size': { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  device: { type: 'string' },
  threads: { type: 'string' },
  'gpu-memory-limit': { type: 'string' },
  tf32: { type: 'boolean' },
  'bf16-gathers': { type: 'boolean' },
} as const;

type Values = ReturnType<typeof parseOptions<typeof OPTIONS>>['values'];

/** An optional number option: undefined when not given. */
function optional(name: string, value: string | undefined, limits: { min?: number; max?: number; integer?: boolean }): number | undefined {
  return value === undefined ? undefined : numberOption(name, value, NaN, limits);
}

function positive(name: string, value: string | undefined): number | undefined {
  const v = optional(name, value, {});
  if (v !== undefined && !(v > 0)) throw new OptionError(name, `must be positive, got ${value}`);
  return v;
}

/** The data spec of --train/--test with their --*-features companions. */
export function dataSpec(option: string, labels: string | undefined, features: string | undefined): DatasetSpec | undefined {
  if (features !== undefined) {
    if (labels === undefined) throw new OptionError(option, `is required with ${option}-features (it gives the labels)`);
    return { features, labels };
  }
  return labels;
}

/** The training options set on the command line (the rest stay undefined: defaults, or the resumed run's). */
export function trainOptions(v: Values): TrainOptions {
  const setup = v.setup === undefined ? undefined : choiceOption<Setup>('--setup', v.setup, D.setup, SETUPS);
  const loss = v.loss === undefined ? undefined : choiceOption<LossKind>('--loss', v.loss, D.loss, LOSSES);
  const options: TrainOptions = {
    setup,
    fanIn: optional('--fan-in', v['fan-in'], { min: 1, integer: true }),
    intermediate: optional('--intermediate', v.intermediate, { min: 1, integer: true }),
    shards: optional('--shards', v.shards, { min: 1, integer: true }),
    seed: optional('--seed', v.seed, { min: 0, max: Number.MAX_SAFE_INTEGER, integer: true }),
    epochs: optional('--epochs', v.epochs, { min: 1, integer: true }),
    batchSize: optional('--batch-size', v['batch-size'], { min: 1, integer: true }),
    lr: positive('--lr', v.lr),
    dropout: optional('--dropout', v.dropout, { min: 0, max: 0.999999 }),
    loss,
    rewireInterval: optional('--rewire-interval', v['rewire-interval'], { min: 0, integer: true }),
    rewireFraction: optional('--rewire-fraction', v['rewire-fraction'], { min: 0, max: 0.999999 }),
    lrFactor: optional('--lr-factor', v['lr-factor'], { min: 1e-9, max: 1 }),
    lrPatience: optional('--lr-patience', v['lr-patience'], { min: 0, integer: true }),
    minLr: positive('--min-lr', v['min-lr']),
    earlyStopPatience: optional('--early-stop', v['early-stop'], { min: 1, integer: true }),
    propensity: v.propensity === undefined ? undefined : parsePropensityModel(v.propensity, '--propensity'),
    evalBatchSize: optional('--eval-batch-size', v['eval-batch-size'], { min: 1, integer: true }),
  };
  for (const key of Object.keys(options) as (keyof TrainOptions)[]) if (options[key] === undefined) delete options[key];
  return options;
}

export const command: Command = {
  help: HELP,
  async run(args: string[]): Promise<number> {
    const { values: v } = parseOptions(args, OPTIONS);
    if (v.out === undefined || v.out === '') throw new OptionError('--out', 'is required (the run directory)');
    const device = choiceOption<Device>('--device', v.device, 'auto', ['cpu', 'cuda', 'auto']);
    const threads = optional('--threads', v.threads, { min: 1, max: 1024, integer: true });
    const options = trainOptions(v);
    const gpuMemoryLimit = v['gpu-memory-limit'] === undefined ? undefined : parseByteSize('--gpu-memory-limit', v['gpu-memory-limit']);
    const reporter = new ConsoleReporter(process.stderr);
    const result = await runTraining({
      train: dataSpec('--train', v.train, v['train-features']),
      test: dataSpec('--test', v.test, v['test-features']),
      out: v.out,
      resume: v.resume ?? false,
      device,
      threads,
      gpuMemoryLimit,
      tf32: v.tf32,
      bf16Gathers: v['bf16-gathers'],
      options,
      reporter,
    });
    result.model.dispose();
    const best = result.best;
    process.stdout.write(`${result.outDir}: ${result.history.length} epochs, stopped by ${result.stoppedBy}`
      + (best ? `; best epoch ${best.epoch}: P@1 ${(100 * best.metrics['P@1']).toFixed(2)}, P@3 ${(100 * best.metrics['P@3']).toFixed(2)}, P@5 ${(100 * best.metrics['P@5']).toFixed(2)}` : '')
      + '\n');
    return 0;
  },
};
