/**
 * The wire protocol of a distributed run: NATS subjects, the JetStream
 * stream, and the msgpackr-encoded messages with their validation.
 * docs/DISTRIBUTED.md describes the same in prose; keep the two together.
 *
 * Subjects (R = the run id, [A-Za-z0-9_-]+):
 *
 *   xmc.R.config     JetStream  coordinator -> all    the run's configuration (first message of the run)
 *   xmc.R.control    JetStream  coordinator -> encoder epoch plans (epoch, lr, first step), 'finished'
 *   xmc.R.batch      JetStream  encoder -> workers     training batches, in step order
 *   xmc.R.worker.I   core req.  coordinator -> worker I status / loss report / commit / eval
 *
 * Stream `XMC_R` holds xmc.R.{config,control,batch} (file storage, limits
 * retention, no discard of unconsumed messages): a batch stays until the
 * coordinator purges what every worker has checkpointed past.
 *
 * Every message is a msgpack map with a `type` and the `runId`; typed arrays
 * travel as msgpackr typed-array extensions (`moreTypes`). Decoding never
 * throws: a malformed message gives `{ error: reason }`, which the receiver
 * logs and drops (never a crash).
 */
import { encode, isError, unpackMap, type Decoded } from '../io/wire.js';
import type { DataSpecs } from '../train/trainer.js';
import type { TrainConfig } from '../train/config.js';



export interface RunSubjects {
  stream: string;
  config: string;
  control: string;
  batch: string;
  worker(shard: number): string;
  /** durable consumer name of worker `shard` on the batch subject */
  consumer(shard: number): string;
}

export function runSubjects(runId: string): RunSubjects {
  if (!/^[A-Za-z0-9_-]+$/.test(runId)) throw new Error(`run id '${runId}' must match [A-Za-z0-9_-]+ (it is part of NATS subjects and the stream name)`);
  const p = `xmc.${runId}`;
  return {
    stream: `XMC_${runId}`,
    config: `${p}.config`,
    control: `${p}.control`,
    batch: `${p}.batch`,
    worker: (shard) => `${p}.worker.${shard}`,
    consumer: (shard) => `worker-${shard}`,
  };
}

/** The run as the coordinator publishes it on xmc.R.config. */
export interface ConfigMessage {
  type: 'config';
  runId: string;
  config: TrainConfig;
  data: DataSpecs;
  /** worker count = config.model.shards */
  workers: number;
  /** the encoder never publishes more than this many batches past the slowest worker's acknowledged one */
  maxAhead: number;
  featureDtype: FeatureDtype;
  createdAt: string;
}

export type FeatureDtype = 'float32' | 'float16';

/** One epoch's plan: the encoder publishes its batches with this lr and steps firstStep, firstStep+1, ... */
export interface EpochMessage {
  type: 'epoch';
  runId: string;
  /** 1-based */
  epoch: number;
  lr: number;
  /** global step of the epoch's first batch (1 for the run's first) */
  firstStep: number;
  steps: number;
}

export interface FinishedMessage {
  type: 'finished';
  runId: string;
  reason: 'early-stop' | 'epochs';
}

export type ControlMessage = EpochMessage | FinishedMessage;

/** A training batch: B rows of F features (row-major) and the rows' global label ids as CSR. */
export interface BatchMessage {
  type: 'batch';
  runId: string;
  epoch: number;
  /** 0-based batch index within the epoch; the epoch has `steps` batches */
  index: number;
  steps: number;
  /** global step, 1 for the run's first batch: the Adam step, dropout and rewiring seeds */
  step: number;
  lr: number;
  rows: number;
  cols: number;
  dtype: FeatureDtype;
  /** [rows, cols]: Float32Array, or float16 bits as Uint16Array */
  features: Float32Array | Uint16Array;
  /** [rows + 1] offsets into labelIds */
  labelPtr: Uint32Array;
  labelIds: Uint32Array;
}

/** Requests on xmc.R.worker.I (core NATS request/reply). */
export type WorkerRequest =
  | { type: 'status'; runId: string }
  /** the epoch's per-step losses once the worker has applied `step` (the epoch's last) */
  | { type: 'report'; runId: string; epoch: number; step: number }
  /** checkpoint the shard at `step` (end of epoch `epoch`); with best, also as the best checkpoint */
  | { type: 'commit'; runId: string; epoch: number; step: number; best: boolean }
  /** top-k of this shard for `rows` test rows, once the worker has applied `step` */
  | { type: 'eval'; runId: string; step: number; k: number; rows: number; cols: number; features: Float32Array }
  /** exit (the run is over) */
  | { type: 'shutdown'; runId: string };

