/**
 * A training run from files: the run directory, the data, the backend and
 * resuming. This is what `xmc train` calls; `loadRunModel` is what
 * `xmc predict` calls.
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadDataset, type DatasetSpec } from '../data/load.js';
import type { Dataset } from '../data/types.js';
import { CudaUnavailableError, DataFormatError, OptionError } from '../errors.js';
import { createBackend, type Backend } from '../native/backend.js';
import { readCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { Model } from '../model/model.js';
import { resolveTrainConfig, type TrainConfig, type TrainOptions } from './config.js';
import { checkGpuMemoryLimit } from './memory-limit.js';
import type { TrainReporter } from './progress.js';
import { RUN_FILES, train, type DataSpecs, type RunCheckpointMeta, type TrainResult } from './trainer.js';

export type Device = 'cpu' | 'cuda' | 'auto';

/**
 * Backend options that the commands expose (docs/BACKEND.md): faster, less exact arithmetic, and a memory limit.
 * All but int8TopK apply to the CUDA backend only: with --device cpu they are an error; where --device auto falls
 * back to the CPU they have no effect (a warning says so).
 */
export interface GpuOptions {
  /** --gpu-memory-limit: bytes the backend may hold */
  gpuMemoryLimit?: number;
  /** --tf32: dense products on TF32 tensor cores */
  tf32?: boolean;
  /** --bf16-gathers: the fused FFI kernels read their input as bfloat16 */
  bf16Gathers?: boolean;
  /** --int8-topk: the top-k (k <= 16) uses its input rounded to int8 per row (inference; both backends, see BackendOptions) */
  int8TopK?: boolean;
}

/** The options that apply to the CUDA backend only (int8TopK works on both). */
const GPU_FLAGS: Record<Exclude<keyof GpuOptions, 'int8TopK'>, string> = {
  gpuMemoryLimit: '--gpu-memory-limit', tf32: '--tf32', bf16Gathers: '--bf16-gathers',
};

/** The flags of the CUDA-only options that are set. */
function gpuFlagsGiven(gpu: GpuOptions): string[] {
  return (Object.keys(GPU_FLAGS) as (keyof typeof GPU_FLAGS)[]).filter((key) => gpu[key] !== undefined && gpu[key] !== false).map((key) => GPU_FLAGS[key]);
}

/** OptionError naming the first CUDA-only option given with --device cpu. */
export function checkGpuOptions(device: Device, gpu: GpuOptions): void {
  const given = gpuFlagsGiven(gpu);
  if (given.length > 0 && device === 'cpu') throw new OptionError(given[0], 'applies to the CUDA backend, and --device cpu was given');
}

/** The backend for `--device`: cuda fails with CudaUnavailableError where it cannot run; auto falls back to cpu. */
export function createDeviceBackend(device: Device, threads?: number, gpu: GpuOptions = {}): Backend {
  checkGpuOptions(device, gpu);
  const options = {
    ...(threads === undefined ? {} : { threads }),
    ...(gpu.gpuMemoryLimit === undefined ? {} : { memoryLimit: gpu.gpuMemoryLimit }),
    ...(gpu.tf32 ? { tf32: true } : {}),
    ...(gpu.bf16Gathers ? { bf16Gathers: true } : {}),
    ...(gpu.int8TopK ? { int8TopK: true } : {}),
  };
  if (device === 'cpu') return createBackend('cpu', options);
  if (device === 'cuda') return createBackend('cuda', options);
  try {
    return createBackend('cuda', options);
  } catch (err) {
    if (!(err instanceof CudaUnavailableError)) throw err;
    const given = gpuFlagsGiven(gpu);
    if (given.length > 0) {
      process.emitWarning(`${given.join(', ')} ha${given.length === 1 ? 's' : 've'} no effect: --device auto runs on the CPU (${err.message})`, 'XmcWarning');
    }
    return createBackend('cpu', options);
  }
}

