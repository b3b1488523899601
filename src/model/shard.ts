/**
 * ShardModel: one label shard, a complete sub-model that a worker process can
 * own alone. It holds its layers (parameters, gradients, Adam moments), its
 * activation buffers, and everything it needs to train, rewire, score and
 * checkpoint itself from (model config, shard index):
 *
 *   labels      [labelStart, labelEnd) of the global label ids
 *   layers      intermediate (dense, ReLU; optional) then output (dense, FFI or sparse)
 *   seeds       init:    streamSeed(seed, INIT, shard, layer)
 *               rewire:  opSeed(seed, REWIRE, shard, layer, step)
 *   loss        computed on this shard's labels only (labelOffset = labelStart)
 *               with normaliser = the TOTAL label count, so the shards'
 *               gradients are exactly those of the unsharded loss and their
 *               loss values sum to it
 *   checkpoint  section `shard/<index>` (see checkpoint.ts)
 *
 * The caller hands in the batch input already dropped out (the input
 * dropout mask depends on (seed, step) only, so every shard and every worker
 * computes the same one) and the batch's global label lists.
 *
 * One training step enqueues (intermediate setups):
 *   denseForward, reluForward, outForward, lossForward (gradient in place),
 *   outBackward (-> dH), reluBackward, denseBackward, 4 x adam
 * and returns without waiting. An FFI output layer does outForward,
 * lossForward and outBackward in one op (ffiLossBackward), so that its
 * [B, L] scores are never stored, and with an intermediate layer also its
 * reluForward and reluBackward (option inputRelu): denseForward,
 * ffiLossBackward, denseBackward, 4 x adam.
 */
import type { Backend, FloatTensor, IndexTensor, LossKind, TypedArrayOf, DType } from '../native/backend.js';
import type { TopK } from '../topk/topk.js';
import { planShard, type LayerPlan, type ModelConfig, type ShardPlan } from './config.js';
import { STREAM_INIT, STREAM_REWIRE, opSeed, streamSeed } from './init.js';
import { FfiLayer, createLayer, layerSizes, type Layer, type NamedTensor } from './layers.js';

export interface ShardStepOptions {
  /** global step, 1 for the first update (Adam's bias correction) */
  step: number;
  lr: number;
  loss: LossKind;
  /** [1] tensor that receives this shard's share of the batch loss */
  lossOut: FloatTensor;
}

/** What a checkpoint stores of a shard: its plan (checked on load) and its tensors. */
export interface ShardSection {
  name: string;
  meta: { index: number; count: number; labelStart: number; labelEnd: number; intermediate: LayerPlan | null; output: LayerPlan };
  tensors: NamedTensor[];
}

/** A tensor read back from a checkpoint. */
export interface StoredTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Uint32Array;
}

export interface LoadedSection {
  name: string;
  meta: unknown;
  tensors: Map<string, StoredTensor>;
}

interface TrainWorkspace {
  h: FloatTensor | null;
  dh: FloatTensor | null;
  /** [B, L] scores, then their gradient; null for an FFI output layer (fused) */
  out: FloatTensor | null;
}

const LAYER_INTERMEDIATE = 0;
const LAYER_OUTPUT = 1;

export class ShardModel {
  readonly plan: ShardPlan;
  readonly intermediate: Layer | null;
  readonly output: Layer;
  private readonly trainWs = new Map<number, TrainWorkspace>();
  private readonly evalWs = new Map<number, FloatTensor>();

  /**
   * Builds shard `index` of `config` on `backend`. With `initialise` false the
   * parameters are left uninitialised for a checkpoint to fill (loadSection).
   */
  constructor(private readonly backend: Backend, readonly config: ModelConfig, index: number, initialise = true) {
    this.plan = planShard(config, index);
    const init = (layer: number) => (initialise ? { seed: streamSeed(config.seed, STREAM_INIT, index, layer) } : null);
    this.intermediate = this.plan.intermediate ? createLayer(backend, this.plan.intermediate, init(LAYER_INTERMEDIATE)) : null;
    this.output = createLayer(backend, this.plan.output, init(LAYER_OUTPUT));
  }