export interface WorkerStatus {
  shard: number;
  epoch: number;
  /** last applied step (0 before the first) */
  step: number;
  /** stream sequence of the last applied batch */
  seq: number;
  /** stream sequence recorded in the shard's checkpoint */
  checkpointSeq: number;
}

export type WorkerReply =
  | ({ type: 'status' } & WorkerStatus)
  | { type: 'report'; shard: number; step: number; losses: Float32Array; rewired: number }
  | { type: 'committed'; shard: number; step: number; checkpointSeq: number }
  | { type: 'topk'; shard: number; step: number; rows: number; k: number; labels: Int32Array; scores: Float32Array }
  /** not there yet: the worker has applied `step` only; ask again */
  | { type: 'behind'; shard: number; step: number }
  | { type: 'error'; shard: number; reason: string };

export { encode, isError, type Decoded };

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isPositive = (v: unknown): v is number => isCount(v) && v > 0;

function checkRun(m: Record<string, unknown>, runId: string, type: string): string | null {
  if (m.type !== type) return `type is ${JSON.stringify(m.type)}, expected '${type}'`;
  if (m.runId !== runId) return `run id ${JSON.stringify(m.runId)} is not this run's ('${runId}')`;
  return null;
}

/**
 * A batch for a model of `inputDim` features and `numLabels` labels:
 * checks the dtype, the shapes (features rows x cols, labelPtr rows+1,
 * non-decreasing, ending at labelIds.length) and every label id < numLabels.
 */
export function decodeBatch(data: Uint8Array, runId: string, inputDim: number, numLabels: number): Decoded<BatchMessage> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  const bad = checkRun(m, runId, 'batch');
  if (bad) return { error: bad };
  for (const key of ['epoch', 'steps', 'step', 'rows'] as const) if (!isPositive(m[key])) return { error: `${key} must be a positive integer, got ${JSON.stringify(m[key])}` };
  if (!isCount(m.index) || (m.index as number) >= (m.steps as number)) return { error: `index ${JSON.stringify(m.index)} is not in [0, steps=${m.steps})` };
  if (typeof m.lr !== 'number' || !(m.lr > 0) || !Number.isFinite(m.lr)) return { error: `lr must be a positive number, got ${JSON.stringify(m.lr)}` };
  if (m.cols !== inputDim) return { error: `cols ${JSON.stringify(m.cols)} differs from the model's ${inputDim} input features` };
  const rows = m.rows as number;
  if (m.dtype === 'float32') {
    if (!(m.features instanceof Float32Array)) return { error: 'dtype float32 but features is not a Float32Array' };
  } else if (m.dtype === 'float16') {
    if (!(m.features instanceof Uint16Array)) return { error: 'dtype float16 but features is not a Uint16Array of float16 bits' };
  } else {
    return { error: `unknown feature dtype ${JSON.stringify(m.dtype)} (float32 or float16)` };
  }
  if (m.features.length !== rows * inputDim) return { error: `features has ${m.features.length} values, rows x cols = ${rows} x ${inputDim} = ${rows * inputDim}` };
  const ptr = m.labelPtr;
  const ids = m.labelIds;
  if (!(ptr instanceof Uint32Array) || !(ids instanceof Uint32Array)) return { error: 'labelPtr and labelIds must be Uint32Arrays' };
  if (ptr.length !== rows + 1) return { error: `labelPtr has ${ptr.length} entries, rows + 1 = ${rows + 1}` };
  if (ptr[0] !== 0 || ptr[rows] !== ids.length) return { error: `labelPtr must run from 0 to labelIds.length (${ids.length}), got ${ptr[0]}..${ptr[rows]}` };
  for (let r = 0; r < rows; r++) if (ptr[r + 1] < ptr[r]) return { error: `labelPtr decreases at row ${r}` };
  for (let i = 0; i < ids.length; i++) if (ids[i] >= numLabels) return { error: `label id ${ids[i]} (entry ${i}) is out of range: the model has ${numLabels} labels` };
  return m as unknown as BatchMessage;
}

