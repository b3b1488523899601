/**
 * The wire protocol of the inference service: NATS subjects and services,
 * the gateway <-> shard worker messages (msgpackr), and the client request
 * (HTTP JSON body, or the same JSON on the gateway's NATS endpoint) with its
 * validation. docs/SERVING.md describes the same in prose.
 *
 * Subjects (M = the model name, [A-Za-z0-9_-]+, default the run directory's
 * base name):
 *
 *   xmc.serve.M.shard.I   service xmc-serve-shard, endpoint "predict"   gateway -> shard worker I
 *   xmc.serve.M.predict   service xmc-serve, endpoint "predict"         client -> gateway (JSON)
 *
 * Both are NATS services (@nats-io/services): `$SRV.PING|INFO|STATS` discover
 * them and report request counts, errors and processing time. Several
 * workers of one shard share the endpoint's queue group: a replica takes
 * over when one stops.
 *
 * Gateway -> worker messages are msgpack maps with typed arrays (msgpackr
 * `moreTypes`). Rows arrive prepared: L2-normalised exactly as `xmc predict`
 * prepares its input (prepareFeatures), dense [rows, cols] or CSR. Workers
 * answer a `topk` map, or a service error (code 400 for a request they
 * cannot use, 500 for a failure of their own). Decoders never throw: a
 * malformed message gives `{ error: reason }`.
 */
import { encode, isError, unpackMap, type Decoded } from '../io/wire.js';
import { l2NormalizeRows } from '../data/normalize.js';
import type { FeatureMatrix } from '../data/types.js';



export const SHARD_SERVICE = 'xmc-serve-shard';
export const GATEWAY_SERVICE = 'xmc-serve';
export const SERVICE_VERSION = '1.0.0';

export interface ServeSubjects {
  shard(index: number): string;
  predict: string;
}

const NAME = /^[A-Za-z0-9_-]+$/;

/** A model name usable in subjects: the run directory's base name with other characters replaced by '_'. */
export function modelNameOf(runDir: string): string {
  const base = runDir.replace(/\/+$/, '').split('/').pop() || 'model';
  return base.replace(/[^A-Za-z0-9_-]/g, '_');
}

export function serveSubjects(model: string): ServeSubjects {
  if (!NAME.test(model)) throw new Error(`model name '${model}' must match [A-Za-z0-9_-]+ (it is part of NATS subjects)`);
  return { shard: (i) => `xmc.serve.${model}.shard.${i}`, predict: `xmc.serve.${model}.predict` };
}

/** Gateway -> worker: top-k of this shard's labels for `rows` prepared rows. */
export interface ShardPredictRequest {
  type: 'predict';
  k: number;
  rows: number;
  cols: number;
  /** dense rows [rows, cols] ... */
  dense?: Float32Array;
  /** ... or CSR rows (indices unique within a row) */
  indptr?: Uint32Array;
  indices?: Uint32Array;
  values?: Float32Array;
  /** the gateway stops waiting after this long: a request that waited longer in the queue is dropped */
  timeoutMs: number;
}

export type ShardRequest = ShardPredictRequest | { type: 'ping' };

export interface ShardTopKReply {
  type: 'topk';
  shard: number;
  rows: number;
  k: number;
  labels: Int32Array;
  scores: Float32Array;
  /** rows of the worker batch this request was computed in */
  batchRows: number;
}

export interface ShardPong {
  type: 'pong';
  shard: number;
  shards: number;
  labelStart: number;
  labelEnd: number;
  device: string;
  /** the worker's process id */
  pid: number;
}

export type ShardReply = ShardTopKReply | ShardPong;

export { encode, isError, type Decoded };

const isPositive = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;

/** The rows of a shard request as a FeatureMatrix (views, no copy). */
export function requestFeatures(m: ShardPredictRequest): FeatureMatrix {
  return m.dense
    ? { kind: 'dense', rows: m.rows, cols: m.cols, data: m.dense }
    : { kind: 'csr', rows: m.rows, cols: m.cols, indptr: m.indptr!, indices: m.indices!, values: m.values! };
}