  get index(): number { return this.plan.index; }
  get labelStart(): number { return this.plan.labelStart; }
  get labelEnd(): number { return this.plan.labelEnd; }
  get numLabels(): number { return this.plan.labelEnd - this.plan.labelStart; }

  private layers(): Layer[] {
    return this.intermediate ? [this.intermediate, this.output] : [this.output];
  }

  /** Enqueues forward, loss, backward and Adam for one batch: x [B, F] (dropped out), labels as a batch CSR of global ids. */
  trainStep(x: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, options: ShardStepOptions): void {
    const b = this.backend;
    const ws = this.trainWorkspace(x.shape[0]);
    const lossOptions = { kind: options.loss, labelOffset: this.labelStart, normaliser: this.config.numLabels, out: options.lossOut };
    const input = this.intermediate && ws.h ? ws.h : x;
    // An FFI output layer applies the intermediate layer's ReLU itself (inputRelu): h stays the ReLU's input
    // and dh comes back as the gradient with respect to it.
    const fusedRelu = this.output instanceof FfiLayer && this.intermediate !== null && ws.h !== null;
    if (this.intermediate && ws.h) {
      this.intermediate.forward(x, ws.h);
      if (!fusedRelu) b.reluForward(ws.h, ws.h);
    }
    if (this.output instanceof FfiLayer) {
      // Fused: the [B, L] scores never exist (see ffiLossBackward).
      this.output.lossBackward(input, labelPtr, labelIds, ws.dh, { ...lossOptions, inputRelu: fusedRelu });
    } else {
      const out = ws.out!;
      this.output.forward(input, out);
      b.lossForward(out, labelPtr, labelIds, out, lossOptions); // out now holds dLoss/dScores
      this.output.backward(input, out, ws.dh);
    }
    if (this.intermediate && ws.h && ws.dh) {
      if (!fusedRelu) b.reluBackward(ws.h, ws.dh, ws.dh);
      this.intermediate.backward(x, ws.dh, null);
    }
    const adam = { lr: options.lr, step: options.step };
    for (const layer of this.layers()) layer.adam(adam);
  }

  /** Prunes and regrows `fraction` of the sparse output layer's connections (seeded by (seed, shard, step)); returns how many. */
  rewire(step: number, fraction: number): number {
    if (fraction <= 0) return 0;
    return this.output.rewire(fraction, opSeed(this.config.seed, STREAM_REWIRE, this.index, LAYER_OUTPUT, step));
  }

  /** Top-k of this shard's labels (global ids) for every row of x [B, F], computed over label chunks. */
  async topK(x: FloatTensor, k: number): Promise<TopK> {
    const rows = x.shape[0];
    let input = x;
    if (this.intermediate) {
      input = this.evalWorkspace(rows);
      this.intermediate.forward(x, input);
      this.backend.reluForward(input, input);
    }
    const { labels, scores } = await this.output.topK(input, k, this.labelStart);
    return { rows, k, labels, scores };
  }

  /** The checkpoint section: parameters and structure, and the Adam moments with `optimiser`. */
  section(optimiser: boolean): ShardSection {
    const tensors: NamedTensor[] = [];
    if (this.intermediate) for (const t of this.intermediate.tensors(optimiser)) tensors.push({ ...t, name: `intermediate.${t.name}` });
    for (const t of this.output.tensors(optimiser)) tensors.push({ ...t, name: `output.${t.name}` });
    const { index, count, labelStart, labelEnd, intermediate, output } = this.plan;
    return { name: `shard/${index}`, meta: { index, count, labelStart, labelEnd, intermediate, output }, tensors };
  }