export interface RunOptions {
  /** training data (required unless resuming, where the run's own is the default) */
  train?: DatasetSpec;
  test?: DatasetSpec;
  /** the run directory */
  out: string;
  resume?: boolean;
  device?: Device;
  threads?: number;
  /** the options the caller set explicitly; the rest take the defaults (or, resuming, the run's values) */
  options?: TrainOptions;
  reporter?: TrainReporter;
  /** bytes of GPU memory the run may use (CUDA backend): checked before anything is allocated, enforced by the allocator */
  gpuMemoryLimit?: number;
  /** CUDA backend: TF32 dense products, bfloat16 gathers in the fused FFI kernels */
  tf32?: boolean;
  bf16Gathers?: boolean;
  /** use this backend instead of creating one from device/threads */
  backend?: Backend;
}

const FLAGS: Record<keyof TrainOptions, string> = {
  setup: '--setup', fanIn: '--fan-in', intermediate: '--intermediate', shards: '--shards', seed: '--seed',
  epochs: '--epochs', batchSize: '--batch-size', lr: '--lr', dropout: '--dropout', loss: '--loss',
  rewireInterval: '--rewire-interval', rewireFraction: '--rewire-fraction', lrFactor: '--lr-factor',
  lrPatience: '--lr-patience', minLr: '--min-lr', earlyStopPatience: '--early-stop', propensity: '--propensity',
  evalBatchSize: '--eval-batch-size',
};

/** Options that may differ when resuming: they do not change the result. */
const RESUMABLE: ReadonlySet<keyof TrainOptions> = new Set(['epochs', 'evalBatchSize']);

function storedValue(config: TrainConfig, key: keyof TrainOptions): unknown {
  if (key === 'setup' || key === 'fanIn' || key === 'intermediate' || key === 'shards' || key === 'seed') return config.model[key];
  return config[key];
}

function absoluteSpec(spec: DatasetSpec): DatasetSpec {
  if (typeof spec === 'string') return resolve(spec);
  if ('xc' in spec) return { xc: resolve(spec.xc) };
  return { features: resolve(spec.features), labels: resolve(spec.labels) };
}

/** Data dimensions of a training/test pair: F and L (the larger of the two label counts; sparse features likewise). */
export function dataDims(trainSet: Dataset, testSet: Dataset): { inputDim: number; numLabels: number } {
  const inputDim = trainSet.features.kind === 'csr' && testSet.features.kind === 'csr'
    ? Math.max(trainSet.features.cols, testSet.features.cols)
    : trainSet.features.cols;
  return { inputDim, numLabels: Math.max(trainSet.labels.cols, testSet.labels.cols) };
}