/** A request to a worker whose model takes `inputDim` features: shapes, index ranges and finite values checked. */
export function decodeShardRequest(data: Uint8Array, inputDim: number): Decoded<ShardRequest> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  if (m.type === 'ping') return { type: 'ping' };
  if (m.type !== 'predict') return { error: `unknown request type ${JSON.stringify(m.type)}` };
  if (!isPositive(m.k) || !isPositive(m.rows)) return { error: `k and rows must be positive integers, got ${JSON.stringify([m.k, m.rows])}` };
  if (m.cols !== inputDim) return { error: `cols ${JSON.stringify(m.cols)} differs from the model's ${inputDim} input features` };
  if (typeof m.timeoutMs !== 'number' || !(m.timeoutMs > 0)) return { error: `timeoutMs must be a positive number, got ${JSON.stringify(m.timeoutMs)}` };
  const rows = m.rows as number;
  if (m.dense !== undefined) {
    if (!(m.dense instanceof Float32Array)) return { error: 'dense must be a Float32Array' };
    if (m.dense.length !== rows * inputDim) return { error: `dense has ${m.dense.length} values, rows x cols = ${rows * inputDim}` };
    for (let i = 0; i < m.dense.length; i++) if (!Number.isFinite(m.dense[i])) return { error: `dense value ${i} is not finite` };
    return m as unknown as ShardPredictRequest;
  }
  const { indptr, indices, values } = m;
  if (!(indptr instanceof Uint32Array) || !(indices instanceof Uint32Array) || !(values instanceof Float32Array)) {
    return { error: 'a request holds dense (Float32Array) or indptr/indices (Uint32Array) and values (Float32Array)' };
  }
  if (indptr.length !== rows + 1 || indptr[0] !== 0 || indptr[rows] !== indices.length || values.length !== indices.length) {
    return { error: `CSR shape: indptr has ${indptr.length} entries (rows + 1 = ${rows + 1}) running ${indptr[0]}..${indptr[indptr.length - 1]}, indices ${indices.length}, values ${values.length}` };
  }
  for (let r = 0; r < rows; r++) if (indptr[r + 1] < indptr[r]) return { error: `indptr decreases at row ${r}` };
  for (let i = 0; i < indices.length; i++) {
    if (indices[i] >= inputDim) return { error: `feature index ${indices[i]} (entry ${i}) is out of range: the model has ${inputDim} features` };
    if (!Number.isFinite(values[i])) return { error: `value ${i} is not finite` };
  }
  return m as unknown as ShardPredictRequest;
}

/** A worker's reply; top-k replies checked for shape. */
export function decodeShardReply(data: Uint8Array): Decoded<ShardReply> {
  const m = unpackMap(data);
  if (isError(m)) return m;
  if (m.type === 'pong') return m as unknown as ShardPong;
  if (m.type !== 'topk') return { error: `unknown reply type ${JSON.stringify(m.type)}` };
  if (!isPositive(m.rows) || !isPositive(m.k)) return { error: 'topk: rows and k must be positive integers' };
  if (!(m.labels instanceof Int32Array) || !(m.scores instanceof Float32Array)) return { error: 'topk: labels must be an Int32Array and scores a Float32Array' };
  const n = (m.rows as number) * (m.k as number);
  if (m.labels.length !== n || m.scores.length !== n) return { error: `topk: labels/scores have ${m.labels.length}/${m.scores.length} entries, rows x k = ${n}` };
  return m as unknown as ShardTopKReply;
}

// ---------------------------------------------------------------------------
// Client requests (HTTP POST /v1/predict body; the same JSON on NATS)

/** A sparse input: feature ids (unique, any order) and their values (all 1 when absent). */
export interface SparseInput {
  indices: number[];
  values?: number[];
}

export interface PredictBody {
  /** one or more inputs, all dense (number[] of the model's F values) or all sparse */
  inputs: (number[] | SparseInput)[];
  /** labels per input; default the service's default k */
  k?: number;
  /** answer with the shards that did answer (flagged partial) instead of 503 */
  allowPartial?: boolean;
}

