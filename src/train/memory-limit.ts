/**
 * The single-GPU memory budget (`--gpu-memory-limit`): what a training
 * configuration needs on the CUDA backend, computed before anything is
 * allocated, and a refusal that says what would fit.
 *
 * Needed = the model's tensors (estimateMemory: parameters with their index
 * structure, gradients, Adam moments, activations, inputs) + the largest
 * scratch that one op of a training step or of an evaluation batch holds at
 * once (the CUDA backend frees op scratch in stream order, so scratch of
 * consecutive ops does not add up) + the cuBLAS workspace. The backend's
 * allocator enforces the same limit (an allocation past it fails with a
 * message naming the limit), so a run that starts never exceeds it.
 */
import { OptionError } from '../errors.js';
import { planShard, type ModelConfig } from '../model/config.js';
import { estimateMemory, type MemoryEstimate } from '../model/model.js';
import { topKChunk } from '../model/layers.js';
import type { TrainConfig } from './config.js';

/** cuBLAS's workspace on Hopper (native/cuda/gemm.cc); 4 MiB before. */
const CUBLAS_WORKSPACE = 32 * 2 ** 20;
const TOPK_CANDIDATES = 5; // k of the evaluation's top-k (P@5, nDCG@5)

export interface DeviceMemoryPlan {
  estimate: MemoryEstimate;
  /** the largest op scratch of a training step or an evaluation batch */
  scratch: number;
  total: number;
}

/** Bytes the CUDA backend needs to train `model` with batches of B rows and evaluate E rows at a time. */
export function deviceMemoryNeeded(model: ModelConfig, B: number, E: number): DeviceMemoryPlan {
  const estimate = estimateMemory(model, B, E);
  let scratch = 0;
  for (let s = 0; s < model.shards; s++) {
    const plan = planShard(model, s);
    const inputs = plan.intermediate ? plan.intermediate.outputDim : model.inputDim;
    const L = plan.labelEnd - plan.labelStart;
    const out = plan.output.kind;
    const dX = plan.intermediate ? 1 : 0; // the first layer needs no input gradient
    // training: the output layer's transposed input and dX scatter target; the fused FFI loss's
    // label bitmap and per-block sums; the unfused loss's per-row partial sums
    let train = out === 'dense' ? 0 : 4 * B * inputs * (1 + dX);
    if (out === 'ffi') train += 4 * B * Math.ceil(L / 32) + 8 * Math.ceil(L / 4); // blocks of 4 warps (XMC_LOSS_WARPS)
    else train += 8 * B * Math.ceil(L / 4096) + 24 * B * 64;
    // evaluation: the transposed input (row-sparse layers), a chunk of scores, two candidate sets
    const chunk = Math.min(topKChunk(E), Math.max(L, 1));
    const evaluation = (out === 'dense' ? 0 : 4 * E * inputs) + 4 * E * chunk + 2 * 8 * E * TOPK_CANDIDATES + 8 * E * TOPK_CANDIDATES;
    // rewiring an FFI layer on the device: the select state, a 256-bin histogram and a counter per 256 rows
    const rewire = out === 'ffi' ? 8 * (Math.ceil(L / 256) + 256) + 32 : 0;
    scratch = Math.max(scratch, train, evaluation, rewire);
  }
  scratch += CUBLAS_WORKSPACE;
  return { estimate, scratch, total: estimate.total + scratch };
}

/** "3.50 GiB" */
export function formatGiB(bytes: number): string {
  return bytes >= 2 ** 30 ? `${(bytes / 2 ** 30).toFixed(2)} GiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/**
 * Throws OptionError('--gpu-memory-limit') when `config` needs more than `limit` bytes, naming what it needs
 * (and of what) and the largest batch size, intermediate size, fan-in or evaluation batch that would fit.
 */
export function checkGpuMemoryLimit(config: TrainConfig, limit: number): DeviceMemoryPlan {
  const plan = deviceMemoryNeeded(config.model, config.batchSize, config.evalBatchSize);
  if (plan.total <= limit) return plan;
  const fits = (model: ModelConfig, B: number, E: number) => deviceMemoryNeeded(model, B, E).total <= limit;
  const halving = (start: number, min: number, ok: (v: number) => boolean): number | null => {
    for (let v = Math.floor(start / 2); v >= min; v = Math.floor(v / 2)) if (ok(v)) return v;
    return null;
  };
  const m = config.model;
  const ideas: string[] = [];
  const B = halving(config.batchSize, 1, (b) => fits(m, b, config.evalBatchSize));
  if (B !== null) ideas.push(`--batch-size ${B}`);
  if (m.intermediate > 0) {
    const I = halving(m.intermediate, Math.max(64, m.shards), (i) => fits({ ...m, intermediate: i }, config.batchSize, config.evalBatchSize));
    if (I !== null) ideas.push(`--intermediate ${I}`);
  }
  if (m.fanIn > 0) {
    const k = halving(m.fanIn, 1, (f) => fits({ ...m, fanIn: f }, config.batchSize, config.evalBatchSize));
    if (k !== null) ideas.push(`--fan-in ${k}`);
  }
  const E = halving(config.evalBatchSize, 1, (e) => fits(m, config.batchSize, e));
  if (E !== null) ideas.push(`--eval-batch-size ${E}`);
  const e = plan.estimate;
  const parts = `parameters and index structure ${formatGiB(e.parameters)}, gradients ${formatGiB(e.gradients)}, `
    + `Adam moments ${formatGiB(e.optimiser)}, activations and inputs ${formatGiB(e.trainActivations + e.evalActivations + e.inputs)}, `
    + `op scratch and cuBLAS workspace ${formatGiB(plan.scratch)}`;
  const advice = ideas.length > 0
    ? `it would fit with any one of: ${ideas.join(', ')}`
    : 'no smaller batch, intermediate size, fan-in or evaluation batch alone makes it fit';
  throw new OptionError('--gpu-memory-limit',
    `is ${formatGiB(limit)}, but this configuration needs about ${formatGiB(plan.total)} (${parts}); ${advice}`);
}

/** Parses a size: bytes ("4000000000", "4e9"), or a number with KB/MB/GB/TB (powers of 1000) or KiB/MiB/GiB/TiB (of 1024). */
export function parseByteSize(option: string, text: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([KMGT]i?B|B)?\s*$/i.exec(text);
  if (!m) throw new OptionError(option, `must be a size such as 4GiB, 3.5GB or 512MiB, got '${text}'`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const scale: Record<string, number> = {
    B: 1, KB: 1e3, MB: 1e6, GB: 1e9, TB: 1e12, KIB: 2 ** 10, MIB: 2 ** 20, GIB: 2 ** 30, TIB: 2 ** 40,
  };
  const bytes = Math.floor(Number(m[1]) * scale[unit]!);
  if (!Number.isSafeInteger(bytes) || bytes < 1) throw new OptionError(option, `must be at least 1 byte, got '${text}'`);
  return bytes;
}