export function decodeControl(data: Uint8Array, runId: string): Decoded<ControlMessage> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  if (m.type === 'finished') {
    const bad = checkRun(m, runId, 'finished');
    return bad ? { error: bad } : (m as unknown as FinishedMessage);
  }
  const bad = checkRun(m, runId, 'epoch');
  if (bad) return { error: bad };
  for (const key of ['epoch', 'firstStep', 'steps'] as const) if (!isPositive(m[key])) return { error: `${key} must be a positive integer, got ${JSON.stringify(m[key])}` };
  if (typeof m.lr !== 'number' || !(m.lr > 0)) return { error: `lr must be a positive number, got ${JSON.stringify(m.lr)}` };
  return m as unknown as EpochMessage;
}

export function decodeConfig(data: Uint8Array, runId: string): Decoded<ConfigMessage> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  const bad = checkRun(m, runId, 'config');
  if (bad) return { error: bad };
  const c = m.config as TrainConfig | undefined;
  if (!c || typeof c !== 'object' || !c.model || !isPositive(c.model.shards) || !isPositive(c.model.inputDim) || !isPositive(c.model.numLabels)) {
    return { error: 'config.model is missing or has no positive shards/inputDim/numLabels' };
  }
  if (m.workers !== c.model.shards) return { error: `workers ${JSON.stringify(m.workers)} differs from config.model.shards ${c.model.shards}` };
  if (!isPositive(m.maxAhead)) return { error: `maxAhead must be a positive integer, got ${JSON.stringify(m.maxAhead)}` };
  if (m.featureDtype !== 'float32' && m.featureDtype !== 'float16') return { error: `featureDtype ${JSON.stringify(m.featureDtype)} is not float32 or float16` };
  return m as unknown as ConfigMessage;
}

/** A request to worker `shard` of a model with `inputDim` features. */
export function decodeWorkerRequest(data: Uint8Array, runId: string, inputDim: number): Decoded<WorkerRequest> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  if (m.runId !== runId) return { error: `run id ${JSON.stringify(m.runId)} is not this run's ('${runId}')` };
  switch (m.type) {
    case 'status':
    case 'shutdown':
      return m as unknown as WorkerRequest;
    case 'report':
    case 'commit':
      if (!isPositive(m.epoch) || !isCount(m.step)) return { error: `${m.type}: epoch and step must be integers, got ${JSON.stringify([m.epoch, m.step])}` };
      return m as unknown as WorkerRequest;
    case 'eval': {
      if (!isCount(m.step) || !isPositive(m.k) || !isPositive(m.rows)) return { error: 'eval: step, k and rows must be integers (k, rows > 0)' };
      if (m.cols !== inputDim) return { error: `eval: cols ${JSON.stringify(m.cols)} differs from the model's ${inputDim} input features` };
      if (!(m.features instanceof Float32Array)) return { error: 'eval: features must be a Float32Array' };
      if (m.features.length !== (m.rows as number) * inputDim) return { error: `eval: features has ${m.features.length} values, rows x cols = ${(m.rows as number) * inputDim}` };
      return m as unknown as WorkerRequest;
    }
    default:
      return { error: `unknown request type ${JSON.stringify(m.type)}` };
  }
}

/** A worker's reply; top-k replies are checked for shape (rows x k labels and scores). */
export function decodeWorkerReply(data: Uint8Array): Decoded<WorkerReply> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  switch (m.type) {
    case 'topk':
      if (!isPositive(m.rows) || !isPositive(m.k)) return { error: 'topk: rows and k must be positive integers' };
      if (!(m.labels instanceof Int32Array) || !(m.scores instanceof Float32Array)) return { error: 'topk: labels must be an Int32Array and scores a Float32Array' };
      if (m.labels.length !== (m.rows as number) * (m.k as number) || m.scores.length !== m.labels.length) return { error: `topk: labels/scores have ${m.labels.length}/${m.scores.length} entries, rows x k = ${(m.rows as number) * (m.k as number)}` };
      return m as unknown as WorkerReply;
    case 'report':
      if (!(m.losses instanceof Float32Array)) return { error: 'report: losses must be a Float32Array' };
      return m as unknown as WorkerReply;
    case 'status': case 'committed': case 'behind': case 'error':
      return m as unknown as WorkerReply;
    default:
      return { error: `unknown reply type ${JSON.stringify(m.type)}` };
  }
}
