/**
 * The single-process trainer: epochs of seeded shuffled batches, one
 * training step (~10 native ops) enqueued per batch, rewiring every N steps,
 * test evaluation after every epoch, schedule and early stopping on test
 * P@3, checkpoints and the metrics history in the run directory.
 *
 * Reproducibility: the data order depends on (seed, epoch), the dropout mask
 * on (seed, step), rewiring on (seed, shard, step), and everything else the
 * step needs (weights, Adam moments, lr, counters) is in the checkpoint, so a
 * run resumed from its end-of-epoch checkpoint gives exactly the weights and
 * metrics of an uninterrupted run (same backend, same thread count).
 *
 * Pacing: after enqueuing step t the loop waits for step t-1 to finish, so
 * the host prepares the next batch while the backend computes, and the queue
 * never holds more than two steps. Each shard's loss goes into one of
 * LOSS_READ_EVERY [1] tensors, read back together every LOSS_READ_EVERY steps.
 */
import { join } from 'node:path';
import { batchCount, batchIndices } from '../data/batches.js';
import type { Dataset } from '../data/types.js';
import { DataFormatError, XmcError } from '../errors.js';
import type { DatasetSpec } from '../data/load.js';
import { writeTextAtomically } from '../io/files.js';
import { inversePropensities } from '../metrics/propensity.js';
import type { Backend, FloatTensor } from '../native/backend.js';
import { readCheckpoint, writeCheckpoint, type Checkpoint } from '../model/checkpoint.js';
import { InputWriter, labelTensors, prepareFeatures } from '../model/inputs.js';
import { Model, estimateMemory, type MemoryEstimate } from '../model/model.js';
import type { TrainConfig } from './config.js';
import { SELECTION_METRIC, evaluateModel, METRIC_NAMES } from './evaluate.js';
import { silentReporter, type EpochRecord, type TrainReporter } from './progress.js';
import { initialSchedule, scheduleFromJson, scheduleToJson, updateSchedule, type ScheduleState } from './schedule.js';

/** Files of a run directory. */
export const RUN_FILES = {
  config: 'config.json',
  metrics: 'metrics.jsonl',
  last: 'checkpoint-last.ckpt',
  best: 'checkpoint-best.ckpt',
  summary: 'summary.json',
} as const;

/** Steps between two read-backs of the loss. */
export const LOSS_READ_EVERY = 50;

/**
 * The mean epoch loss from per-shard, per-step loss values
 * (`perShard[s][i]`: shard s's loss at the epoch's step i), summed in the
 * order the loop of `train` sums them (chunks of LOSS_READ_EVERY steps,
 * step-major then shard, each chunk summed from 0 and added to the total):
 * the distributed coordinator gets bit-identical epoch losses this way.
 */
export function meanEpochLoss(perShard: readonly ArrayLike<number>[], steps: number): number {
  let total = 0;
  for (let start = 0; start < steps; start += LOSS_READ_EVERY) {
    let chunk = 0;
    for (let i = start; i < Math.min(steps, start + LOSS_READ_EVERY); i++) for (const losses of perShard) chunk += losses[i];
    total += chunk;
  }
  return total / Math.max(steps, 1);
}

export type StopReason = 'early-stop' | 'epochs';

export interface TrainerState {
  /** completed epochs */
  epochsDone: number;
  /** completed steps (the last Adam step number) */
  step: number;
  schedule: ScheduleState;
  history: EpochRecord[];
  finished: StopReason | null;
}

/** The `meta` of a checkpoint file of a run. */
export interface RunCheckpointMeta {
  /** 'last': full state at the end of an epoch (resume); 'best': parameters of the best epoch (predict) */
  kind: 'last' | 'best';
  config: TrainConfig;
  data: DataSpecs | null;
  state: Omit<TrainerState, 'schedule'> & { schedule: Record<string, unknown> };
  /** the random state: stateless streams derived from the seed (see src/model/init.ts) */
  rng: { seed: number; streams: string };
  savedAt: string;
}

