/**
 * The model: S label shards (ShardModel) behind one shared input. With S = 1
 * it is the plain model of the setup; with S > 1 it is exactly the model that
 * a distributed trainer spreads over S worker processes, one shard each: the
 * only things the shards share are the input batch, its dropout mask (from
 * (seed, step)) and the merge of their top-k lists (mergeTopK).
 */
import type { Backend, FloatTensor, IndexTensor, LossKind } from '../native/backend.js';
import { mergeTopK, type TopK } from '../topk/topk.js';
import { describeModel, planShard, validateModelConfig, type ModelConfig } from './config.js';
import { STREAM_DROPOUT, opSeed } from './init.js';
import { ShardModel, estimateShardMemory, type LoadedSection, type ShardMemory, type ShardSection } from './shard.js';

export interface StepOptions {
  /** global step, 1 for the first update */
  step: number;
  lr: number;
  loss: LossKind;
  /** input dropout probability in [0, 1) */
  dropout: number;
  /** one [1] tensor per shard for its share of the loss (they sum to the batch loss) */
  lossOut: readonly FloatTensor[];
}

export class Model {
  readonly shards: readonly ShardModel[];
  private readonly dropped = new Map<number, FloatTensor>();

  /** Builds (and validates) the model; `initialise` false leaves the parameters for a checkpoint to fill. */
  constructor(private readonly backend: Backend, readonly config: ModelConfig, initialise = true) {
    validateModelConfig(config);
    this.shards = Array.from({ length: config.shards }, (_, s) => new ShardModel(backend, config, s, initialise));
  }

  describe(): string {
    return describeModel(this.config);
  }

  /** The dropout mask's seed of a step: the same in every shard and process. */
  dropoutSeed(step: number): number {
    return opSeed(this.config.seed, STREAM_DROPOUT, step);
  }

  /** Enqueues one training step on every shard: input dropout, then each shard's forward/loss/backward/Adam. */
  trainStep(x: FloatTensor, labelPtr: IndexTensor, labelIds: IndexTensor, options: StepOptions): void {
    let input = x;
    if (options.dropout > 0) {
      const B = x.shape[0];
      let xd = this.dropped.get(B);
      if (!xd) {
        for (const old of this.dropped.values()) old.dispose(); // one batch size at a time
        this.dropped.clear();
        xd = this.backend.tensor('float32', [B, this.config.inputDim]);
        this.dropped.set(B, xd);
      }
      this.backend.dropout(x, xd, options.dropout, this.dropoutSeed(options.step));
      input = xd;
    }
    for (const shard of this.shards) {
      shard.trainStep(input, labelPtr, labelIds, { step: options.step, lr: options.lr, loss: options.loss, lossOut: options.lossOut[shard.index] });
    }
  }

  /** Rewires every shard's sparse output layer; returns the connections regrown. */
  rewire(step: number, fraction: number): number {
    let n = 0;
    for (const shard of this.shards) n += shard.rewire(step, fraction);
    return n;
  }

  /** Top-k over all labels for every row of x [B, F]: the shards' lists merged. */
  async topK(x: FloatTensor, k: number): Promise<TopK> {
    const parts = await Promise.all(this.shards.map((s) => s.topK(x, k)));
    return parts.length === 1 ? parts[0] : mergeTopK(parts, k);
  }

  sections(optimiser: boolean): ShardSection[] {
    return this.shards.map((s) => s.section(optimiser));
  }

  /** Fills every shard from checkpoint sections keyed by name (`shard/<i>`). */
  load(sections: ReadonlyMap<string, LoadedSection>, optimiser: boolean): void {
    for (const shard of this.shards) {
      const name = `shard/${shard.index}`;
      const section = sections.get(name);
      if (!section) throw new Error(`no section ${name}`);
      shard.loadSection(section, optimiser);
    }
  }

  dispose(): void {
    for (const s of this.shards) s.dispose();
    for (const t of this.dropped.values()) t.dispose();
    this.dropped.clear();
  }
}

export interface MemoryEstimate extends ShardMemory {
  /** input batch, its dropped-out copy, label lists, evaluation input (bytes) */
  inputs: number;
  total: number;
}

/**
 * Bytes the model's tensors take for training batches of B rows and
 * evaluation batches of E rows: parameters (with FFI/CSR index structure),
 * gradients, Adam moments (2 per parameter) and activations. The backend's
 * op scratch (transposed inputs, per-thread partial sums, top-k chunks of
 * E x 8192 scores) comes on top; the measured peak includes it.
 */
export function estimateMemory(config: ModelConfig, B: number, E: number): MemoryEstimate {
  const sum: ShardMemory = { parameters: 0, gradients: 0, optimiser: 0, trainActivations: 0, evalActivations: 0 };
  for (let s = 0; s < config.shards; s++) {
    const m = estimateShardMemory(planShard(config, s), B, E);
    for (const key of Object.keys(sum) as (keyof ShardMemory)[]) sum[key] += m[key];
  }
  const F = config.inputDim;
  const inputs = 4 * (2 * B * F + E * F);
  const total = sum.parameters + sum.gradients + sum.optimiser + sum.trainActivations + sum.evalActivations + inputs;
  return { ...sum, inputs, total };
}
