/**
 * The TypeScript side shared by the addon's backends (CPU: native/cpu,
 * CUDA: native/cuda). Both expose the same native surface: a backend object
 * (tensors, sync, memory statistics) and a table of op functions taking that
 * object first. This class gives it the typed `Backend` interface; the
 * subclasses only say which native objects to use and add their extras.
 * Shape and dtype checks happen natively, at enqueue time; run-time failures
 * arrive as rejected promises, turned into NativeError here.
 */
import { NativeError, XmcError } from '../errors.js';
import type {
  AdamOptions,
  Backend,
  BackendKind,
  DType,
  FloatTensor,
  IndexTensor,
  LossOptions,
  FfiLossOptions,
  MemoryStats,
  RewireOptions,
  Tensor,
  TopKOptions,
  TopKResult,
  TypedArrayOf,
} from './backend.js';

export type AnyTypedArray = Float32Array | Int32Array | Uint32Array;

/** The addon's tensor object (CpuTensor / CudaTensor in native/{cpu,cuda}/backend.cc). */
export interface NativeTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly size: number;
  readonly disposed: boolean;
  read(): Promise<AnyTypedArray>;
  write(data: AnyTypedArray): void;
  dispose(): void;
}

/** The addon's backend object (CpuBackend / CudaBackend in native/{cpu,cuda}/backend.cc). */
export interface NativeBackendObject {
  readonly threads: number;
  tensor(dtype: DType, shape: readonly number[]): NativeTensor;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): NativeTensor;
  sync(): Promise<void>;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
}

type Op = (backend: NativeBackendObject, ...args: unknown[]) => unknown;

/** The op functions of one backend (register_* in native/register.cc). */
export interface NativeOps {
  fill: Op;
  copy: Op;
  denseForward: Op;
  denseBackward: Op;
  reluForward: Op;
  reluBackward: Op;
  dropout: Op;
  ffiForward: Op;
  ffiBackward: Op;
  ffiLossBackward: Op;
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

/** Run-time failures reported through a promise become NativeError (message kept: it names the op). */
export function asNativeError(err: unknown): never {
  if (err instanceof XmcError) throw err;
  if (err instanceof Error) throw new NativeError(err.message, { cause: err });
  throw new NativeError(String(err));
}

/** Passed in place of another backend's tensor, so that the addon can say so. */
const FOREIGN = Object.freeze({ xmcForeignTensor: true });

class AddonTensor<D extends DType> implements Tensor<D> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly size: number;

  constructor(readonly owner: AddonBackend, readonly handle: NativeTensor) {
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
    return `Tensor(${this.owner.kind}, ${this.dtype} [${this.shape.join(', ')}])`;
  }
}

export abstract class AddonBackend implements Backend {
  abstract readonly kind: BackendKind;

  protected constructor(protected readonly n: NativeBackendObject, private readonly ops: NativeOps) {}

  /** CPU: compute threads; CUDA: the GPU's streaming multiprocessors. */
  get threads(): number {
    return this.n.threads;
  }

  /**
   * The native handle of an addon tensor of this kind (the addon itself
   * refuses one of another backend object of the same kind, naming the
   * argument); FOREIGN for a tensor of another kind or any other tensor-like
   * object; anything else as is (the addon names it).
   */
  private h(t: Tensor | null | undefined): unknown {
    if (t instanceof AddonTensor) return t.owner.kind === this.kind ? t.handle : FOREIGN;
    if (t !== null && typeof t === 'object' && 'dtype' in t && 'shape' in t && 'read' in t) return FOREIGN;
    return t;
  }

