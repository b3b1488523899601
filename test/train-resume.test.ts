import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OptionError } from '../src/errors.js';
import { readCheckpoint } from '../src/model/checkpoint.js';
import type { Model } from '../src/model/model.js';
import { createBackend } from '../src/native/backend.js';
import type { TrainOptions } from '../src/train/config.js';
import type { EpochRecord, TrainReporter } from '../src/train/progress.js';
import { runTraining } from '../src/train/run.js';
import { RUN_FILES, type TrainResult } from '../src/train/trainer.js';
import { syntheticDataset, writeXcText } from './train-fixtures.js';

const backend = createBackend('cpu', { threads: 2 });
const dir = mkdtempSync(join(tmpdir(), 'xmc-resume-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const trainFile = join(dir, 'train.txt');
const testFile = join(dir, 'test.txt');
writeXcText(trainFile, syntheticDataset({ n: 160, features: 20, labels: 10, seed: 1, sparse: true }));
writeXcText(testFile, syntheticDataset({ n: 60, features: 20, labels: 10, seed: 2, sparse: true }));

const messages: string[] = [];
const reporter: TrainReporter = { message: (m) => { messages.push(m); }, step() {}, epochEnd() {} };

async function run(out: string, options: TrainOptions, resume = false): Promise<TrainResult> {
  return runTraining({ train: trainFile, test: testFile, out: join(dir, out), resume, options, backend, reporter });
}

async function weights(model: Model): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const s of model.sections(false)) for (const t of s.tensors) out.set(`${s.name}/${t.name}`, Array.from(await t.tensor.read()));
  return out;
}

/** An epoch record without its timings (which differ between runs). */
function timeless(r: EpochRecord) {
  const { seconds: _s, trainSeconds: _t, evalSeconds: _e, samplesPerSecond: _p, ...rest } = r;
  return rest;
}

describe('train - resume', () => {
  for (const [setup, shards] of [['dense-ffi', 1], ['dense-sparse', 2]] as const) {
    it(`${setup} (${shards} shard${shards > 1 ? 's' : ''}): stopped after epoch 1 and resumed = uninterrupted, metrics and weights`, async () => {
      // Rewiring every 4 steps (10 steps per epoch) falls inside both epochs, and dropout is on.
      const options: TrainOptions = { setup, intermediate: 24, fanIn: 4, shards, batchSize: 16, lr: 5e-3, rewireInterval: 4, earlyStopPatience: 10, seed: 9 };
      const whole = await run(`${setup}-whole`, { ...options, epochs: 3 });
      const first = await run(`${setup}-split`, { ...options, epochs: 1 });
      expect(first.history.length).toBe(1);
      first.model.dispose();
      const resumed = await run(`${setup}-split`, { epochs: 3 }, true);
      expect(messages.some((m) => m.includes('resuming') && m.includes('after epoch 1 (step 10)'))).toBe(true);

      expect(resumed.history.map(timeless)).toEqual(whole.history.map(timeless));
      expect(resumed.history.some((r) => r.rewired > 0)).toBe(true);
      expect(resumed.best?.epoch).toBe(whole.best?.epoch);
      expect(await weights(resumed.model)).toEqual(await weights(whole.model));
      // The last checkpoints (full state: Adam moments, rewired structure) agree too.
      const [a, b] = [await readCheckpoint(join(dir, `${setup}-whole`, RUN_FILES.last)), await readCheckpoint(join(dir, `${setup}-split`, RUN_FILES.last))];
      for (const [name, section] of a.sections) {
        for (const [tensor, stored] of section.tensors) expect(b.sections.get(name)!.tensors.get(tensor)!.data).toEqual(stored.data);
      }
      const jsonl = (d: string) => readFileSync(join(dir, d, RUN_FILES.metrics), 'utf8').trim().split('\n').map((l) => {
        const { seconds: _s, ...rest } = JSON.parse(l);
        return rest;
      });
      expect(jsonl(`${setup}-split`)).toEqual(jsonl(`${setup}-whole`));
      whole.model.dispose();
      resumed.model.dispose();
    });
  }

  it('a resumed run keeps its configuration: another value of an option is refused, naming it', async () => {
    const first = await run('conflict', { setup: 'dense', epochs: 1, batchSize: 16 });
    first.model.dispose();
    await expect(run('conflict', { epochs: 2, lr: 0.01 }, true)).rejects.toThrow(OptionError);
    await expect(run('conflict', { epochs: 2, batchSize: 8 }, true)).rejects.toThrow(/option --batch-size: 8 differs from the run being resumed \(16\)/);
    // The same values, or none, are fine.
    const resumed = await run('conflict', { epochs: 2, batchSize: 16 }, true);
    expect(resumed.history.map((r) => r.epoch)).toEqual([1, 2]);
    resumed.model.dispose();
  });

  it('a new run refuses a directory that holds one; --resume without a checkpoint is refused', async () => {
    const first = await run('taken', { setup: 'dense', epochs: 1 });
    first.model.dispose();
    await expect(run('taken', { setup: 'dense', epochs: 1 })).rejects.toThrow(/option --out: .* already holds a run .*pass --resume/);
    await expect(run('empty', {}, true)).rejects.toThrow(/option --resume: .* holds no checkpoint-last.ckpt/);
    expect(existsSync(join(dir, 'empty'))).toBe(false);
  });

  it('a corrupt last checkpoint stops --resume with a message naming the file', async () => {
    const first = await run('corrupt', { setup: 'dense', epochs: 1 });
    first.model.dispose();
    const path = join(dir, 'corrupt', RUN_FILES.last);
    const { writeFileSync } = await import('node:fs');
    const bytes = readFileSync(path);
    bytes[bytes.length - 40] ^= 0x80;
    writeFileSync(path, bytes);
    await expect(run('corrupt', { epochs: 2 }, true)).rejects.toThrow(new RegExp(`${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: corrupt checkpoint: SHA-256 mismatch`));
  });
});