/** Trains a new run in `out`, or continues the one there with `resume`. */
export async function runTraining(run: RunOptions): Promise<TrainResult> {
  const outDir = resolve(run.out);
  const options = run.options ?? {};
  const lastPath = join(outDir, RUN_FILES.last);
  let resumeFrom: Checkpoint<RunCheckpointMeta> | undefined;
  if (run.resume) {
    if (!existsSync(lastPath)) throw new OptionError('--resume', `${outDir} holds no ${RUN_FILES.last} to resume from`);
    resumeFrom = await readCheckpoint<RunCheckpointMeta>(lastPath);
    if (resumeFrom.meta?.kind !== 'last') throw new DataFormatError({ file: lastPath }, 'is not an end-of-epoch (last) checkpoint');
    const stored = resumeFrom.meta.config;
    for (const [key, value] of Object.entries(options) as [keyof TrainOptions, unknown][]) {
      if (value === undefined || RESUMABLE.has(key)) continue;
      const was = storedValue(stored, key);
      if (JSON.stringify(was) !== JSON.stringify(value)) {
        throw new OptionError(FLAGS[key], `${JSON.stringify(value)} differs from the run being resumed (${JSON.stringify(was)}); a resumed run keeps its configuration (only --epochs may change)`);
      }
    }
  } else if (existsSync(lastPath)) {
    throw new OptionError('--out', `${outDir} already holds a run (${RUN_FILES.last}): pass --resume to continue it, or choose another directory`);
  }

  const backend = run.backend ??
    createDeviceBackend(run.device ?? 'auto', run.threads, { gpuMemoryLimit: run.gpuMemoryLimit, tf32: run.tf32, bf16Gathers: run.bf16Gathers });
  const trainSpec = run.train ?? resumeFrom?.meta.data?.train;
  const testSpec = run.test ?? resumeFrom?.meta.data?.test;
  if (trainSpec === undefined) throw new OptionError('--train', 'is required');
  if (testSpec === undefined) throw new OptionError('--test', 'is required');
  const dataSpecs: DataSpecs = { train: absoluteSpec(trainSpec), test: absoluteSpec(testSpec) };
  const [trainSet, testSet] = [await loadDataset(dataSpecs.train), await loadDataset(dataSpecs.test)];
  const dims = dataDims(trainSet, testSet);

  let config: TrainConfig;
  if (resumeFrom) {
    const stored = resumeFrom.meta.config;
    if (stored.model.inputDim !== dims.inputDim || stored.model.numLabels !== dims.numLabels) {
      throw new DataFormatError({ file: trainSet.source }, `the data has ${dims.inputDim} features and ${dims.numLabels} labels, the run being resumed was trained on ${stored.model.inputDim} and ${stored.model.numLabels}`);
    }
    config = { ...stored, epochs: options.epochs ?? stored.epochs, evalBatchSize: options.evalBatchSize ?? stored.evalBatchSize };
    if (!Number.isSafeInteger(config.epochs) || config.epochs < 1) throw new OptionError('--epochs', `must be a positive integer, got ${config.epochs}`);
    if (!Number.isSafeInteger(config.evalBatchSize) || config.evalBatchSize < 1) throw new OptionError('--eval-batch-size', `must be a positive integer, got ${config.evalBatchSize}`);
  } else {
    config = resolveTrainConfig(options, dims);
  }

  let gpuMemory: { limit: number; needed: number } | undefined;
  if (run.gpuMemoryLimit !== undefined) {
    if (backend.kind === 'cuda') {
      gpuMemory = { limit: run.gpuMemoryLimit, needed: checkGpuMemoryLimit(config, run.gpuMemoryLimit).total };
    } else {
      run.reporter?.message('--gpu-memory-limit is ignored: no GPU is in use (--device auto chose the CPU backend)');
    }
  }

  await mkdir(outDir, { recursive: true });
  return train(config, { train: trainSet, test: testSet }, { backend, outDir, dataSpecs, resumeFrom, reporter: run.reporter, gpuMemory });
}

/** The model of a run directory: the best epoch's weights (or the last checkpoint's when there is no best yet). */
export async function loadRunModel(backend: Backend, runDir: string): Promise<{ model: Model; config: TrainConfig; checkpoint: Checkpoint<RunCheckpointMeta> }> {
  const bestPath = join(runDir, RUN_FILES.best);
  const lastPath = join(runDir, RUN_FILES.last);
  const path = existsSync(bestPath) ? bestPath : lastPath;
  if (!existsSync(path)) throw new OptionError('--run', `${runDir} holds no checkpoint (${RUN_FILES.best} or ${RUN_FILES.last})`);
  const checkpoint = await readCheckpoint<RunCheckpointMeta>(path);
  const config = checkpoint.meta?.config;
  if (!config?.model) throw new DataFormatError({ file: path }, 'has no model configuration in its header');
  const model = new Model(backend, config.model, false);
  try {
    model.load(checkpoint.sections, false);
  } catch (err) {
    model.dispose();
    throw new DataFormatError({ file: path }, (err as Error).message, { cause: err });
  }
  return { model, config, checkpoint };
}
