/**
 * The CPU reference backend: a thin typed layer over the native addon's
 * CpuBackend (native/cpu/backend.cc) and its op functions (one file per op
 * family in native/cpu/). Checks of shapes and dtypes happen natively, at
 * enqueue time; run-time failures arrive as rejected promises, turned into
 * NativeError here.
 */
import { NativeError, XmcError } from '../errors.js';
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
import { native } from './index.js';

type AnyTypedArray = Float32Array | Int32Array | Uint32Array;

/** The addon's tensor object (class CpuTensor in backend.cc). */
interface NativeTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly size: number;
  readonly disposed: boolean;
  read(): Promise<AnyTypedArray>;
  write(data: AnyTypedArray): void;
  dispose(): void;
}

/** The addon's backend object (class CpuBackend in backend.cc). */
interface NativeCpuBackend {
  readonly threads: number;
  tensor(dtype: DType, shape: readonly number[]): NativeTensor;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): NativeTensor;
  sync(): Promise<void>;
  memoryStats(): MemoryStats;
  resetPeakMemory(): void;
}

type Handle = unknown; // a NativeTensor, or whatever the caller passed (the addon names the bad argument)
type Op = (backend: NativeCpuBackend, ...args: unknown[]) => unknown;

/** The op functions the addon exports (register_* in native/register.cc). */
interface CpuAddon {
  CpuBackend: new (options: { threads?: number }) => NativeCpuBackend;
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

function addon(): CpuAddon {
  const a = native() as unknown as Partial<CpuAddon>;
  if (typeof a.CpuBackend !== 'function' || typeof a.ffiForward !== 'function') {
    throw new NativeError('the native addon has no CPU backend: it is stale, rebuild it with `npm run build:native`');
  }
  return a as CpuAddon;
}

/** Run-time failures reported through a promise become NativeError (message kept: it names the op). */
function asNativeError(err: unknown): never {
  if (err instanceof XmcError) throw err;
  if (err instanceof Error) throw new NativeError(err.message, { cause: err });
  throw new NativeError(String(err));
}

class CpuTensor<D extends DType> implements Tensor<D> {
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
    return `Tensor(${this.dtype} [${this.shape.join(', ')}])`;
  }
}

function h(t: Tensor | null | undefined): Handle {
  return t instanceof CpuTensor ? t.handle : t;
}

export class CpuBackend implements Backend {
  readonly kind = 'cpu' as const;
  private readonly ops: CpuAddon;
  private readonly n: NativeCpuBackend;

  constructor(options: BackendOptions = {}) {
    this.ops = addon();
    this.n = new this.ops.CpuBackend(options.threads === undefined ? {} : { threads: options.threads });
  }

  get threads(): number {
    return this.n.threads;
  }

  tensor<D extends DType>(dtype: D, shape: readonly number[]): Tensor<D> {
    return new CpuTensor<D>(this.n.tensor(dtype, shape));
  }

  fromArray(data: Float32Array, shape?: readonly number[]): Tensor<'float32'>;
  fromArray(data: Int32Array, shape?: readonly number[]): Tensor<'int32'>;
  fromArray(data: Uint32Array, shape?: readonly number[]): Tensor<'uint32'>;
  fromArray(data: AnyTypedArray, shape?: readonly number[]): Tensor {
    return new CpuTensor(this.n.fromArray(data, shape));
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
