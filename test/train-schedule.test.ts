import { describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { resolveTrainConfig, defaultEvalBatchSize } from '../src/train/config.js';
import { initialSchedule, scheduleFromJson, scheduleToJson, updateSchedule } from '../src/train/schedule.js';
import { estimateMemory } from '../src/model/model.js';

const options = { lrFactor: 0.5, lrPatience: 2, minLr: 1e-4, earlyStopPatience: 4 };

describe('train - schedule', () => {
  it('halves the lr after more than 2 epochs without improvement, and stops after 4', () => {
    const s = initialSchedule(1e-3);
    const metrics = [0.30, 0.35, 0.34, 0.35, 0.33, 0.34];
    const updates = metrics.map((m, i) => updateSchedule(s, options, i + 1, m));
    expect(updates.map((u) => u.improved)).toEqual([true, true, false, false, false, false]);
    expect(updates.map((u) => u.reduced)).toEqual([false, false, false, false, true, false]);
    expect(updates.map((u) => u.stop)).toEqual([false, false, false, false, false, true]);
    expect(s).toMatchObject({ lr: 5e-4, best: 0.35, bestEpoch: 2, stopped: true });
  });

  it('an improvement resets both counters; the lr never goes below the minimum', () => {
    const s = initialSchedule(2.5e-4);
    const seq = [0.5, 0.4, 0.4, 0.4, 0.6, 0.5, 0.5, 0.5, 0.5];
    const updates = seq.map((m, i) => updateSchedule(s, options, i + 1, m));
    expect(updates.map((u) => u.reduced)).toEqual([false, false, false, true, false, false, false, true, false]);
    expect(updates.at(-1)!.stop).toBe(true);
    expect(updates.slice(0, -1).every((u) => !u.stop)).toBe(true);
    expect(s.lr).toBe(1e-4);
    expect(s.bestEpoch).toBe(5);
  });

  it('round-trips through JSON, -Infinity included', () => {
    const s = initialSchedule(1e-3);
    expect(scheduleFromJson(JSON.parse(JSON.stringify(scheduleToJson(s))))).toEqual(s);
    updateSchedule(s, options, 1, 0.25);
    expect(scheduleFromJson(JSON.parse(JSON.stringify(scheduleToJson(s))))).toEqual(s);
  });
});

describe('train - configuration', () => {
  const dims = { inputDim: 1836, numLabels: 159 };

  it('takes the paper\'s defaults', () => {
    const c = resolveTrainConfig({}, dims);
    expect(c.model).toEqual({ setup: 'dense-ffi', inputDim: 1836, numLabels: 159, intermediate: 4096, fanIn: 32, shards: 1, seed: 0 });
    expect(c).toMatchObject({ loss: 'squared-hinge', epochs: 100, batchSize: 32, lr: 1e-3, dropout: 0.1, rewireInterval: 1000, rewireFraction: 0.1 });
    expect(resolveTrainConfig({ setup: 'bottleneck' }, dims).model).toMatchObject({ intermediate: 64, fanIn: 0 });
    expect(resolveTrainConfig({ setup: 'ffi' }, dims).model).toMatchObject({ intermediate: 0, fanIn: 32 });
    expect(resolveTrainConfig({ setup: 'dense-ffi' }, { inputDim: 768, numLabels: 670_091 }).model.intermediate).toBe(16384);
  });

  it('rejects values out of range, naming the option', () => {
    const cases: [object, string][] = [
      [{ lr: -1 }, '--lr'], [{ lr: 0 }, '--lr'], [{ dropout: 1 }, '--dropout'], [{ epochs: 0 }, '--epochs'],
      [{ batchSize: 0 }, '--batch-size'], [{ rewireFraction: 1 }, '--rewire-fraction'], [{ loss: 'l2' }, '--loss'],
      [{ minLr: 1 }, '--min-lr'], [{ setup: 'x' }, '--setup'], [{ shards: 200 }, '--shards'], [{ fanIn: 5000 }, '--fan-in'],
    ];
    for (const [o, option] of cases) {
      let error: unknown;
      try { resolveTrainConfig(o, dims); } catch (err) { error = err; }
      expect(error, JSON.stringify(o)).toBeInstanceOf(OptionError);
      expect((error as OptionError).option).toBe(option);
    }
  });

  it('estimates memory from the configuration: parameters, gradients, 2 Adam moments, activations', () => {
    const c = resolveTrainConfig({ setup: 'dense-ffi', intermediate: 4096, fanIn: 32 }, dims).model;
    const m = estimateMemory(c, 32, 256);
    const params = 4096 * 1836 + 4096 + 159 * 32 + 159;
    expect(m.parameters).toBe(4 * (params + 159 * 32)); // + the FFI index array
    expect(m.gradients).toBe(4 * params);
    expect(m.optimiser).toBe(8 * params);
    expect(m.trainActivations).toBe(4 * 32 * 2 * 4096); // h and dH; the FFI layer never stores its [B, L] scores
    expect(m.total).toBe(m.parameters + m.gradients + m.optimiser + m.trainActivations + m.evalActivations + m.inputs);
    expect(defaultEvalBatchSize(c)).toBe(1024);
  });
});