  tensor<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new AddonTensor<D>(this, this.n.tensor(dtype, shape));
  }

  fromArray(data: Float32Array, shape?: readonly number[]): Tensor<'float32'>;
  fromArray(data: Int32Array, shape?: readonly number[]): Tensor<'int32'>;
  fromArray(data: Uint32Array, shape?: readonly number[]): Tensor<'uint32'>;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): Tensor {
    return new AddonTensor(this, this.n.fromArray(data, shape));
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
    this.ops.fill(this.n, this.h(t), value);
  }

  copy(src: Tensor, dst: Tensor): void {
    this.ops.copy(this.n, this.h(src), this.h(dst));
  }

  denseForward(x: FloatTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.denseForward(this.n, this.h(x), this.h(W), this.h(b), this.h(out));
  }

  denseBackward(x: FloatTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.denseBackward(this.n, this.h(x), this.h(W), this.h(dOut), this.h(dX), this.h(dW), this.h(dB));
  }

  reluForward(x: FloatTensor, out: FloatTensor): void {
    this.ops.reluForward(this.n, this.h(x), this.h(out));
  }

  reluBackward(out: FloatTensor, dOut: FloatTensor, dX: FloatTensor): void {
    this.ops.reluBackward(this.n, this.h(out), this.h(dOut), this.h(dX));
  }

  dropout(x: FloatTensor, out: FloatTensor, p: number, seed: number): void {
    this.ops.dropout(this.n, this.h(x), this.h(out), p, seed);
  }

  ffiForward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.ffiForward(this.n, this.h(x), this.h(W), this.h(idx), this.h(b), this.h(out));
  }

  ffiBackward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.ffiBackward(this.n, this.h(x), this.h(W), this.h(idx), this.h(dOut), this.h(dX), this.h(dW), this.h(dB));
  }

  ffiLossBackward(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor,
    dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor, options: FfiLossOptions = {}): FloatTensor {
    const { out, ...rest } = options;
    const loss = out ?? this.tensor('float32', [1]);
    this.ops.ffiLossBackward(this.n, this.h(x), this.h(W), this.h(idx), this.h(b), this.h(labelPtr), this.h(labelIds),
      this.h(dX), this.h(dW), this.h(dB), this.h(loss), rest);
    return loss;
  }

  sparseForward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, out: FloatTensor): void {
    this.ops.sparseForward(this.n, this.h(x), this.h(rowPtr), this.h(col), this.h(W), this.h(b), this.h(out));
  }

  sparseBackward(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null, dW: FloatTensor, dB: FloatTensor): void {
    this.ops.sparseBackward(this.n, this.h(x), this.h(rowPtr), this.h(col), this.h(W), this.h(dOut), this.h(dX), this.h(dW), this.h(dB));
  }

  lossForward(scores: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, dScores: FloatTensor | null, options: LossOptions = {}): FloatTensor {
    const { out, ...rest } = options;
    const loss = out ?? this.tensor('float32', [1]);
    this.ops.lossForward(this.n, this.h(scores), this.h(labelPtr), this.h(labelIds), this.h(dScores), this.h(loss), rest);
    return loss;
  }

  adam(param: FloatTensor, grad: FloatTensor, m: FloatTensor, v: FloatTensor, options: AdamOptions): void {
    this.ops.adam(this.n, this.h(param), this.h(grad), this.h(m), this.h(v), options);
  }

  rewireFfi(W: FloatTensor, idx: IndexTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number {
    return this.ops.rewireFfi(this.n, this.h(W), this.h(idx), this.h(m), this.h(v), options) as number;
  }

  rewireSparse(rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, m: FloatTensor, v: FloatTensor, options: RewireOptions): number {
    return this.ops.rewireSparse(this.n, this.h(rowPtr), this.h(col), this.h(W), this.h(m), this.h(v), options) as number;
  }

  topK(scores: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.topK(this.n, this.h(scores), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  denseTopK(x: FloatTensor, W: FloatTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.denseTopK(this.n, this.h(x), this.h(W), this.h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  ffiTopK(x: FloatTensor, W: FloatTensor, idx: IndexTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.ffiTopK(this.n, this.h(x), this.h(W), this.h(idx), this.h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }

  sparseTopK(x: FloatTensor, rowPtr: IndexTensor, col: IndexTensor, W: FloatTensor, b: FloatTensor, k: number, options: TopKOptions = {}): Promise<TopKResult> {
    return (this.ops.sparseTopK(this.n, this.h(x), this.h(rowPtr), this.h(col), this.h(W), this.h(b), k, options) as Promise<TopKResult>).catch(asNativeError);
  }
}