export interface DataSpecs {
  train: DatasetSpec;
  test: DatasetSpec;
}

export interface TrainEnv {
  backend: Backend;
  outDir: string;
  /** how the data was given, recorded for resume and predict */
  dataSpecs?: DataSpecs;
  /** continue from this `last` checkpoint */
  resumeFrom?: Checkpoint<RunCheckpointMeta>;
  reporter?: TrainReporter;
  /** the --gpu-memory-limit in force and what the configuration was computed to need (bytes) */
  gpuMemory?: { limit: number; needed: number };
}

export interface TrainResult {
  /** the trained model, holding the best epoch's weights */
  model: Model;
  config: TrainConfig;
  history: EpochRecord[];
  best: EpochRecord | null;
  stoppedBy: StopReason;
  memory: { estimate: MemoryEstimate; peakBytes: number };
  /** wall time of this invocation */
  seconds: number;
  outDir: string;
}

const RNG_STREAMS = 'data order: epochOrder(n, seed, epoch); dropout: (seed, step); rewiring: (seed, shard, step); init: (seed, shard, layer)';

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${v.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

function stateToJson(state: TrainerState): RunCheckpointMeta['state'] {
  return { ...state, schedule: scheduleToJson(state.schedule) };
}

export function stateFromJson(json: RunCheckpointMeta['state']): TrainerState {
  return { ...json, schedule: scheduleFromJson(json.schedule) };
}

/** The history as JSONL: one line per epoch, metrics as fractions. */
export function metricsJsonl(history: readonly EpochRecord[]): string {
  return history.map((r) => JSON.stringify({
    epoch: r.epoch, step: r.step, lr: r.lr, loss: r.loss, ...r.metrics, seconds: Number(r.seconds.toFixed(3)),
  }) + '\n').join('');
}

/** Trains (or continues) a run; see the module comment. */
export async function train(config: TrainConfig, data: { train: Dataset; test: Dataset }, env: TrainEnv): Promise<TrainResult> {
  const started = performance.now();
  const { backend, outDir } = env;
  const reporter = env.reporter ?? silentReporter;
  const mc = config.model;
  const trainFeatures = prepareFeatures(data.train.features, mc.inputDim, data.train.source);
  const testFeatures = prepareFeatures(data.test.features, mc.inputDim, data.test.source);
  for (const [d, name] of [[data.train, 'training'], [data.test, 'test']] as const) {
    if (d.labels.cols > mc.numLabels) {
      throw new DataFormatError({ file: d.source }, `has ${d.labels.cols} labels, the model has ${mc.numLabels}`);
    }
    if (d.labels.rows !== d.features.rows) throw new XmcError(`${name} data ${d.source}: ${d.features.rows} feature rows but ${d.labels.rows} label rows`);
  }
  const invProp = inversePropensities(data.train.labels, config.propensity, data.train.labels.rows);
  const padded = new Float64Array(mc.numLabels).fill(1);
  padded.set(invProp);

  // The model: fresh, or filled from the checkpoint.
  let state: TrainerState;
  let model: Model;
  if (env.resumeFrom) {
    model = new Model(backend, mc, false);
    try {
      model.load(env.resumeFrom.sections, true);
    } catch (err) {
      model.dispose();
      throw new DataFormatError({ file: env.resumeFrom.path }, (err as Error).message, { cause: err });
    }
    state = stateFromJson(env.resumeFrom.meta.state);
    if (state.finished === 'early-stop') {
      reporter.message(`run ${outDir} already ended by early stopping after epoch ${state.epochsDone}; nothing to resume`);
    } else if (state.epochsDone >= config.epochs) {
      reporter.message(`run ${outDir} already has ${state.epochsDone} epochs (--epochs ${config.epochs}): nothing to train; raise --epochs to continue it`);
    } else {
      state.finished = null;
      reporter.message(`resuming ${outDir} after epoch ${state.epochsDone} (step ${state.step})`);
    }
  } else {
    model = new Model(backend, mc, true);
    state = { epochsDone: 0, step: 0, schedule: initialSchedule(config.lr), history: [], finished: null };
  }

  const estimate = estimateMemory(mc, config.batchSize, config.evalBatchSize);
  reporter.message(`model ${model.describe()}`);
  reporter.message(`memory estimate: ${formatBytes(estimate.total)} (parameters ${formatBytes(estimate.parameters)}, `
    + `gradients ${formatBytes(estimate.gradients)}, Adam moments ${formatBytes(estimate.optimiser)}, `
    + `activations ${formatBytes(estimate.trainActivations + estimate.evalActivations + estimate.inputs)}; backend scratch on top)`);
  if (env.gpuMemory) {
    reporter.message(`GPU memory limit ${formatBytes(env.gpuMemory.limit)}: this configuration needs about `
      + `${formatBytes(env.gpuMemory.needed)} with the CUDA backend's op scratch; allocations past the limit fail`);
  }

  if (!env.resumeFrom) {
    await writeTextAtomically(join(outDir, RUN_FILES.config), JSON.stringify({
      description: model.describe(), config, data: env.dataSpecs ?? null, createdAt: new Date().toISOString(),
    }, null, 2) + '\n');
  }

  const checkpointMeta = (kind: 'last' | 'best'): RunCheckpointMeta => ({
    kind, config, data: env.dataSpecs ?? null, state: stateToJson(state),
    rng: { seed: mc.seed, streams: RNG_STREAMS }, savedAt: new Date().toISOString(),
  });

  const inputs = new InputWriter(backend, mc.inputDim);
  const lossRing: FloatTensor[][] = Array.from({ length: LOSS_READ_EVERY }, () => model.shards.map(() => backend.tensor('float32', [1])));
  const readLosses = async (count: number): Promise<number> => {
    const values = await Promise.all(lossRing.slice(0, count).flat().map((t) => t.read()));
    let sum = 0;
    for (const v of values) sum += v[0];
    return sum;
  };

  const n = trainFeatures.rows;
  const steps = batchCount(n, config.batchSize);
  try {
    while (state.finished === null && state.epochsDone < config.epochs) {
      const epoch = state.epochsDone + 1;
      const epochStart = performance.now();
      const lr = state.schedule.lr;
      let lossSum = 0;
      let lossSteps = 0;
      let ringUsed = 0;
      let samples = 0;
      let stepInEpoch = 0;
      let rewired = 0;
      let pending: Promise<void> | null = null;
      for (const rows of batchIndices(n, { batchSize: config.batchSize, seed: mc.seed, epoch: epoch - 1 })) {
        const step = state.step + 1;
        const x = inputs.write(trainFeatures, rows);
        const labels = labelTensors(backend, data.train.labels, rows);
        model.trainStep(x, labels.ptr, labels.ids, { step, lr, loss: config.loss, dropout: config.dropout, lossOut: lossRing[ringUsed] });
        labels.ptr.dispose();
        labels.ids.dispose();
        if (config.rewireInterval > 0 && step % config.rewireInterval === 0) rewired += model.rewire(step, config.rewireFraction);
        state.step = step;
        stepInEpoch++;
        samples += rows.length;
        ringUsed++;
        if (ringUsed === LOSS_READ_EVERY) {
          lossSum += await readLosses(ringUsed);
          lossSteps += ringUsed;
          ringUsed = 0;
          if (!Number.isFinite(lossSum)) throw new XmcError(`training diverged: the loss is ${lossSum} by step ${step} (epoch ${epoch}); try a lower --lr`);
        }
        const done = backend.sync();
        done.catch(() => undefined); // awaited on the next step; keeps an early failure from being reported as unhandled
        if (pending) await pending;
        pending = done;
        reporter.step({ epoch, epochs: config.epochs, step: stepInEpoch, steps, samples, elapsedSeconds: (performance.now() - epochStart) / 1000, loss: lossSteps ? lossSum / lossSteps : null });
      }
      if (pending) await pending;
      lossSum += await readLosses(ringUsed);
      lossSteps += ringUsed;
      const trainSeconds = (performance.now() - epochStart) / 1000;
      const loss = lossSum / Math.max(lossSteps, 1);
      if (!Number.isFinite(loss)) throw new XmcError(`training diverged: the mean loss of epoch ${epoch} is ${loss}; try a lower --lr`);

      const evalStart = performance.now();
      const metrics = await evaluateModel(backend, model, testFeatures, data.test.labels, { batchRows: config.evalBatchSize, inversePropensities: padded });
      const evalSeconds = (performance.now() - evalStart) / 1000;

      const update = updateSchedule(state.schedule, config, epoch, metrics[SELECTION_METRIC]);
      state.epochsDone = epoch;
      if (update.stop) state.finished = 'early-stop';
      else if (epoch >= config.epochs) state.finished = 'epochs';
      const record: EpochRecord = {
        epoch, step: state.step, lr, loss, metrics, seconds: trainSeconds + evalSeconds, trainSeconds, evalSeconds,
        samplesPerSecond: samples / Math.max(trainSeconds, 1e-9), rewired,
      };
      state.history.push(record);
      if (update.improved) await writeCheckpoint(join(outDir, RUN_FILES.best), checkpointMeta('best'), model.sections(false));
      await writeCheckpoint(join(outDir, RUN_FILES.last), checkpointMeta('last'), model.sections(true));
      await writeTextAtomically(join(outDir, RUN_FILES.metrics), metricsJsonl(state.history));

      const notes: string[] = [];
      if (update.improved) notes.push('best');
      if (update.reduced) notes.push(`lr -> ${state.schedule.lr.toPrecision(3)}`);
      if (update.stop) notes.push(`early stop: no better ${SELECTION_METRIC} for ${config.earlyStopPatience} epochs`);
      reporter.epochEnd(record, config.epochs, notes);
    }
  } catch (err) {
    inputs.dispose();
    for (const ring of lossRing) for (const t of ring) t.dispose();
    model.dispose();
    throw err;
  }
  inputs.dispose();
  for (const ring of lossRing) for (const t of ring) t.dispose();

  // The result is the best epoch's weights.
  const bestEpoch = state.schedule.bestEpoch;
  if (bestEpoch > 0 && bestEpoch !== state.epochsDone) {
    const best = await readCheckpoint<RunCheckpointMeta>(join(outDir, RUN_FILES.best));
    model.load(best.sections, false);
    reporter.message(`restored the weights of the best epoch, ${bestEpoch}`);
  }
  await backend.sync();
  const peakBytes = backend.memoryStats().peakBytes;
  const best = state.history.find((r) => r.epoch === bestEpoch) ?? null;
  const seconds = (performance.now() - started) / 1000;
  const stoppedBy: StopReason = state.finished ?? 'epochs';
  reporter.message(`memory: estimated ${formatBytes(estimate.total)}, measured peak ${formatBytes(peakBytes)} (backend.memoryStats)`);
  if (best) {
    reporter.message(`best epoch ${best.epoch}: ${METRIC_NAMES.map((m) => `${m} ${(100 * best.metrics[m]).toFixed(2)}`).join('  ')}`);
  }
  await writeTextAtomically(join(outDir, RUN_FILES.summary), JSON.stringify({
    description: model.describe(),
    stoppedBy,
    epochs: state.epochsDone,
    steps: state.step,
    bestEpoch: best?.epoch ?? null,
    best: best ? { ...best.metrics, loss: best.loss, lr: best.lr } : null,
    memory: { estimateBytes: estimate, peakBytes },
    seconds,
    backend: { kind: backend.kind, threads: backend.threads },
  }, null, 2) + '\n');
  return { model, config, history: state.history, best, stoppedBy, memory: { estimate, peakBytes }, seconds, outDir };
}
