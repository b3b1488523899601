// --gpu-memory-limit: sizes, the plan of what a configuration needs on the
// CUDA backend, the refusal that says what would fit, and (on a GPU) that the
// allocator enforces the limit and that a run's measured peak stays within
// both the limit and the plan.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { OptionError } from '../src/errors.js';
import { resolveTrainConfig } from '../src/train/config.js';
import { checkGpuMemoryLimit, deviceMemoryNeeded, parseByteSize } from '../src/train/memory-limit.js';
import { createDeviceBackend, runTraining } from '../src/train/run.js';
import type { TrainReporter } from '../src/train/progress.js';
import { HAVE_CUDA } from './cuda-helpers.js';
import { CudaBackend } from '../src/native/cuda-backend.js';
import { syntheticDataset, writeXcText } from './train-fixtures.js';

const A670K = { inputDim: 768, numLabels: 670_091 };

describe('train - gpu memory limit', () => {
  it('parses sizes in bytes, SI and binary units, and rejects others naming the option', () => {
    expect(parseByteSize('--gpu-memory-limit', '4GiB')).toBe(4 * 2 ** 30);
    expect(parseByteSize('--gpu-memory-limit', '3.5GB')).toBe(3.5e9);
    expect(parseByteSize('--gpu-memory-limit', '512 MiB')).toBe(512 * 2 ** 20);
    expect(parseByteSize('--gpu-memory-limit', '4e9')).toBe(4e9);
    expect(parseByteSize('--gpu-memory-limit', '1000')).toBe(1000);
    for (const bad of ['4 gigs', '-1GiB', '0', 'GiB', '']) {
      expect(() => parseByteSize('--gpu-memory-limit', bad)).toThrow(OptionError);
    }
    expect(() => parseByteSize('--gpu-memory-limit', 'lots')).toThrow(/--gpu-memory-limit.*4GiB.*'lots'/);
  });

  it('plans the tensors plus the largest op scratch plus the cuBLAS workspace', () => {
    const config = resolveTrainConfig({ setup: 'dense-ffi', intermediate: 65_536, fanIn: 32, batchSize: 128, evalBatchSize: 128 }, A670K);
    const plan = deviceMemoryNeeded(config.model, 128, 128);
    const params = 65_536 * 768 + 65_536 + 670_091 * 32 + 670_091;
    expect(plan.estimate.parameters).toBe(4 * (params + 670_091 * 32));
    // training scratch: hT and dHT (2 x 128 x 65,536 floats), the label bitmap and the per-block sums
    const trainScratch = 2 * 4 * 128 * 65_536 + 4 * 128 * Math.ceil(670_091 / 32) + 8 * Math.ceil(670_091 / 8);
    expect(plan.scratch).toBeGreaterThanOrEqual(trainScratch + 32 * 2 ** 20);
    expect(plan.total).toBe(plan.estimate.total + plan.scratch);
  });

  it('refuses a configuration above the limit, saying what it needs and what would fit (and each suggestion does)', () => {
    const config = resolveTrainConfig({ setup: 'dense-ffi', intermediate: 131_072, fanIn: 32, batchSize: 128, evalBatchSize: 1024 }, { inputDim: 768, numLabels: 2_812_281 });
    const limit = 4 * 2 ** 30;
    let message = '';
    try {
      checkGpuMemoryLimit(config, 3 * 2 ** 30);
    } catch (err) {
      expect(err).toBeInstanceOf(OptionError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/--gpu-memory-limit.*is 3\.00 GiB, but this configuration needs about [0-9.]+ GiB \(parameters/);
    expect(message).toMatch(/it would fit with any one of: /);
    for (const [, flag, value] of message.matchAll(/--(intermediate|fan-in|batch-size|eval-batch-size) ([0-9]+)/g)) {
      const m = { ...config.model };
      let B = config.batchSize, E = config.evalBatchSize;
      if (flag === 'intermediate') m.intermediate = Number(value);
      if (flag === 'fan-in') m.fanIn = Number(value);
      if (flag === 'batch-size') B = Number(value);
      if (flag === 'eval-batch-size') E = Number(value);
      expect(deviceMemoryNeeded(m, B, E).total, `${flag} ${value}`).toBeLessThanOrEqual(3 * 2 ** 30);
    }
    // and the paper's A3M configuration fits the 4 GiB scenario with batch 128 and evaluation batches of 128
    const small = { ...config, evalBatchSize: 128 };
    expect(checkGpuMemoryLimit(small, limit).total).toBeLessThanOrEqual(limit);
  });

  it('a limit with --device cpu is an option error', () => {
    expect(() => createDeviceBackend('cpu', 1, { gpuMemoryLimit: 4 * 2 ** 30 })).toThrow(/--gpu-memory-limit.*CUDA backend.*--device cpu/);
  });

  it('the other CUDA-only options with --device cpu are option errors naming the flag; false or absent ones are not', () => {
    expect(() => createDeviceBackend('cpu', 1, { tf32: true })).toThrow(/--tf32.*CUDA backend.*--device cpu/);
    expect(() => createDeviceBackend('cpu', 1, { bf16Gathers: true })).toThrow(/--bf16-gathers.*CUDA backend/);
    expect(createDeviceBackend('cpu', 1, { int8TopK: true }).kind).toBe('cpu'); // int8TopK works on both backends
    const be = createDeviceBackend('cpu', 1, { tf32: false, int8TopK: undefined });
    expect(be.kind).toBe('cpu');
  });

  it.skipIf(HAVE_CUDA)('with --device auto and no GPU, CUDA-only options fall back to the CPU with a warning naming them', () => {
    const warned: string[] = [];
    const spy = vi.spyOn(process, 'emitWarning').mockImplementation(((message: string) => { warned.push(message); }) as typeof process.emitWarning);
    try {
      const be = createDeviceBackend('auto', 1, { tf32: true, int8TopK: true });
      expect(be.kind).toBe('cpu');
    } finally {
      spy.mockRestore();
    }
    expect(warned.join('\n')).toMatch(/--tf32 has no effect: --device auto runs on the CPU/);
    expect(warned.join('\n')).not.toMatch(/int8/);
  });
});

describe.skipIf(!HAVE_CUDA)('train - gpu memory limit on the GPU', () => {
  const dir = mkdtempSync(join(tmpdir(), 'xmc-gpumem-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('the allocator refuses an allocation past the limit with a message naming it', async () => {
    const be = new CudaBackend({ memoryLimit: 2 ** 20 });
    expect(be.info().memoryLimit).toBe(2 ** 20);
    be.tensor('float32', [1000]);
    expect(() => be.tensor('float32', [300_000])).toThrow(/out of GPU memory allocating a float32 tensor of shape \[300000\] \(1200000 bytes\): it would pass the GPU memory limit of 1048576 bytes/);
  });

  it('a run under a limit keeps its measured peak within the limit and within the plan', async () => {
    writeXcText(join(dir, 'train.txt'), syntheticDataset({ n: 600, features: 40, labels: 300, seed: 1 }));
    writeXcText(join(dir, 'test.txt'), syntheticDataset({ n: 200, features: 40, labels: 300, seed: 2 }));
    const messages: string[] = [];
    const reporter: TrainReporter = { message: (m) => { messages.push(m); }, step() {}, epochEnd() {} };
    const options = { setup: 'dense-ffi' as const, intermediate: 2048, fanIn: 16, epochs: 2, batchSize: 64, evalBatchSize: 100 };
    const config = resolveTrainConfig(options, { inputDim: 40, numLabels: 300 });
    const needed = deviceMemoryNeeded(config.model, 64, 100).total;
    const limit = Math.ceil(needed * 1.01);
    const result = await runTraining({ train: join(dir, 'train.txt'), test: join(dir, 'test.txt'), out: join(dir, 'run'), device: 'cuda', gpuMemoryLimit: limit, options, reporter });
    result.model.dispose();
    expect(result.memory.peakBytes).toBeLessThanOrEqual(limit);
    expect(result.memory.peakBytes).toBeLessThanOrEqual(needed);
    expect(messages.join('\n')).toMatch(/GPU memory limit/);
    await expect(runTraining({ train: join(dir, 'train.txt'), test: join(dir, 'test.txt'), out: join(dir, 'run2'), device: 'cuda', gpuMemoryLimit: Math.floor(needed / 2), options, reporter }))
      .rejects.toThrow(/--gpu-memory-limit/);
  });
});
