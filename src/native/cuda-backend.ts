/**
 * The CUDA backend: a thin typed layer over the native addon's CudaBackend
 * (native/cuda/backend.cc) and its op functions (`addon.cuda.*`, one file per
 * op family in native/cuda/). Same contract as the CPU backend (backend.ts,
 * docs/BACKEND.md): ops are launched on a CUDA stream and return at once;
 * sync/read/top-k resolve as promises settled by a completion thread.
 *
 * Differences from the CPU backend, by design:
 * - `memoryStats()` counts GPU memory (tensors, op scratch, the cuBLAS
 *   workspace); `deviceMemory()` adds the driver's view (cudaMemGetInfo).
 * - The FFI/CSR `dX` scatter uses atomics: dX is not bitwise reproducible
 *   between runs (dW, dB, the forward and the loss are).
 * - Rewiring runs on the host over pinned copies (same results as the CPU's
 *   for the same seed); dense products through cuBLAS still run after a
 *   failed op (their outputs are overwritten), every other op is skipped.
 */
import { CudaUnavailableError, NativeError, XmcError } from '../errors.js';
import type {
  AdamOptions,
  Backend,
  BackendOptions,
  DType,
  FloatTensor,
  IndexTensor,
  LossOptions,
  MemoryStats,
  RewireOptions,
  Tensor,
  TopKOptions,
  TopKResult,
  TypedArrayOf,
} from './backend.js';
import { backendInfo, native } from './index.js';

type AnyTypedArray = Float32Array | Int32Array | Uint32Array;

/** The addon's tensor object (class CudaTensor in native/cuda/backend.cc). */
interface NativeTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly size: number;
  readonly disposed: boolean;
  read(): Promise<AnyTypedArray>;
  write(data: AnyTypedArray): void;
  dispose(): void;
}

export interface DeviceMemory {
  /** cudaMemGetInfo: free and total bytes of the GPU (all processes and pools included). */
  freeBytes: number;
  totalBytes: number;
}

export interface CudaDeviceInfo {
  device: number;
  name: string;
  multiprocessors: number;
  /** e.g. "9.0" */
  computeCapability: string;
  /** Dense products through cuBLAS (else the addon's own SGEMM kernel). */
  cublas: boolean;
  /** cuBLAS allowed to use TF32 tensor cores for float32 products. */
  tf32: boolean;
}

/** The addon's backend object (class CudaBackend in native/cuda/backend.cc). */
interface NativeCudaBackend {
  readonly threads: number;
  tensor(dtype: DType, shape: readonly number[]): NativeTensor;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): NativeTensor;
  sync(): Promise<void>;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
  deviceMemory(): DeviceMemory;
  info(): CudaDeviceInfo;
}

type Op = (backend: NativeCudaBackend, ...args: unknown[]) => unknown;

interface CudaOps {
  fill: Op;
  copy: Op;
  denseForward: Op;
  denseBackward: Op;
  reluForward: Op;
  reluBackward: Op;
  dropout: Op;
  ffiForward: Op;
  ffiBackward: Op;
  sparseForward: Op;
  sparseBackward: Op;
  lossForward: Op;
  adam: Op;
  rewireFfi: Op;
  rewireSparse: Op;
  topK: Op;
  denseTopK: Op;
  ffiTopK: Op;
  sparseTopK: Op;
}

interface CudaAddon {
  CudaBackend: new (options: { device?: number; tf32?: boolean }) => NativeCudaBackend;
  cuda: CudaOps;
}

export interface CudaBackendOptions extends BackendOptions {
  /** CUDA device ordinal. Default 0. */
  device?: number;
  /** Let cuBLAS use TF32 tensor cores for the dense products (faster, ~1e-3 relative error). Default false. */
  tf32?: boolean;
}