  /**
   * Fills this shard from a checkpoint section. Parameters and structure are
   * required; the Adam moments are loaded when present and `optimiser` is
   * set, zeroed otherwise. Throws (the message names what differs) when the
   * section does not describe this shard.
   */
  loadSection(section: LoadedSection, optimiser: boolean): void {
    const mine = this.section(true);
    const metaWant = JSON.stringify(mine.meta);
    if (JSON.stringify(section.meta) !== metaWant) {
      throw new Error(`section ${section.name} describes ${JSON.stringify(section.meta)}, the model expects ${metaWant}`);
    }
    for (const { name, tensor, role } of mine.tensors) {
      const stored = section.tensors.get(name);
      if (!stored) {
        if (role === 'optimiser') {
          if (optimiser) throw new Error(`section ${section.name} has no optimiser state ${name} (a parameters-only checkpoint cannot resume training)`);
          this.backend.fill(tensor, 0);
          continue;
        }
        throw new Error(`section ${section.name} has no tensor ${name}`);
      }
      if (role === 'optimiser' && !optimiser) {
        this.backend.fill(tensor, 0);
        continue;
      }
      if (stored.dtype !== tensor.dtype || stored.shape.join(',') !== tensor.shape.join(',')) {
        throw new Error(`tensor ${section.name}/${name} is ${stored.dtype} [${stored.shape}], the model expects ${tensor.dtype} [${tensor.shape}]`);
      }
      (tensor as { write(d: TypedArrayOf<DType>): void }).write(stored.data);
    }
  }

  dispose(): void {
    for (const layer of this.layers()) layer.dispose();
    for (const ws of this.trainWs.values()) for (const t of [ws.h, ws.dh, ws.out]) t?.dispose();
    for (const t of this.evalWs.values()) t.dispose();
    this.trainWs.clear();
    this.evalWs.clear();
  }

  private trainWorkspace(B: number): TrainWorkspace {
    let ws = this.trainWs.get(B);
    if (!ws) {
      // One size at a time (an epoch's last batch is smaller): the peak is the largest, not the sum.
      // Disposing is safe while queued ops still use the buffers (they hold their own references).
      for (const old of this.trainWs.values()) for (const t of [old.h, old.dh, old.out]) t?.dispose();
      this.trainWs.clear();
      const H = this.plan.intermediate?.outputDim ?? 0;
      ws = {
        h: H ? this.backend.tensor('float32', [B, H]) : null,
        dh: H ? this.backend.tensor('float32', [B, H]) : null,
        out: this.output instanceof FfiLayer ? null : this.backend.tensor('float32', [B, this.numLabels]),
      };
      this.trainWs.set(B, ws);
    }
    return ws;
  }

  private evalWorkspace(B: number): FloatTensor {
    let h = this.evalWs.get(B);
    if (!h) {
      for (const old of this.evalWs.values()) old.dispose();
      this.evalWs.clear();
      h = this.backend.tensor('float32', [B, this.plan.intermediate?.outputDim ?? 0]);
      this.evalWs.set(B, h);
    }
    return h;
  }
}

/** Bytes of one shard's tensors, from its plan (nothing allocated). */
export interface ShardMemory {
  parameters: number;
  gradients: number;
  optimiser: number;
  trainActivations: number;
  evalActivations: number;
}

/** Estimated bytes of shard `plan` for a training batch of B rows and evaluation batches of E rows (4-byte elements). */
export function estimateShardMemory(plan: ShardPlan, B: number, E: number): ShardMemory {
  let params = 0;
  let structure = 0;
  for (const layer of [plan.intermediate, plan.output]) {
    if (!layer) continue;
    const s = layerSizes(layer);
    params += s.parameters;
    structure += s.structure;
  }
  const H = plan.intermediate?.outputDim ?? 0;
  const L = plan.labelEnd - plan.labelStart;
  return {
    parameters: 4 * (params + structure),
    gradients: 4 * params,
    optimiser: 8 * params,
    // An FFI output layer never stores its [B, L] scores (fused loss and backward).
    trainActivations: 4 * B * (2 * H + (plan.output.kind === 'ffi' ? 0 : L)),
    evalActivations: 4 * E * H,
  };
}
