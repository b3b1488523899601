/**
 * The compute backend interface of the trainer: tensors that live in native
 * memory (host RAM for 'cpu', GPU memory for 'cuda') and ops that are
 * ENQUEUED on the backend's stream and return at once. The JavaScript thread
 * never waits for compute: `sync()`, `tensor.read()`, loss values (read from
 * a 1-element tensor) and top-k results come back as Promises.
 *
 * Contract shared by every backend (docs/BACKEND.md has the details):
 * - Ops run in the order they were enqueued. Shapes and dtypes are checked
 *   when an op is enqueued: a TypeError (wrong dtype / not a tensor) or
 *   RangeError (shape, option value) naming the op and the argument.
 * - A failure while an op runs (e.g. an index out of range) rejects the next
 *   `sync()` / `read()` / top-k with a NativeError naming the op; the ops
 *   enqueued between the failure and that promise are skipped.
 * - Queued ops keep their tensors alive: dropping or disposing a tensor
 *   after enqueuing an op that uses it is safe.
 * - `backend.tensor()` contents are undefined (the CPU backend poisons them:
 *   NaN for float32, -1 / 0xFFFFFFFF for integers). Every op writes every
 *   element of its outputs; gradients overwrite (never accumulate).
 * - Layouts are row-major. Index tensors (FFI sources, CSR structure, label
 *   lists) are uint32; int32 is accepted too.
 */
import { OptionError } from '../errors.js';
import { CpuBackend } from './cpu-backend.js';
import { CudaBackend, cudaUnavailableReason } from './cuda-backend.js';

export type DType = 'float32' | 'int32' | 'uint32';
export type TypedArrayOf<D extends DType> = D extends 'float32' ? Float32Array : D extends 'int32' ? Int32Array : Uint32Array;

export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  /** Row-major dimensions. */
  readonly shape: readonly number[];
  /** Number of elements. */
  readonly size: number;
  readonly disposed: boolean;
  /** A copy of the contents once every op enqueued before this call has run. */
  read(): Promise<TypedArrayOf<D>>;
  /** Copies `data` now; it lands in the tensor in queue order (earlier ops still see the old contents). */
  write(data: TypedArrayOf<D>): void;
  /** Releases this handle's memory now (ops already enqueued keep theirs). Using it afterwards throws. */
  dispose(): void;
}

export type FloatTensor = Tensor<'float32'>;
/** uint32 (preferred) or int32 indices. */
export type IndexTensor = Tensor<'uint32'> | Tensor<'int32'>;

export interface MemoryStats {
  /** Bytes held now by tensors, staging copies and op scratch (rounded up to 64-byte blocks). */
  currentBytes: number;
  /** Highest currentBytes since the backend started or since resetPeakMemory(). */
  peakBytes: number;
  liveAllocations: number;
}

export type LossKind = 'squared-hinge' | 'bce';

export interface LossOptions {
  /** Default 'squared-hinge' (the paper's), or 'bce' (binary cross-entropy with logits). */
  kind?: LossKind;
  /** This shard holds global labels [labelOffset, labelOffset + L); other label ids are ignored. Default 0. */
  labelOffset?: number;
  /** Number of labels the mean runs over: the TOTAL label count when sharded. Default L. */
  normaliser?: number;
  /** Where to write the loss value ([1] float32); a new tensor when omitted. */
  out?: FloatTensor;
}

/** ffiLossBackward's options: the loss's, and where its input comes from. */
export interface FfiLossOptions extends LossOptions {
  /**
   * x is a ReLU's input (the intermediate layer before its activation): the layer reads max(x, 0) and dX is
   * the gradient with respect to x (0 where x <= 0): reluForward, this op and reluBackward in one, without their
   * two passes over [B, I]. Default false.
   */
  inputRelu?: boolean;
}

export interface AdamOptions {
  lr: number;
  beta1?: number; // 0.9
  beta2?: number; // 0.999
  eps?: number; // 1e-8
  /** 1 for the first update (bias correction). */
  step: number;
}

export interface RewireOptions {
  /** Fraction of the layer's connections to prune and regrow: floor(fraction * count). */
  fraction: number;
  /** I, the number of inputs (sources are drawn from [0, I)). */
  inputDim: number;
  /** Seeds the draw (non-negative integer below 2^53); same seed, same result. */
  seed: number;
}

export interface TopKOptions {
  /** Added to the reported labels (a label shard's first global id). Default 0. */
  labelOffset?: number;
  /** Labels scored at a time (bounds the scratch memory to B * chunk floats). Default 8192. */
  chunk?: number;
}

export interface TopKResult {
  /** [B, k] row-major, best first; -1 pads rows when k > L. */
  labels: Int32Array;
  /** [B, k]; -Infinity where labels are -1. */
  scores: Float32Array;
}

export interface Backend {
  readonly kind: BackendKind;
  /** Threads the backend computes with. */
  readonly threads: number;

  tensor<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D>;
  fromArray(data: Float32Array, shape?: readonly number[]): Tensor<'float32'>;
  fromArray(data: Int32Array, shape?: readonly number[]): Tensor<'int32'>;
  fromArray(data: Uint32Array, shape?: readonly number[]): Tensor<'uint32'>;
  /** Resolves when every op enqueued before it has run; rejects with the first run-time failure since the last promise. */
  sync(): Promise<void>;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
  /** Every element = value (an integer for int32/uint32). */
  fill(t: Tensor, value: number): void;
  /** dst = src: same dtype and element count. */
  copy(src: Tensor, dst: Tensor): void;