export interface PredictLimits {
  inputDim: number;
  numLabels: number;
  /** largest k a client may ask for (also capped at numLabels) */
  maxK: number;
  defaultK: number;
  /** most inputs in one request */
  maxInputs: number;
}

/** A validated request: the rows prepared (L2-normalised) as `xmc predict` prepares its input. */
export interface PredictInput {
  features: FeatureMatrix;
  k: number;
  allowPartial: boolean;
}

/** The largest float32 (finite values beyond it would become Infinity). */
const FLOAT32_MAX = 3.4028234663852886e38;

const describe = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'string' ? `the string ${JSON.stringify(v.length > 20 ? v.slice(0, 20) + '...' : v)}` : typeof v);

function checkValue(v: unknown, where: string): string | null {
  if (typeof v !== 'number') return `${where} must be a number, got ${describe(v)}`;
  if (!Number.isFinite(v)) return `${where} is ${v}: values must be finite`;
  if (Math.abs(v) > FLOAT32_MAX) return `${where} = ${v} does not fit a float32 (|value| <= ${FLOAT32_MAX})`;
  return null;
}

/** The largest k a client may ask for. */
export const kLimit = (l: PredictLimits): number => Math.min(l.maxK, l.numLabels);

/**
 * Validates a request body (already JSON-parsed) and prepares its rows.
 * Every error names the field and index: `inputs[2][17] is NaN ...`,
 * `inputs[0].indices[3] = 5000 is out of range [0, 1836)`, `k = 0 is out of
 * range [1, 100]`. Never throws.
 */
