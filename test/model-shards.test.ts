import { describe, expect, it } from 'vitest';
import { batchIndices } from '../src/data/batches.js';
import type { ModelConfig, Setup } from '../src/model/config.js';
import { InputWriter, labelTensors, prepareFeatures, rowRange } from '../src/model/inputs.js';
import { Model } from '../src/model/model.js';
import { createBackend, type FloatTensor } from '../src/native/backend.js';
import { topKOfScores, type TopK } from '../src/topk/topk.js';
import { syntheticDataset } from './train-fixtures.js';

const backend = createBackend('cpu', { threads: 2 });
const F = 20;
const L = 23; // not a multiple of the shard counts: uneven shards
const data = syntheticDataset({ n: 40, features: F, labels: L, seed: 5 });
const features = prepareFeatures(data.features, F, data.source);
const rows = rowRange(0, features.rows);

function config(setup: Setup, shards: number): ModelConfig {
  const intermediate = setup === 'bottleneck' ? 12 : setup === 'dense-ffi' || setup === 'dense-sparse' ? 30 : 0;
  const fanIn = setup === 'ffi' || setup === 'dense-ffi' || setup === 'dense-sparse' ? 5 : 0;
  return { setup, inputDim: F, numLabels: L, intermediate, fanIn, shards, seed: 11 };
}

/** Copies a 1-shard model without intermediate layer into the label ranges of a sharded one (rows of every tensor). */
async function copyIntoShards(src: Model, dst: Model): Promise<void> {
  const full = new Map<string, Float32Array | Int32Array | Uint32Array>();
  for (const t of src.sections(true)[0].tensors) full.set(t.name, await t.tensor.read());
  for (const shard of dst.shards) {
    for (const t of shard.section(true).tensors) {
      const rowLength = t.tensor.size / t.tensor.shape[0];
      const all = full.get(t.name)!;
      (t.tensor as FloatTensor).write(all.subarray(shard.labelStart * rowLength, shard.labelEnd * rowLength) as Float32Array);
    }
  }
}

/** Concatenates the shards' tensors back along the label dimension. */
async function gather(model: Model): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const shard of model.shards) {
    for (const t of shard.section(true).tensors) {
      const data = Array.from(await t.tensor.read());
      out.set(t.name, [...(out.get(t.name) ?? []), ...data]);
    }
  }
  return out;
}

function expectSameTopK(a: TopK, b: TopK): void {
  expect(a.rows).toBe(b.rows);
  expect(Array.from(a.labels)).toEqual(Array.from(b.labels));
  for (let i = 0; i < a.scores.length; i++) expect(a.scores[i]).toBeCloseTo(b.scores[i], 5);
}

/** The full [B, L] scores of a (sharded) model, concatenating each shard's layer outputs. */
async function fullScores(model: Model, x: FloatTensor): Promise<Float32Array> {
  const B = x.shape[0];
  const scores = new Float32Array(B * L);
  for (const shard of model.shards) {
    let input = x;
    if (shard.intermediate) {
      input = backend.tensor('float32', [B, shard.intermediate.outputDim]);
      shard.intermediate.forward(x, input);
      backend.reluForward(input, input);
    }
    const out = backend.tensor('float32', [B, shard.numLabels]);
    shard.output.forward(input, out);
    const part = await out.read();
    for (let b = 0; b < B; b++) scores.set(part.subarray(b * shard.numLabels, (b + 1) * shard.numLabels), b * L + shard.labelStart);
  }
  return scores;
}

describe('model - label shards', () => {
  for (const setup of ['dense', 'ffi'] as const) {
    it(`${setup}: 1-shard weights split over 2 and 3 shards give the same merged top-k`, async () => {
      const one = new Model(backend, config(setup, 1));
      const inputs = new InputWriter(backend, F);
      const x = inputs.write(features, rows);
      const want = await one.topK(x, 5);
      for (const S of [2, 3]) {
        const sharded = new Model(backend, config(setup, S), false);
        await copyIntoShards(one, sharded);
        expectSameTopK(await sharded.topK(x, 5), want);
        sharded.dispose();
      }
      one.dispose();
      inputs.dispose();
    });

    it(`${setup}: training steps of 2 shards equal those of the unsharded model (loss normalised by the total L)`, async () => {
      const one = new Model(backend, config(setup, 1));
      const two = new Model(backend, config(setup, 2), false);
      await copyIntoShards(one, two);
      const inputs = new InputWriter(backend, F);
      const lossOne = [backend.tensor('float32', [1])];
      const lossTwo = [backend.tensor('float32', [1]), backend.tensor('float32', [1])];
      let step = 0;
      for (const batch of batchIndices(features.rows, { batchSize: 8, seed: 2, epoch: 0 })) {
        step++;
        const x = inputs.write(features, batch);
        const { ptr, ids } = labelTensors(backend, data.labels, batch);
        const options = { step, lr: 1e-2, loss: 'squared-hinge' as const, dropout: 0.2 };
        one.trainStep(x, ptr, ids, { ...options, lossOut: lossOne });
        two.trainStep(x, ptr, ids, { ...options, lossOut: lossTwo });
        const [a, b0, b1] = await Promise.all([...lossOne, ...lossTwo].map((t) => t.read()));
        expect(b0[0] + b1[0]).toBeCloseTo(a[0], 6);
        expect(b0[0]).toBeGreaterThan(0);
        expect(b1[0]).toBeGreaterThan(0);
      }
      const [w1, w2] = [await gather(one), await gather(two)];
      for (const [name, values] of w1) {
        const other = w2.get(name)!;
        expect(other.length).toBe(values.length);
        for (let i = 0; i < values.length; i++) expect(other[i]).toBeCloseTo(values[i], 5);
      }
      for (const m of [one, two]) m.dispose();
      inputs.dispose();
    });
  }

  for (const setup of ['bottleneck', 'dense-ffi', 'dense-sparse'] as const) {
    it(`${setup}: the merged top-k of 3 shards equals topKOfScores of the concatenated shard scores`, async () => {
      const model = new Model(backend, config(setup, 3));
      const inputs = new InputWriter(backend, F);
      const x = inputs.write(features, rows);
      const merged = await model.topK(x, 7);
      const want = topKOfScores(await fullScores(model, x), features.rows, L, 7);
      expectSameTopK(merged, want);
      // Each shard answers only with its own labels.
      for (const shard of model.shards) {
        const part = await shard.topK(x, 3);
        for (const label of part.labels) {
          expect(label).toBeGreaterThanOrEqual(shard.labelStart);
          expect(label).toBeLessThan(shard.labelEnd);
        }
      }
      model.dispose();
      inputs.dispose();
    });
  }

  it('a shard is built from (config, index) alone: the same shard of two models has the same weights', async () => {
    const a = new Model(backend, config('dense-ffi', 3));
    const b = new Model(backend, config('dense-ffi', 3));
    const read = async (m: Model, s: number) => Promise.all(m.shards[s].section(false).tensors.map((t) => t.tensor.read()));
    expect(await read(a, 1)).toEqual(await read(b, 1));
    expect(await read(a, 1)).not.toEqual(await read(a, 2));
    a.dispose();
    b.dispose();
  });
});