  /** out[B,O] = x[B,I] W[O,I]^T + b[O]. */
  denseForward(x: FloatTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void;
  /** dX = dOut W (skipped when null), dW = dOut^T x, dB = column sums of dOut. */
  denseBackward(x: FloatTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void;
  /** out = max(x, 0); out may be x. */
  reluForward(x: FloatTensor, out: FloatTensor): void;
  /** dX = out > 0 ? dOut : 0, from the relu OUTPUT; dX may be dOut. */
  reluBackward(out: FloatTensor, dOut: FloatTensor, dX: FloatTensor): void;
  /** Inverted dropout, p in [0, 1): out = keep ? x / (1 - p) : 0, mask from (seed, flat index). Backward: dropout(dOut, dX, p, seed). */
  dropout(x: FloatTensor, out: FloatTensor, p: number, seed: number): void;

  /** out[b,l] = b[l] + sum_j W[l,j] x[b, idx[l,j]]; W, idx [L,k]. */
  ffiForward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, out: FloatTensor): void;
  ffiBackward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void;
  /**
   * The FFI output layer trained against its loss in one op, without the [B, L] scores: writes dW, dB, dX (null:
   * skipped) exactly as ffiForward, lossForward (gradient) and ffiBackward would, and the loss value into
   * `options.out` (a new [1] tensor when omitted), which it returns. The loss value may differ from lossForward's
   * in the last bits (another summation order).
   */
  ffiLossBackward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor,
    dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor, options?: FfiLossOptions): FloatTensor;

  /** CSR by output row: rowPtr[L+1], col[nnz], W[nnz]; out[b,l] = b[l] + sum_e W[e] x[b, col[e]]. */
  sparseForward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void;
  sparseBackward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void;

  /**
   * Mean multi-label loss of scores[B,L] against the batch's label lists (CSR: labelPtr[B+1], labelIds[nnz]),
   * writing d(loss)/d(scores) into dScores (may be `scores` itself; null: loss only). Returns the [1] loss tensor.
   */
  lossForward(scores: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, dScores: FloatTensor | null, options?: LossOptions): FloatTensor;

  /** One bias-corrected Adam step (PyTorch semantics) on any float32 parameter. */
  adam(param: FloatTensor, grad: FloatTensor, m: FloatTensor, v: FloatTensor, options: AdamOptions): void;

  /** Prunes the floor(fraction*L*k) smallest |W| and regrows them at new distinct sources (W = m = v = 0). Returns that count. */
  rewireFfi(W: FloatTensor, idx: IndexTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number;
  /** Same for a CSR layer: regrows at random empty cells of the L x I matrix; rewrites rowPtr/col and permutes W, m, v (nnz fixed). */
  rewireSparse(rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number;

  /** Top-k per row of a score matrix [B, L]. */
  topK(scores: FloatTensor, k: number, options?: TopKOptions): Promise<TopKResult>;
  /** Top-k of a dense layer's output x W^T + b, computed over chunks of labels. */
  denseTopK(x: FloatTensor, W: FloatTensor, b: FloatTensor, k: number, options?: TopKOptions): Promise<TopKResult>;
  ffiTopK(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, k: number, options?: TopKOptions): Promise<TopKResult>;
  sparseTopK(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, k: number, options?: TopKOptions): Promise<TopKResult>;
}

export type BackendKind = 'cpu' | 'cuda';

export interface BackendOptions {
  /** Compute threads (CPU backend). Default: the hardware's thread count. */
  threads?: number;
  /** CUDA device ordinal (CUDA backend). Default 0. */
  device?: number;
  /** Let cuBLAS use TF32 tensor cores for dense products (CUDA backend; ~1e-3 relative error). Default false. */
  tf32?: boolean;
  /**
   * Bytes of GPU memory the backend may hold at once (CUDA backend): an allocation past it fails with a
   * RangeError naming the limit instead of growing. Default: no limit.
   */
  memoryLimit?: number;
  /**
   * CUDA backend: the fused FFI kernels (ffiLossBackward, and ffiTopK / sparseTopK with k <= 16) read their input
   * rounded to bfloat16 (accumulating in float32): half the gather traffic, scores within about 4e-3 relative of
   * the float32 ones. Default false.
   */
  bf16Gathers?: boolean;
  /**
   * Inference only: ffiTopK / sparseTopK with k <= 16 use the input quantized to int8 with one scale per input row
   * (max |x| / 127) and each label's weights rounded to 16 bits with a power-of-two scale, and sum exact integers
   * (native/common/int8_topk.h). CUDA: the fused top-k gathers the bytes (a quarter of the float32 gather traffic)
   * and multiplies with dp4a. CPU: the same integers, so the same scores bit for bit, as the reference of the CUDA
   * kernel and to measure what the rounding costs in accuracy (not faster). On the A670K benchmark model the CUDA kernel found 98% of the
   * float32 top-5 labels. A row with a NaN or an infinity scores NaN for every label (ranked last). Training ops are
   * unaffected; on CUDA it takes precedence over bf16Gathers for the top-k. Default false.
   */
  int8TopK?: boolean;
}

/**
 * A backend of the given kind: 'cpu', 'cuda' (throws CudaUnavailableError,
 * saying why, when no GPU can be used) or 'auto' (CUDA when a GPU is
 * visible and the addon has the CUDA backend, else CPU).
 */
export function createBackend(kind: BackendKind | 'auto', options: BackendOptions = {}): Backend {
  if (kind === 'cpu') return new CpuBackend(options);
  if (kind === 'cuda') return new CudaBackend(options);
  if (kind === 'auto') return cudaUnavailableReason() === null ? new CudaBackend(options) : new CpuBackend(options);
  throw new OptionError('backend', `must be 'cpu', 'cuda' or 'auto', got ${String(kind)}`);
}