/** Why CUDA cannot be used here, or null when a GPU is there. Never throws. */
export function cudaUnavailableReason(): string | null {
  try {
    const { cuda } = backendInfo();
    if (!cuda.compiled) return cuda.error ?? 'the addon was built without CUDA';
    if (cuda.error) return cuda.error;
    if (cuda.deviceCount === 0) return 'no GPU visible';
    const a = native() as unknown as Partial<CudaAddon>;
    if (typeof a.CudaBackend !== 'function' || typeof a.cuda?.ffiForward !== 'function') {
      return 'the native addon has no CUDA backend: it is stale, rebuild it with `npm run build:native`';
    }
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Run-time failures reported through a promise become NativeError (message kept: it names the op). */
function asNativeError(err: unknown): never {
  if (err instanceof XmcError) throw err;
  if (err instanceof Error) throw new NativeError(err.message, { cause: err });
  throw new NativeError(String(err));
}

/** Passed in place of another backend's tensor, so that the addon can say so. */
const FOREIGN = Object.freeze({ xmcForeignTensor: true });

class CudaTensor<D extends DType> implements Tensor<D> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly size: number;

  constructor(readonly handle: NativeTensor) {
    this.dtype = handle.dtype as D;
    this.shape = Object.freeze(handle.shape.slice());
    this.size = handle.size;
  }

  get disposed(): boolean {
    return this.handle.disposed;
  }

  read(): Promise<TypedArrayOf<D>> {
    return this.handle.read().catch(asNativeError) as Promise<TypedArrayOf<D>>;
  }

  write(data: TypedArrayOf<D>): void {
    this.handle.write(data);
  }

  dispose(): void {
    this.handle.dispose();
  }

  toString(): string {
    return `CudaTensor(${this.dtype} [${this.shape.join(', ')}])`;
  }
}

function h(t: Tensor | null | undefined): unknown {
  if (t instanceof CudaTensor) return t.handle;
  if (t !== null && typeof t === 'object' && 'dtype' in t && 'shape' in t && 'read' in t) return FOREIGN;
  return t;
}

export class CudaBackend implements Backend {
  readonly kind = 'cuda' as const;
  private readonly ops: CudaOps;
  private readonly n: NativeCudaBackend;

  /** Throws CudaUnavailableError (no driver, no GPU, a CPU-only build) before touching CUDA. */
  constructor(options: CudaBackendOptions = {}) {
    const reason = cudaUnavailableReason();
    if (reason !== null) throw new CudaUnavailableError(`CUDA backend unavailable: ${reason}`);
    const addon = native() as unknown as CudaAddon;
    this.ops = addon.cuda;
    const opts: { device?: number; tf32?: boolean } = {};
    if (options.device !== undefined) opts.device = options.device;
    if (options.tf32 !== undefined) opts.tf32 = options.tf32;
    try {
      this.n = new addon.CudaBackend(opts);
    } catch (err) {
      if (err instanceof RangeError || err instanceof TypeError) throw err;
      throw new CudaUnavailableError(`CUDA backend unavailable: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The GPU's streaming multiprocessors (the CPU backend reports its threads). */
  get threads(): number {
    return this.n.threads;
  }

  info(): CudaDeviceInfo {
    return this.n.info();
  }

  /** The driver's free / total GPU memory (cudaMemGetInfo). */
  deviceMemory(): DeviceMemory {
    return this.n.deviceMemory();
  }

  tensor<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new CudaTensor<D>(this.n.tensor(dtype, shape));
  }

  fromArray(data: Float32Array, shape?: readonly number[]): Tensor<'float32'>;
  fromArray(data: Int32Array, shape?: readonly number[]): Tensor<'int32'>;
  fromArray(data: Uint32Array, shape?: readonly number[]): Tensor<'uint32'>;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): Tensor {
    return new CudaTensor(this.n.fromArray(data, shape));
  }

  sync(): Promise<void> {
    return this.n.sync().catch(asNativeError);
  }

  memoryStats(): MemoryStats {
    return this.n.memoryStats();
  }

  resetPeakMemory(): void {
    this.n.resetPeakMemory();
  }

  fill(t: Tensor, value: number): void {
    this.ops.fill(this.n, h(t), value);
  }

  copy(src: Tensor, dst: Tensor): void {
    this.ops.copy(this.n, h(src), h(dst));
  }

  denseForward(x: FloatTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.denseForward(this.n, h(x), h(W), h(b), h(out));
  }

  denseBackward(x: FloatTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.denseBackward(this.n, h(x), h(W), h(dOut), h(dX), h(dW), h(dB));
  }

  reluForward(x: FloatTensor, out: FloatTensor): void {
    this.ops.reluForward(this.n, h(x), h(out));
  }

  reluBackward(out: FloatTensor, dOut: FloatTensor, dX: FloatTensor): void {
    this.ops.reluBackward(this.n, h(out), h(dOut), h(dX));
  }

  dropout(x: FloatTensor, out: FloatTensor, p: number, seed: number): void {
    this.ops.dropout(this.n, h(x), h(out), p, seed);
  }

  ffiForward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.ffiForward(this.n, h(x), h(W), h(idx), h(b), h(out));
  }

  ffiBackward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.ffiBackward(this.n, h(x), h(W), h(idx), h(dOut), h(dX), h(dW), h(dB));
  }

  sparseForward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.sparseForward(this.n, h(x), h(rowPtr), h(col), h(W), h(b), h(out));
  }

  sparseBackward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.sparseBackward(this.n, h(x), h(rowPtr), h(col), h(W), h(dOut), h(dX), h(dW), h(dB));
  }

  lossForward(scores: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, dScores: FloatTensor | null, options: LossOptions = {}): FloatTensor {
    const { out, ...rest } = options;
    const loss = out ?? this.tensor('float32', [1]);
    this.ops.lossForward(this.n, h(scores), h(labelPtr), h(labelIds), h(dScores), h(loss), rest);
    return loss;
  }

  adam(param: FloatTensor, grad: FloatTensor, m: FloatTensor, v: FloatTensor, options: AdamOptions): void {
    this.ops.adam(this.n, h(param), h(grad), h(m), h(v), options);
  }

  rewireFfi(W: FloatTensor, idx: IndexTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number {
    return this.ops.rewireFfi(this.n, h(W), h(idx), h(m), h(v), options) as number;
  }

  rewireSparse(rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number {
    return this.ops.rewireSparse(this.n, h(rowPtr), h(col), h(W), h(m), h(v), options) as number;
  }

  topK(scores: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.topK(this.n, h(scores), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  denseTopK(x: FloatTensor, W: FloatTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.denseTopK(this.n, h(x), h(W), h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  ffiTopK(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.ffiTopK(this.n, h(x), h(W), h(idx), h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  sparseTopK(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.sparseTopK(this.n, h(x), h(rowPtr), h(col), h(W), h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }
}
