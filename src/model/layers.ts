/**
 * The three layer kinds of the model, each owning its parameters, their
 * gradients and their Adam moments as backend tensors:
 *
 *   DenseLayer   W [O, I], b [O]                      out = x W^T + b
 *   FfiLayer     W [L, k], idx [L, k] (uint32), b [L]  out[l] = b[l] + sum_j W[l,j] x[idx[l,j]]
 *   SparseLayer  rowPtr [L+1], col [nnz], W [nnz], b [L]   (CSR by output row)
 *
 * Every method only enqueues ops (see src/native/backend.ts); nothing here
 * waits for the backend except topK, which returns a promise.
 *
 * Tensor names (checkpoint sections use them, prefixed by the layer's name):
 *   parameters  W, b            structure  idx (ffi), rowPtr, col (sparse)
 *   optimiser   W.m, W.v, b.m, b.v
 */
import type { AdamOptions, Backend, FfiLossOptions, FloatTensor, IndexTensor, Tensor, TopKResult } from '../native/backend.js';
import type { LayerPlan } from './config.js';
import { ffiSources, glorotBound, kaimingBound, sparseBound, sparseStructure, streamRng, uniform } from './init.js';

/** A named tensor of a layer; `role` decides what goes into which checkpoint. */
export interface NamedTensor {
  name: string;
  tensor: Tensor;
  role: 'parameter' | 'structure' | 'optimiser';
}

interface Param {
  name: string;
  value: FloatTensor;
  grad: FloatTensor;
  m: FloatTensor;
  v: FloatTensor;
}

/**
 * Labels scored per chunk by the layer top-k ops for a batch of `rows`: their
 * scratch is rows * chunk floats, at most 16 MiB (8192 labels at least). On an
 * H100, A670K top-5 at 128 rows took 5.7 ms per batch with chunks of 8192
 * labels, 3.9 ms with 32768 and 4.7 ms with 131072 (bench:gpu, 2026-11-23).
 */
export function topKChunk(rows: number): number {
  return Math.max(8192, Math.min(32768, Math.floor((1 << 22) / Math.max(1, rows))));
}

export abstract class Layer {
  abstract readonly kind: LayerPlan['kind'];
  protected readonly params: Param[] = [];
  protected readonly structure: { name: string; tensor: IndexTensor }[] = [];

  constructor(protected readonly backend: Backend, readonly plan: LayerPlan) {}

  get inputDim(): number { return this.plan.inputDim; }
  get outputDim(): number { return this.plan.outputDim; }

  /** out [B, O] = layer(x [B, I]) (pre-activation). */
  abstract forward(x: FloatTensor, out: FloatTensor): void;
  /** Writes the parameter gradients from dOut [B, O]; dX [B, I] too unless null. */
  abstract backward(x: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null): void;
  /** Top-k of the layer's output for every row of x, labels offset by `labelOffset`. */
  abstract topK(x: FloatTensor, k: number, labelOffset: number): Promise<TopKResult>;

  /** Prunes and regrows a fraction of a sparse layer's connections; 0 (nothing) for dense layers. */
  rewire(_fraction: number, _seed: number): number {
    return 0;
  }

  adam(options: AdamOptions): void {
    for (const p of this.params) this.backend.adam(p.value, p.grad, p.m, p.v, options);
  }

  /** Parameters (and structure), and with `optimiser` the Adam moments too. */
  tensors(optimiser: boolean): NamedTensor[] {
    const out: NamedTensor[] = [];
    for (const s of this.structure) out.push({ name: s.name, tensor: s.tensor, role: 'structure' });
    for (const p of this.params) out.push({ name: p.name, tensor: p.value, role: 'parameter' });
    if (optimiser) {
      for (const p of this.params) {
        out.push({ name: `${p.name}.m`, tensor: p.m, role: 'optimiser' });
        out.push({ name: `${p.name}.v`, tensor: p.v, role: 'optimiser' });
      }
    }
    return out;
  }

  dispose(): void {
    for (const p of this.params) for (const t of [p.value, p.grad, p.m, p.v]) t.dispose();
    for (const s of this.structure) s.tensor.dispose();
  }

  /** A parameter with its gradient and zeroed moments; `init` (host data) or left uninitialised. */
  protected addParam(name: string, shape: readonly number[], init: Float32Array | null): FloatTensor {
    const b = this.backend;
    const value = init ? b.fromArray(init, shape) : b.tensor('float32', shape);
    const grad = b.tensor('float32', shape);
    const m = b.tensor('float32', shape);
    const v = b.tensor('float32', shape);
    b.fill(m, 0);
    b.fill(v, 0);
    this.params.push({ name, value, grad, m, v });
    return value;
  }

  protected addStructure(name: string, shape: readonly number[], init: Uint32Array | null): IndexTensor {
    const tensor = init ? this.backend.fromArray(init, shape) : this.backend.tensor('uint32', shape);
    this.structure.push({ name, tensor });
    return tensor;
  }

  protected param(name: string): Param {
    const p = this.params.find((q) => q.name === name);
    if (!p) throw new Error(`layer has no parameter ${name}`);
    return p;
  }
}

/** How a layer is initialised: from a seed stream, or left for a checkpoint to fill. */
export type LayerInit = { seed: bigint } | null;

export class DenseLayer extends Layer {
  readonly kind = 'dense' as const;
  private readonly W: FloatTensor;
  private readonly b: FloatTensor;