export function parsePredictBody(body: unknown, limits: PredictLimits): Decoded<PredictInput> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return { error: `the body must be a JSON object, got ${describe(body)}` };
  const b = body as Record<string, unknown>;
  for (const key of Object.keys(b)) if (key !== 'inputs' && key !== 'k' && key !== 'allowPartial') return { error: `unknown field '${key}' (fields: inputs, k, allowPartial)` };
  const kMax = kLimit(limits);
  let k = limits.defaultK;
  if (b.k !== undefined) {
    if (typeof b.k !== 'number' || !Number.isInteger(b.k)) return { error: `k must be an integer, got ${typeof b.k === 'number' ? b.k : describe(b.k)}` };
    if (b.k < 1 || b.k > kMax) return { error: `k = ${b.k} is out of range [1, ${kMax}]` };
    k = b.k;
  }
  k = Math.min(k, kMax);
  if (b.allowPartial !== undefined && typeof b.allowPartial !== 'boolean') return { error: `allowPartial must be a boolean, got ${describe(b.allowPartial)}` };
  const inputs = b.inputs;
  if (!Array.isArray(inputs)) return { error: `inputs must be an array of inputs, got ${inputs === undefined ? 'nothing' : describe(inputs)}` };
  if (inputs.length === 0) return { error: 'inputs is empty: give at least one input' };
  if (inputs.length > limits.maxInputs) return { error: `inputs holds ${inputs.length} inputs, more than the limit of ${limits.maxInputs}` };
  const F = limits.inputDim;
  const dense = Array.isArray(inputs[0]);
  let features: FeatureMatrix;
  if (dense) {
    const data = new Float32Array(inputs.length * F);
    for (let r = 0; r < inputs.length; r++) {
      const row = inputs[r];
      if (!Array.isArray(row)) return { error: `inputs[${r}] must be a dense array like inputs[0], got ${describe(row)} (one request holds inputs of one kind)` };
      if (row.length !== F) return { error: `inputs[${r}] has ${row.length} values, the model takes ${F}` };
      for (let c = 0; c < F; c++) {
        const v = row[c];
        if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > FLOAT32_MAX) return { error: checkValue(v, `inputs[${r}][${c}]`)! };
        data[r * F + c] = v;
      }
    }
    features = { kind: 'dense', rows: inputs.length, cols: F, data };
  } else {
    let nnz = 0;
    for (let r = 0; r < inputs.length; r++) {
      const row = inputs[r] as Record<string, unknown>;
      if (typeof row !== 'object' || row === null || Array.isArray(row)) {
        return { error: `inputs[${r}] must be ${Array.isArray(row) ? 'a sparse {indices, values} object like inputs[0] (one request holds inputs of one kind)' : `a dense array or a sparse {indices, values} object, got ${describe(row)}`}` };
      }
      for (const key of Object.keys(row)) if (key !== 'indices' && key !== 'values') return { error: `inputs[${r}] has an unknown field '${key}' (sparse inputs have indices and values)` };
      if (!Array.isArray(row.indices)) return { error: `inputs[${r}].indices must be an array of feature ids, got ${row.indices === undefined ? 'nothing' : describe(row.indices)}` };
      if (row.values !== undefined && !Array.isArray(row.values)) return { error: `inputs[${r}].values must be an array of numbers, got ${describe(row.values)}` };
      if (row.values !== undefined && (row.values as unknown[]).length !== row.indices.length) {
        return { error: `inputs[${r}].values has ${(row.values as unknown[]).length} entries, indices has ${row.indices.length}` };
      }
      if (row.indices.length > F) return { error: `inputs[${r}].indices has ${row.indices.length} entries, more than the model's ${F} features` };
      nnz += row.indices.length;
    }
    const indptr = new Uint32Array(inputs.length + 1);
    const indices = new Uint32Array(nnz);
    const values = new Float32Array(nnz);
    const seen = new Int32Array(F).fill(-1);
    let e = 0;
    for (let r = 0; r < inputs.length; r++) {
      const row = inputs[r] as SparseInput;
      for (let j = 0; j < row.indices.length; j++) {
        const id = row.indices[j] as unknown;
        if (typeof id !== 'number' || !Number.isInteger(id)) return { error: `inputs[${r}].indices[${j}] must be an integer feature id, got ${typeof id === 'number' ? id : describe(id)}` };
        if (id < 0 || id >= F) return { error: `inputs[${r}].indices[${j}] = ${id} is out of range [0, ${F})` };
        if (seen[id] === r) return { error: `inputs[${r}].indices[${j}] = ${id} repeats an earlier index of the input (indices must be unique)` };
        seen[id] = r;
        let v = 1;
        if (row.values !== undefined) {
          const bad = checkValue(row.values[j], `inputs[${r}].values[${j}]`);
          if (bad) return { error: bad };
          v = row.values[j];
        }
        indices[e] = id;
        values[e] = v;
        e++;
      }
      indptr[r + 1] = e;
      sortRow(indices, values, indptr[r], e);
    }
    features = { kind: 'csr', rows: inputs.length, cols: F, indptr, indices, values };
  }
  return { features: l2NormalizeRows(features, { inPlace: true }), k, allowPartial: b.allowPartial === true };
}

/**
 * Puts a row's entries in feature order, as every file reader does: the L2
 * norm is summed in that order, so the prepared row is bit-identical to the
 * same row read by `xmc predict`.
 */
function sortRow(indices: Uint32Array, values: Float32Array, start: number, end: number): void {
  let sorted = true;
  for (let i = start + 1; i < end && sorted; i++) sorted = indices[i - 1] < indices[i];
  if (sorted) return;
  const order = Array.from({ length: end - start }, (_, i) => start + i).sort((a, b) => indices[a] - indices[b]);
  const ids = order.map((i) => indices[i]);
  const vals = order.map((i) => values[i]);
  indices.set(ids, start);
  values.set(vals, start);
}

/** The shard request for prepared rows. */
export function shardRequest(input: PredictInput, timeoutMs: number): ShardPredictRequest {
  const f = input.features;
  const base = { type: 'predict' as const, k: input.k, rows: f.rows, cols: f.cols, timeoutMs };
  return f.kind === 'dense' ? { ...base, dense: f.data } : { ...base, indptr: f.indptr, indices: f.indices, values: f.values! };
}
