import { afterAll, describe, expect, it } from 'vitest';
import { batchIndices } from '../src/data/batches.js';
import { OptionError } from '../src/errors.js';
import { SETUPS, planShard, validateModelConfig, type ModelConfig, type Setup } from '../src/model/config.js';
import { ffiSources, sparseStructure, streamRng } from '../src/model/init.js';
import { InputWriter, labelTensors, prepareFeatures } from '../src/model/inputs.js';
import { Model } from '../src/model/model.js';
import { createBackend } from '../src/native/backend.js';
import { syntheticDataset } from './train-fixtures.js';

const backend = createBackend('cpu', { threads: 2 });
const F = 24;
const L = 12;
const data = syntheticDataset({ n: 96, features: F, labels: L, seed: 3 });
const features = prepareFeatures(data.features, F, data.source);

function config(setup: Setup, shards = 1): ModelConfig {
  const hidden = setup === 'bottleneck' ? 16 : setup === 'dense-ffi' || setup === 'dense-sparse' ? 48 : 0;
  const fanIn = setup === 'ffi' || setup === 'dense-ffi' || setup === 'dense-sparse' ? 6 : 0;
  return { setup, inputDim: F, numLabels: L, intermediate: hidden, fanIn, shards, seed: 7 };
}

/** Trains `epochs` epochs of batch 16 and returns every step's loss (read each step: a test may wait). */
async function trainLosses(model: Model, epochs: number, rewireInterval = 0): Promise<{ losses: number[]; rewired: number }> {
  const inputs = new InputWriter(backend, F);
  const lossOut = model.shards.map(() => backend.tensor('float32', [1]));
  const losses: number[] = [];
  let step = 0;
  let rewired = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    for (const rows of batchIndices(features.rows, { batchSize: 16, seed: 1, epoch })) {
      step++;
      const x = inputs.write(features, rows);
      const { ptr, ids } = labelTensors(backend, data.labels, rows);
      model.trainStep(x, ptr, ids, { step, lr: 5e-3, loss: 'squared-hinge', dropout: 0.1, lossOut });
      if (rewireInterval && step % rewireInterval === 0) rewired += model.rewire(step, 0.2);
      const parts = await Promise.all(lossOut.map((t) => t.read()));
      losses.push(parts.reduce((s, p) => s + p[0], 0));
    }
  }
  inputs.dispose();
  return { losses, rewired };
}

const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;

afterAll(async () => { await backend.sync(); });

describe('model - setups', () => {
  for (const setup of SETUPS) {
    it(`${setup} trains: the loss of the last steps is well below that of the first`, async () => {
      const model = new Model(backend, config(setup));
      const { losses, rewired } = await trainLosses(model, 20, setup === 'dense' || setup === 'bottleneck' ? 0 : 10);
      model.dispose();
      expect(losses.every(Number.isFinite)).toBe(true);
      const first = mean(losses.slice(0, 3));
      const last = mean(losses.slice(-6));
      expect(last).toBeLessThan(0.6 * first);
      if (setup === 'ffi' || setup === 'dense-ffi' || setup === 'dense-sparse') expect(rewired).toBeGreaterThan(0);
    });
  }

  it('the same seed gives the same initial weights; another seed different ones', async () => {
    const read = async (m: Model) => Promise.all(m.sections(false).flatMap((s) => s.tensors.map((t) => t.tensor.read())));
    const a = new Model(backend, config('dense-ffi'));
    const b = new Model(backend, config('dense-ffi'));
    const c = new Model(backend, { ...config('dense-ffi'), seed: 8 });
    const [ta, tb, tc] = [await read(a), await read(b), await read(c)];
    for (const m of [a, b, c]) m.dispose();
    expect(ta).toEqual(tb);
    expect(ta).not.toEqual(tc);
  });
});

describe('model - initialisation', () => {
  it('FFI sources are distinct within each row, in range and sorted, on both sampling paths', () => {
    for (const [k, I] of [[5, 40], [30, 40], [40, 40]]) {
      const idx = ffiSources(50, k, I, streamRng(1, 2));
      for (let r = 0; r < 50; r++) {
        const row = Array.from(idx.subarray(r * k, (r + 1) * k));
        expect(new Set(row).size).toBe(k);
        expect(row.every((v) => v < I)).toBe(true);
        expect(row).toEqual([...row].sort((a, b) => a - b));
      }
    }
  });

  it('an unstructured sparse layer has L*k distinct cells, each row sorted', () => {
    for (const [L, I, nnz] of [[30, 50, 30 * 4], [10, 12, 100]]) {
      const { rowPtr, col } = sparseStructure(L, I, nnz, streamRng(3));
      expect(rowPtr[L]).toBe(nnz);
      const cells = new Set<number>();
      for (let r = 0; r < L; r++) {
        for (let e = rowPtr[r]; e < rowPtr[r + 1]; e++) {
          expect(col[e]).toBeLessThan(I);
          if (e > rowPtr[r]) expect(col[e]).toBeGreaterThan(col[e - 1]);
          cells.add(r * I + col[e]);
        }
      }
      expect(cells.size).toBe(nnz);
    }
  });

  it('label and intermediate ranges of shards tile [0, L) and [0, H)', () => {
    const c: ModelConfig = { setup: 'dense-ffi', inputDim: 10, numLabels: 103, intermediate: 50, fanIn: 4, shards: 4, seed: 0 };
    let labels = 0;
    let hidden = 0;
    for (let s = 0; s < 4; s++) {
      const p = planShard(c, s);
      expect(p.labelStart).toBe(labels);
      labels = p.labelEnd;
      hidden += p.intermediate!.outputDim;
      expect(p.output.inputDim).toBe(p.intermediate!.outputDim);
    }
    expect(labels).toBe(103);
    expect(hidden).toBe(50);
  });
});

describe('model - configuration errors name the option', () => {
  const base: ModelConfig = { setup: 'dense-ffi', inputDim: 20, numLabels: 10, intermediate: 64, fanIn: 8, shards: 1, seed: 0 };
  const cases: [string, Partial<ModelConfig>, string, RegExp][] = [
    ['unknown setup', { setup: 'wide' as Setup }, '--setup', /unknown setup 'wide'/],
    ['fan-in above the FFI layer input', { fanIn: 65 }, '--fan-in', /65 exceeds the input of the FFI layer \(intermediate 64 units\)/],
    ['fan-in above a shard\'s share of the intermediate layer', { fanIn: 40, shards: 2 }, '--fan-in', /intermediate 64 \/ 2 shards = 32 units/],
    ['fan-in above the input dimension of ffi', { setup: 'ffi', intermediate: 0, fanIn: 21 }, '--fan-in', /exceeds the input dimension \(20 features\)/],
    ['more shards than labels', { shards: 11 }, '--shards', /11 shards for 10 labels/],
    ['zero shards', { shards: 0 }, '--shards', /positive integer/],
    ['an intermediate layer on dense', { setup: 'dense', fanIn: 0 }, '--intermediate', /has no intermediate layer/],
    ['a fan-in on a dense output', { setup: 'bottleneck', intermediate: 64 }, '--fan-in', /dense output layer/],
    ['a negative seed', { seed: -1 }, '--seed', /non-negative/],
  ];
  for (const [what, change, option, message] of cases) {
    it(`rejects ${what}`, () => {
      let error: unknown;
      try { validateModelConfig({ ...base, ...change }); } catch (err) { error = err; }
      expect(error).toBeInstanceOf(OptionError);
      expect((error as OptionError).option).toBe(option);
      expect((error as Error).message).toMatch(message);
    });
  }
});