  constructor(backend: Backend, plan: LayerPlan, init: LayerInit) {
    super(backend, plan);
    const { inputDim: I, outputDim: O } = plan;
    const bound = plan.relu ? kaimingBound(I) : glorotBound(I, O);
    this.W = this.addParam('W', [O, I], init ? uniform(O * I, bound, streamRng(init.seed, 0)) : null);
    this.b = this.addParam('b', [O], init ? new Float32Array(O) : null);
  }

  forward(x: FloatTensor, out: FloatTensor): void {
    this.backend.denseForward(x, this.W, this.b, out);
  }

  backward(x: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null): void {
    this.backend.denseBackward(x, this.W, dOut, dX, this.param('W').grad, this.param('b').grad);
  }

  topK(x: FloatTensor, k: number, labelOffset: number): Promise<TopKResult> {
    return this.backend.denseTopK(x, this.W, this.b, k, { labelOffset, chunk: topKChunk(x.shape[0]) });
  }
}

export class FfiLayer extends Layer {
  readonly kind = 'ffi' as const;
  private readonly W: FloatTensor;
  private readonly idx: IndexTensor;
  private readonly b: FloatTensor;

  constructor(backend: Backend, plan: LayerPlan, init: LayerInit) {
    super(backend, plan);
    const { inputDim: I, outputDim: L, fanIn: k } = plan;
    this.idx = this.addStructure('idx', [L, k], init ? ffiSources(L, k, I, streamRng(init.seed, 1)) : null);
    this.W = this.addParam('W', [L, k], init ? uniform(L * k, sparseBound(k), streamRng(init.seed, 0)) : null);
    this.b = this.addParam('b', [L], init ? new Float32Array(L) : null);
  }

  forward(x: FloatTensor, out: FloatTensor): void {
    this.backend.ffiForward(x, this.W, this.idx, this.b, out);
  }

  backward(x: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null): void {
    this.backend.ffiBackward(x, this.W, this.idx, dOut, dX, this.param('W').grad, this.param('b').grad);
  }

  /**
   * Forward, loss and backward in one op (never stores the [B, L] scores): the parameter gradients, dX unless null,
   * and the loss value into `loss.out`.
   */
  lossBackward(x: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, dX: FloatTensor | null, loss: FfiLossOptions): void {
    this.backend.ffiLossBackward(x, this.W, this.idx, this.b, labelPtr, labelIds, dX, this.param('W').grad, this.param('b').grad, loss);
  }

  topK(x: FloatTensor, k: number, labelOffset: number): Promise<TopKResult> {
    return this.backend.ffiTopK(x, this.W, this.idx, this.b, k, { labelOffset, chunk: topKChunk(x.shape[0]) });
  }

  override rewire(fraction: number, seed: number): number {
    const w = this.param('W');
    return this.backend.rewireFfi(w.value, this.idx, w.m, w.v, { fraction, inputDim: this.inputDim, seed });
  }
}

export class SparseLayer extends Layer {
  readonly kind = 'sparse' as const;
  private readonly rowPtr: IndexTensor;
  private readonly col: IndexTensor;
  private readonly W: FloatTensor;
  private readonly b: FloatTensor;

  constructor(backend: Backend, plan: LayerPlan, init: LayerInit) {
    super(backend, plan);
    const { inputDim: I, outputDim: L, fanIn: k } = plan;
    const nnz = L * k;
    const structure = init ? sparseStructure(L, I, nnz, streamRng(init.seed, 1)) : null;
    this.rowPtr = this.addStructure('rowPtr', [L + 1], structure?.rowPtr ?? null);
    this.col = this.addStructure('col', [nnz], structure?.col ?? null);
    this.W = this.addParam('W', [nnz], init ? uniform(nnz, sparseBound(k), streamRng(init.seed, 0)) : null);
    this.b = this.addParam('b', [L], init ? new Float32Array(L) : null);
  }

  forward(x: FloatTensor, out: FloatTensor): void {
    this.backend.sparseForward(x, this.rowPtr, this.col, this.W, this.b, out);
  }

  backward(x: FloatTensor, dOut: FloatTensor, dX: FloatTensor | null): void {
    this.backend.sparseBackward(x, this.rowPtr, this.col, this.W, dOut, dX, this.param('W').grad, this.param('b').grad);
  }

  topK(x: FloatTensor, k: number, labelOffset: number): Promise<TopKResult> {
    return this.backend.sparseTopK(x, this.rowPtr, this.col, this.W, this.b, k, { labelOffset, chunk: topKChunk(x.shape[0]) });
  }

  override rewire(fraction: number, seed: number): number {
    const w = this.param('W');
    return this.backend.rewireSparse(this.rowPtr, this.col, w.value, w.m, w.v, { fraction, inputDim: this.inputDim, seed });
  }
}

export function createLayer(backend: Backend, plan: LayerPlan, init: LayerInit): Layer {
  switch (plan.kind) {
    case 'dense': return new DenseLayer(backend, plan, init);
    case 'ffi': return new FfiLayer(backend, plan, init);
    case 'sparse': return new SparseLayer(backend, plan, init);
  }
}

/** Element counts of a layer's tensors, for memory estimates (no allocation). */
export function layerSizes(plan: LayerPlan): { parameters: number; structure: number } {
  const { kind, inputDim: I, outputDim: O, fanIn: k } = plan;
  if (kind === 'dense') return { parameters: O * I + O, structure: 0 };
  if (kind === 'ffi') return { parameters: O * k + O, structure: O * k };
  return { parameters: O * k + O, structure: O * k + O + 1 };
}
